"""Tests for lightning_dicom.data.labels: key detection, label kinds, matching to series, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lightning_dicom.data.labels import read_labels
from lightning_dicom.demo.synthetic import SyntheticSeries
from lightning_dicom.dicom.index import DicomIndex, SeriesRecord, patient_key
from lightning_dicom.errors import LabelError, LightningDicomError

KEY = bytes(range(32))  # the project's pseudonym key in these tests


@pytest.fixture(scope="module")
def indexed(
    synthetic_dataset: tuple[Path, list[SyntheticSeries]],
) -> tuple[list[SeriesRecord], list[SyntheticSeries]]:
    root, written = synthetic_dataset
    with DicomIndex([root], pseudonym_key=KEY) as idx:
        idx.scan(workers=1)
        series = idx.series()
    assert len(series) == len(written) == 6
    return series, written


def write_csv(tmp_path: Path, text: str, name: str = "labels.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("header", "key"),
    [
        ("SeriesInstanceUID", "SeriesInstanceUID"),
        ("StudyInstanceUID", "StudyInstanceUID"),
        ("PatientID", "PatientID"),
    ],
)
def test_key_detected_from_header(tmp_path: Path, header: str, key: str) -> None:
    table = read_labels(write_csv(tmp_path, f"label,{header}\n1,a\n0,b\n"), pseudonym_key=KEY)
    assert table.key == key
    assert table.columns == ["label"]
    ids = {"a", "b"} if key != "PatientID" else {patient_key(k, KEY) for k in "ab"}  # IDs never kept
    assert set(table.values) == ids


def test_key_detection_tolerates_bom_and_spaces(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffSeriesInstanceUID , label\n1.2.3, 1\n".encode())
    table = read_labels(path)
    assert table.key == "SeriesInstanceUID"
    assert table.columns == ["label"]
    assert int(table.values["1.2.3"]) == 1


def test_integer_classes(tmp_path: Path) -> None:
    table = read_labels(write_csv(tmp_path, "SeriesInstanceUID,label\n1.1,0\n1.2,2\n1.3,1.0\n"))
    assert table.kind == "class"
    assert {k: int(v) for k, v in table.values.items()} == {"1.1": 0, "1.2": 2, "1.3": 1}
    assert all(v.dtype == np.int64 and v.shape == () for v in table.values.values())
    assert table.classes == []


def test_string_classes_mapped_in_sorted_order(tmp_path: Path) -> None:
    table = read_labels(
        write_csv(tmp_path, "SeriesInstanceUID,dx\n1.1,malignant\n1.2,benign\n1.3,normal\n1.4,benign\n")
    )
    assert table.kind == "class"
    assert table.classes == ["benign", "malignant", "normal"]
    assert {k: int(v) for k, v in table.values.items()} == {"1.1": 1, "1.2": 0, "1.3": 2, "1.4": 0}
    assert all(v.dtype == np.int64 for v in table.values.values())


def test_float_regression(tmp_path: Path) -> None:
    table = read_labels(write_csv(tmp_path, "StudyInstanceUID,volume_ml\n2.1,12.5\n2.2,3\n2.3,-0.25\n"))
    assert table.kind == "regression"
    assert {k: float(v) for k, v in table.values.items()} == {"2.1": 12.5, "2.2": 3.0, "2.3": -0.25}
    assert all(v.dtype == np.float32 and v.shape == () for v in table.values.values())


def test_multi_column_vector_and_column_choice(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "SeriesInstanceUID,age,score,site\nA,60,0.5,north\nB,41,1.5,south\n")
    with pytest.raises(LabelError, match="must all be numeric"):
        read_labels(path)
    table = read_labels(path, columns=["score", "age"])
    assert table.kind == "multi"
    assert table.columns == ["score", "age"]
    np.testing.assert_array_equal(table.values["A"], np.array([0.5, 60.0], np.float32))
    np.testing.assert_array_equal(table.values["B"], np.array([1.5, 41.0], np.float32))
    assert table.values["A"].dtype == np.float32
    one = read_labels(path, columns=["site"])
    assert one.kind == "class"
    assert one.classes == ["north", "south"]


def test_empty_label_means_unlabelled(tmp_path: Path) -> None:
    table = read_labels(write_csv(tmp_path, "SeriesInstanceUID,label\n1.1,1\n1.2,\n1.3,0\n"))
    assert set(table.values) == {"1.1", "1.3"}


def test_match_reports_unlabelled_and_orphans(tmp_path: Path, indexed: tuple) -> None:
    series, written = indexed
    lines = ["SeriesInstanceUID,label"] + [f"{s.series_uid},{s.label}" for s in written[:4]]
    lines.append("9.9.9.orphan,1")
    table = read_labels(write_csv(tmp_path, "\n".join(lines) + "\n"))
    labelled, unlabelled, orphans = table.match(series)
    assert {s.series_uid for s in labelled} == {s.series_uid for s in written[:4]}
    assert {s.series_uid for s in unlabelled} == {s.series_uid for s in written[4:]}
    assert orphans == ["9.9.9.orphan"]
    truth = {s.series_uid: s.label for s in written}
    for rec in labelled:
        assert int(table.lookup(rec)) == truth[rec.series_uid]
    assert all(table.lookup(rec) is None for rec in unlabelled)


def test_synthetic_labels_csv_matches_every_series(synthetic_dataset: tuple, indexed: tuple) -> None:
    root, written = synthetic_dataset
    series, _ = indexed
    table = read_labels(root / "labels.csv")
    labelled, unlabelled, orphans = table.match(series)
    assert (len(labelled), unlabelled, orphans) == (6, [], [])
    assert sorted(int(table.lookup(r)) for r in labelled) == sorted(s.label for s in written)


def test_study_key_labels_every_series_of_the_study(tmp_path: Path, indexed: tuple) -> None:
    series, written = indexed
    table = read_labels(write_csv(tmp_path, f"StudyInstanceUID,y\n{written[0].study_uid},2.5\n"))
    labelled, unlabelled, orphans = table.match(series)
    assert [s.study_uid for s in labelled] == [written[0].study_uid]
    assert len(unlabelled) == 5
    assert orphans == []
    assert float(table.lookup(labelled[0])) == 2.5


def test_patient_orphans_are_pseudonyms(tmp_path: Path, indexed: tuple) -> None:
    series, written = indexed
    text = "PatientID,label\n" + "".join(f"{s.patient_id},{s.label}\n" for s in written[:3])
    text += "MRN-0042-SECRET,1\n"
    with pytest.raises(LabelError, match="pseudonym_key"):
        read_labels(write_csv(tmp_path, text))
    table = read_labels(write_csv(tmp_path, text), pseudonym_key=KEY)
    labelled, unlabelled, orphans = table.match(series)
    assert {s.patient_id for s in labelled} == {patient_key(s.patient_id, KEY) for s in written[:3]}
    assert len(unlabelled) == 3
    assert orphans == [patient_key("MRN-0042-SECRET", KEY)]
    assert all("MRN-0042-SECRET" not in o for o in orphans)


def _label_error(path: Path, columns: list[str] | None = None) -> str:
    with pytest.raises(LabelError) as info:
        read_labels(path, columns=columns, pseudonym_key=KEY)
    assert isinstance(info.value, LightningDicomError)
    assert info.value.path == str(path)
    assert str(path) in str(info.value)
    return str(info.value)


def test_no_key_column(tmp_path: Path) -> None:
    msg = _label_error(write_csv(tmp_path, "uid,label\n1.2,1\n"))
    assert "exactly one key column" in msg
    assert "none" in msg


def test_two_key_columns(tmp_path: Path) -> None:
    msg = _label_error(write_csv(tmp_path, "PatientID,SeriesInstanceUID,label\nA,1.2,1\n"))
    assert "exactly one key column" in msg
    assert "PatientID" in msg
    assert "SeriesInstanceUID" in msg


def test_duplicate_key(tmp_path: Path) -> None:
    msg = _label_error(write_csv(tmp_path, "SeriesInstanceUID,label\n1.2,1\n1.3,0\n1.2,0\n"))
    assert "line 4: duplicate SeriesInstanceUID 1.2" in msg


def test_duplicate_patient_id_is_not_printed(tmp_path: Path) -> None:
    msg = _label_error(write_csv(tmp_path, "PatientID,label\nMRN77,1\nMRN77,0\n"))
    assert "line 3: duplicate PatientID" in msg
    assert "MRN77" not in msg


def test_unknown_label_column(tmp_path: Path) -> None:
    msg = _label_error(write_csv(tmp_path, "SeriesInstanceUID,label\n1.2,1\n"), columns=["grade"])
    assert "['grade'] not in the header" in msg


def test_other_malformed_files(tmp_path: Path) -> None:
    assert "empty SeriesInstanceUID" in _label_error(
        write_csv(tmp_path, "SeriesInstanceUID,label\n,1\n", "a.csv")
    )
    assert "no label column" in _label_error(write_csv(tmp_path, "SeriesInstanceUID\n1.2\n", "b.csv"))
    assert "more values than header" in _label_error(
        write_csv(tmp_path, "SeriesInstanceUID,y\n1.2,1,7\n", "c.csv")
    )
    assert "cannot read" in _label_error(tmp_path / "missing.csv")
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("SeriesInstanceUID,dx\n1.2,l\xe9sion\n".encode("latin-1"))
    assert "not UTF-8" in _label_error(latin1)


def test_header_only_file_is_an_empty_table(tmp_path: Path) -> None:
    table = read_labels(write_csv(tmp_path, "SeriesInstanceUID,label\n"))
    assert table.key == "SeriesInstanceUID"
    assert table.values == {}


def test_trailing_comma_is_not_a_label_column(tmp_path: Path) -> None:
    table = read_labels(write_csv(tmp_path, "SeriesInstanceUID,label,\n1.2,1,\n1.3,0,\n"))
    assert table.columns == ["label"]
    assert table.kind == "class"
    assert {k: int(v) for k, v in table.values.items()} == {"1.2": 1, "1.3": 0}


def test_negative_classes_are_indexed_and_listed(tmp_path: Path) -> None:
    table = read_labels(write_csv(tmp_path, "SeriesInstanceUID,label\n1.1,-1\n1.2,1\n1.3,-1\n"))
    assert table.kind == "class"
    assert table.classes == ["-1", "1"]
    assert {k: int(v) for k, v in table.values.items()} == {"1.1": 0, "1.2": 1, "1.3": 0}
