"""A hostile folder: the index never raises, good data still reads, bad files are skipped with a
reason, and no source file is ever modified."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from testdata import PYDICOM_FILES

from lightning_dicom.demo.synthetic import direction_from_orientation, make_phantom, write_series
from lightning_dicom.dicom.index import DicomIndex
from lightning_dicom.dicom.series import read_series
from lightning_dicom.errors import SeriesError
from lightning_dicom.io import to_array


def _snapshot(root: Path) -> dict[str, tuple]:
    """(sha256, size, mtime_ns) of every regular file under root, links not followed."""
    out = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            if os.path.islink(p) or not os.path.isfile(p):
                out[p] = ("link-or-special", st.st_mtime_ns)
                continue
            try:
                with open(p, "rb") as fh:
                    digest = hashlib.sha256(fh.read()).hexdigest()
            except PermissionError:
                digest = "unreadable"
            out[p] = (digest, st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    good_dir = root / "Ünïcødé" / "患者 1" / "série"
    good = write_series(
        good_dir,
        make_phantom((6, 12, 10), seed=9),
        spacing=(0.9, 0.8, 2.0),
        direction=direction_from_orientation("coronal", 20),
        patient_id="PID-4242",
        patient_name="SECRET^NAME",
        seed=3,
    )
    junk = root / "junk"
    junk.mkdir()
    expected: dict[str, str] = {}

    (junk / "empty.dcm").write_bytes(b"")
    expected["empty.dcm"] = r"empty file \(0 bytes\)"
    rng = np.random.default_rng(0)
    (junk / "random.dcm").write_bytes(rng.bytes(4096))
    expected["random.dcm"] = "not a DICOM file"
    (junk / "fake_preamble.dcm").write_bytes(bytes(128) + b"DICM" + rng.bytes(500))
    expected["fake_preamble.dcm"] = "unreadable DICOM header|malformed header|no image pixel module"
    blob = good.files[0].read_bytes()
    (junk / "header_cut.dcm").write_bytes(blob[:300])  # cut inside the header
    expected["header_cut.dcm"] = "unreadable DICOM header|no image pixel module|missing"
    (junk / "copy_truncated.dcm").write_bytes(blob[:-64])  # same instance as a good slice, pixels cut
    expected["copy_truncated.dcm"] = "DUPLICATE"
    alone = write_series(root / "alone", make_phantom((1, 8, 8), seed=1), seed=5)
    data = alone.files[0].read_bytes()
    alone.files[0].write_bytes(data[:-40])
    shutil.copy(PYDICOM_FILES / "dicomdirtests" / "DICOMDIR", junk / "DICOMDIR")
    expected["DICOMDIR"] = "DICOMDIR"
    shutil.copy(PYDICOM_FILES / "rtplan.dcm", junk / "plan.dcm")
    expected["plan.dcm"] = r"no image pixel module: Rows/Columns missing \(RT Plan Storage\)"
    shutil.copy(PYDICOM_FILES / "test-SR.dcm", junk / "report")
    expected["report"] = "Comprehensive SR Storage"
    shutil.copy(PYDICOM_FILES / "rtdose.dcm", junk / "dose.dcm")
    expected["dose.dcm"] = r"not an image volume \(RT Dose Storage\)"
    shutil.copy(PYDICOM_FILES / "rtstruct.dcm", junk / "raw_rtstruct")  # no preamble, no file meta
    expected["raw_rtstruct"] = r"Rows/Columns missing \(RT Structure Set Storage\)"
    (junk / "notes.txt").write_text("patient SECRET^NAME, id PID-4242")
    expected["notes.txt"] = "not a DICOM file"
    (junk / "dir.dcm").mkdir()  # a folder that looks like a file
    (junk / "loop").symlink_to(root, target_is_directory=True)
    (junk / "selfloop.dcm").symlink_to(junk / "selfloop.dcm")
    expected["selfloop.dcm"] = "cannot stat"
    os.mkfifo(junk / "pipe.dcm")  # opening it would block forever
    bad_name = os.path.join(os.fsencode(junk), b"bad\xff\xfename.dcm")
    with open(bad_name, "wb") as fh:
        fh.write(blob)
    expected[os.fsdecode(b"bad\xff\xfename.dcm")] = "file name is not valid UTF-8"
    locked = junk / "locked.dcm"
    shutil.copy(good.files[1], locked)
    locked.chmod(0)
    yield {"root": root, "good": good, "alone": alone, "junk": junk, "expected": expected, "locked": locked}
    locked.chmod(0o600)


@pytest.fixture(scope="module")
def scanned(hostile, tmp_path_factory):
    before = _snapshot(hostile["root"])
    db = tmp_path_factory.mktemp("work") / "index.sqlite"
    idx = DicomIndex([hostile["root"]], db)
    report = idx.scan(workers=1)
    yield {
        "idx": idx,
        "report": report,
        "before": before,
        "series": idx.series(),
        "skipped": dict(idx.skipped()),
    }
    idx.close()


def test_index_never_raises_and_sees_every_file(scanned, hostile):
    report = scanned["report"]
    # 6 good slices, 1 truncated loner, 14 junk files (the FIFO and the folders are not files)
    assert report.n_files == 6 + 1 + 14
    assert report.n_read == report.n_files


def test_valid_series_reads_correctly_among_junk(scanned, hostile):
    good = hostile["good"]
    (rec,) = [s for s in scanned["series"] if s.series_uid == good.series_uid]
    assert rec.n_slices == 6
    assert rec.problems == ()
    assert "Ünïcødé/患者 1/série" in rec.files[0]
    image = read_series(rec)
    np.testing.assert_array_equal(to_array(image), good.hu)
    np.testing.assert_allclose(image.GetOrigin(), good.origin, atol=1e-4)
    np.testing.assert_allclose(image.GetDirection(), good.direction, atol=1e-6)
    np.testing.assert_allclose(image.GetSpacing(), good.spacing, atol=1e-4)
    again = read_series(rec.files[0].rsplit("/", 1)[0])  # and by its non-ASCII folder
    np.testing.assert_array_equal(to_array(again), good.hu)


@pytest.mark.parametrize(
    "name",
    [
        "empty.dcm",
        "random.dcm",
        "fake_preamble.dcm",
        "header_cut.dcm",
        "DICOMDIR",
        "plan.dcm",
        "report",
        "dose.dcm",
        "raw_rtstruct",
        "notes.txt",
        "selfloop.dcm",
        "bad\udcff\udcfename.dcm",
    ],
)
def test_each_bad_file_is_skipped_with_a_reason(scanned, hostile, name):
    import re

    path = str(hostile["junk"] / name)
    escaped = path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    reason = scanned["skipped"].get(path) or scanned["skipped"].get(escaped)
    assert reason is not None, f"{name} not skipped"
    assert re.search(hostile["expected"][name], reason), reason


def test_truncated_copy_of_a_good_slice_is_a_duplicate_not_a_failure(scanned, hostile):
    dups = scanned["idx"].duplicates()
    assert dups[str(hostile["junk"] / "copy_truncated.dcm")] == str(hostile["good"].files[0])


def test_truncated_loner_is_a_volume_that_fails_naming_the_file(scanned, hostile):
    (rec,) = [s for s in scanned["series"] if s.series_uid == hostile["alone"].series_uid]
    path = str(hostile["alone"].files[0])
    assert rec.problems
    assert rec.problems[0][0] == path
    with pytest.raises(SeriesError, match="file truncated") as info:
        read_series(rec)
    assert info.value.path == path
    assert scanned["idx"].report()["problems"]


def test_unreadable_file_is_skipped(scanned, hostile):
    locked = hostile["locked"]
    if os.access(locked, os.R_OK):
        pytest.skip("running as root (or with CAP_DAC_OVERRIDE): chmod 000 does not stop reads")
    assert scanned["skipped"][str(locked)].startswith("cannot open (Permission denied)")


def test_only_expected_volumes(scanned, hostile):
    uids = sorted(s.series_uid for s in scanned["series"])
    assert uids == sorted([hostile["good"].series_uid, hostile["alone"].series_uid])
    if os.access(hostile["locked"], os.R_OK):  # as root, locked.dcm is readable: a copy of a good slice
        pair = {str(hostile["locked"]), str(hostile["good"].files[1])}
        assert any({k, v} == pair for k, v in scanned["idx"].duplicates().items())


def test_report_carries_no_phi(scanned):
    text = json.dumps(scanned["idx"].report(), ensure_ascii=False)
    assert "SECRET" not in text
    assert "PID-4242" not in text


def test_source_files_are_never_modified(scanned, hostile):
    for rec in scanned["series"]:
        with contextlib.suppress(SeriesError):
            read_series(rec)
    scanned["idx"].scan(workers=1)
    after = _snapshot(hostile["root"])
    assert after == scanned["before"]
