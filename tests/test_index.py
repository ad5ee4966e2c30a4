"""DicomIndex on real files: pydicom's test_files (indexed in place) and generated trees."""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest
from testdata import PYDICOM_FILES

from lightning_dicom.config import SelectionConfig
from lightning_dicom.demo.synthetic import direction_from_orientation, make_phantom, write_series
from lightning_dicom.demo.synthetic_stacks import write_multiframe
from lightning_dicom.dicom.index import DicomIndex, SeriesRecord, patient_key, select_series

DICOMDIR_TESTS = PYDICOM_FILES / "dicomdirtests"


KEY = b"\x01" * 32


@pytest.fixture(scope="module")
def dicomdir_volumes() -> list[SeriesRecord]:
    with DicomIndex([DICOMDIR_TESTS], pseudonym_key=KEY) as idx:
        idx.scan(workers=1)
        return idx.series()


@pytest.fixture(scope="module")
def all_test_files() -> DicomIndex:
    idx = DicomIndex([PYDICOM_FILES])  # in memory; pydicom's folder is only read
    idx.scan(workers=1)
    yield idx
    idx.close()


def _folder(rec: SeriesRecord) -> str:
    return str(Path(rec.files[0]).parent.relative_to(DICOMDIR_TESTS))


def _by_folder(volumes: list[SeriesRecord]) -> dict[str, list[SeriesRecord]]:
    out: dict[str, list[SeriesRecord]] = {}
    for v in volumes:
        out.setdefault(_folder(v), []).append(v)
    return out


# -- pydicom's dicomdirtests ----------------------------------------------------------------------
def test_dicomdirtests_volume_and_series_counts(dicomdir_volumes):
    folders = _by_folder(dicomdir_volumes)
    counts = {k: len(v) for k, v in folders.items()}
    assert counts == {
        "77654033/CR1": 1,
        "77654033/CR2": 1,
        "77654033/CR3": 1,
        "77654033/CT2": 1,
        "98892001/CT2N": 2,
        "98892001/CT5N": 1,
        "98892003/MR1": 3,
        "98892003/MR2": 7,
        "98892003/MR700": 7,
    }
    assert len(dicomdir_volumes) == 24
    assert len({v.series_uid for v in dicomdir_volumes}) == 13
    assert {p.split("/")[0] for p in folders} == {"77654033", "98892001", "98892003"}
    # the folders 98892001 and 98892003 hold the same PatientID: two patients for the split, not three
    keys = {_folder(v).split("/")[0]: v.patient_key for v in dicomdir_volumes}
    assert keys["98892001"] == keys["98892003"] != keys["77654033"]
    assert len({v.patient_key for v in dicomdir_volumes}) == 2
    assert keys["77654033"] == patient_key("77654033", KEY)  # the keyed pseudonym: the index holds no ID
    assert all("77654033" not in v.patient_id and "98892001" not in v.patient_id for v in dicomdir_volumes)


def test_dicomdirtests_ct5n_is_one_5_slice_volume_in_position_order(dicomdir_volumes):
    (ct5n,) = _by_folder(dicomdir_volumes)["98892001/CT5N"]
    assert (ct5n.n_slices, ct5n.n_instances, ct5n.rows, ct5n.cols) == (5, 5, 16, 16)
    assert ct5n.modality == "CT"
    assert ct5n.plane == "axial"
    assert ct5n.spacing == pytest.approx((0.488281, 0.488281, 2.5))
    names = [Path(f).name for f in ct5n.files]
    assert names == ["3353", "3023", "2693", "2392", "2062"]  # IPP z from -1.24 up to 8.76 mm
    assert names != sorted(names)  # not file-name order
    z = [p[2] for p in ct5n.positions]
    assert z == pytest.approx([-1.24, 1.26, 3.76, 6.26, 8.76], abs=0.01)
    assert ct5n.series_id == ct5n.series_uid  # one volume: no "#k" suffix
    assert ct5n.description == "SmartScore - Gated 0.5 sec"


def test_dicomdirtests_mr700_splits_by_orientation(dicomdir_volumes):
    mr700 = _by_folder(dicomdir_volumes)["98892003/MR700"]
    assert len({v.series_uid for v in mr700}) == 1  # one SeriesInstanceUID ...
    uid = mr700[0].series_uid
    assert sorted(v.series_id for v in mr700) == sorted(f"{uid}#{k}" for k in range(1, 8))  # ... 7 volumes
    assert all(v.n_slices == 1 for v in mr700)
    assert len({tuple(np.round(v.orientation, 3)) for v in mr700}) == 7
    assert sorted(v.plane for v in mr700) == [
        "coronal",
        "oblique",
        "oblique",
        "oblique",
        "oblique",
        "sagittal",
        "sagittal",
    ]
    for v in mr700:  # IOPs written with 6 digits are re-orthonormalised
        row, col = np.array(v.orientation[:3]), np.array(v.orientation[3:])
        assert np.linalg.norm(row) == pytest.approx(1, abs=1e-9)
        assert abs(row @ col) < 1e-9


def test_dicomdirtests_scouts_and_localizers(dicomdir_volumes):
    folders = _by_folder(dicomdir_volumes)
    assert sorted(v.plane for v in folders["98892001/CT2N"]) == ["coronal", "sagittal"]
    mr2 = folders["98892003/MR2"]
    per_uid: dict[str, list[str]] = {}
    for v in mr2:
        per_uid.setdefault(v.series_uid, []).append(v.plane)
    assert sorted(sorted(p) for p in per_uid.values()) == [
        ["axial", "coronal", "sagittal"],
        ["axial", "coronal", "sagittal"],
        ["sagittal"],
    ]
    (ct2,) = folders["77654033/CT2"]
    assert ct2.n_slices == 4
    assert ct2.spacing[2] == pytest.approx(1.25)
    crs = [v for k, vs in folders.items() if "/CR" in k for v in vs]
    assert len(crs) == 3
    assert all(not v.has_geometry and v.photometric == "MONOCHROME1" for v in crs)
    assert all(v.positions == ((0.0, 0.0, 0.0),) and v.plane == "axial" for v in crs)


def test_dicomdirtests_skips_dicomdir_and_header_only_files():
    with DicomIndex([DICOMDIR_TESTS]) as idx:
        report = idx.scan(workers=1)
        skipped = dict(idx.skipped())
    assert report.n_files == 30 + 50 + 8 + 3  # images, TINY_ALPHA stubs, DICOMDIRs, READMEs
    dicomdirs = [p for p, r in skipped.items() if r.startswith("DICOMDIR")]
    assert sorted(Path(p).name for p in dicomdirs) == [
        "DICOMDIR",
        "DICOMDIR",
        "DICOMDIR-bigEnd",
        "DICOMDIR-empty.dcm",
        "DICOMDIR-implicit",
        "DICOMDIR-nooffset",
        "DICOMDIR-nopatient",
        "DICOMDIR-reordered",
    ]
    tiny = [r for p, r in skipped.items() if "TINY_ALPHA" in p and "/IM" in p]
    assert len(tiny) == 50
    assert set(tiny) == {"no image pixel module: Rows/Columns missing (CT Image Storage)"}
    assert skipped[str(DICOMDIR_TESTS / "README.txt")].startswith("not a DICOM file")


# -- pydicom's whole test_files folder ------------------------------------------------------------
NON_IMAGE = {
    "rtplan.dcm": "RT Plan Storage",
    "rtplan_truncated.dcm": "RT Plan Storage",
    "test-SR.dcm": "Comprehensive SR Storage",
    "reportsi.dcm": "Basic Text SR Storage",
    "rtdose.dcm": "not an image volume (RT Dose Storage)",
    "rtdose_rle.dcm": "not an image volume (RT Dose Storage)",
    "rtdose_expb_1frame.dcm": "not an image volume (RT Dose Storage)",
    "liver_1frame.dcm": "not an image volume (Segmentation Storage)",
    "waveform_ecg.dcm": "12-lead ECG Waveform Storage",
    "dicomdirtests/DICOMDIR": "DICOMDIR",
    "README.txt": "not a DICOM file",
    "zipMR.gz": "not a DICOM file",
    "no_meta.dcm": "not a DICOM file",  # not a dataset even without the Part 10 header
    "rtstruct.dcm": "no image pixel module: Rows/Columns missing (RT Structure Set Storage)",  # raw dataset
    "ExplVR_BigEndNoMeta.dcm": "RT Ion Plan Storage",
    "ExplVR_LitEndNoMeta.dcm": "RT Ion Plan Storage",
    "JPEGLSNearLossless_08.dcm": "missing SeriesInstanceUID",
}


@pytest.mark.parametrize(("rel", "reason"), sorted(NON_IMAGE.items()))
def test_non_image_objects_are_skipped_with_a_reason(all_test_files, rel, reason):
    skipped = dict(all_test_files.skipped())
    assert reason in skipped[str(PYDICOM_FILES / rel)]


def test_every_file_is_either_in_a_volume_a_duplicate_or_skipped(all_test_files):
    on_disk = {str(p) for p in PYDICOM_FILES.rglob("*") if p.is_file()}
    rows = all_test_files.files()
    assert {r["path"] for r in rows} == on_disk
    in_volumes = {f for s in all_test_files.series() for f in s.files}
    duplicates = set(all_test_files.duplicates())
    skipped = {p for p, _ in all_test_files.skipped()}
    assert in_volumes | duplicates | skipped == on_disk
    assert not (in_volumes & duplicates)
    assert not (in_volumes & skipped)
    assert not (duplicates & skipped)
    assert all(reason for _, reason in all_test_files.skipped())


def test_same_instance_in_many_transfer_syntaxes_counts_once(all_test_files):
    """MR_small.dcm exists in 9 encodings (one truncated): one volume, the uncompressed copy kept."""
    (mr,) = [s for s in all_test_files.series() if Path(s.files[0]).name.startswith("MR_small")]
    assert [Path(f).name for f in mr.files] == ["MR_small.dcm"]
    assert mr.n_slices == 1
    assert mr.problems == ()
    assert sorted(Path(f).name for f in mr.duplicates) == [
        "MR_small_RLE.dcm",
        "MR_small_bigendian.dcm",
        "MR_small_expb.dcm",
        "MR_small_implicit.dcm",
        "MR_small_jp2klossless.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
        "MR_small_padded.dcm",
        "MR_truncated.dcm",
    ]
    report = all_test_files.report()
    assert report["duplicates"][str(PYDICOM_FILES / "MR_truncated.dcm")] == str(
        PYDICOM_FILES / "MR_small.dcm"
    )
    (truncated,) = [p for reason, paths in report["problems"].items() for p in paths if "truncated" in reason]
    assert truncated == str(PYDICOM_FILES / "MR_truncated.dcm")


def test_truncated_file_alone_is_a_volume_with_a_problem(tmp_path):
    shutil.copy(PYDICOM_FILES / "MR_truncated.dcm", tmp_path / "x.dcm")
    with DicomIndex([tmp_path]) as idx:
        idx.scan(workers=1)
        (rec,) = idx.series()
    assert rec.problems == (
        (
            str(tmp_path / "x.dcm"),
            "file truncated: Pixel Data needs 8192 bytes, the file ends 62 bytes short",
        ),
    )


def test_multiframe_and_2d_images_are_volumes_of_their_own(all_test_files):
    by_name = {Path(s.files[0]).name: s for s in all_test_files.series()}
    ybr = by_name["examples_ybr_color.dcm"]
    assert (ybr.n_instances, ybr.n_slices, ybr.samples_per_pixel) == (1, 30, 3)
    assert len(ybr.positions) == 30
    assert not ybr.has_geometry
    rgb_2frame = by_name["SC_rgb_rle_2frame.dcm"]
    assert rgb_2frame.series_id.startswith(rgb_2frame.series_uid + "#")  # the UID holds many 2D images
    assert rgb_2frame.n_slices == 2
    assert by_name["CT_small.dcm"].n_slices == 1
    assert by_name["CT_small.dcm"].has_geometry


# -- generated trees ------------------------------------------------------------------------------
def test_rescan_reads_only_new_or_changed_files(tmp_path):
    root = tmp_path / "data"
    s = write_series(root / "a", make_phantom((6, 8, 8)), seed=1)
    db = tmp_path / "work" / "index.sqlite"
    with DicomIndex([root], db) as idx:
        first = idx.scan(workers=1)
        assert (first.n_files, first.n_read, first.n_removed) == (6, 6, 0)
        again = idx.scan(workers=1)
        assert (again.n_files, again.n_read, again.n_removed) == (6, 0, 0)
        fp = idx.series()[0].fingerprint
    with DicomIndex([root], db) as idx:  # persisted: a new process reads nothing either
        assert idx.scan(workers=1).n_read == 0
        st = s.files[2].stat()
        os.utime(s.files[2], ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # touched
        touched = idx.scan(workers=1)
        assert (touched.n_read, touched.n_removed) == (1, 0)
        assert idx.series()[0].fingerprint != fp
        with open(s.files[3], "ab") as fh:  # content changed (size differs)
            fh.write(b"\0\0")
        assert idx.scan(workers=1).n_read == 1
        s.files[4].unlink()
        removed = idx.scan(workers=1)
        assert (removed.n_files, removed.n_read, removed.n_removed) == (5, 0, 1)
        (rec,) = idx.series()
        assert rec.n_slices == 5
        assert str(s.files[4]) not in rec.files
        write_series(root / "b", make_phantom((3, 8, 8)), seed=2)
        added = idx.scan(workers=1)
        assert (added.n_files, added.n_read) == (8, 3)
        assert len(idx.series()) == 2


def test_files_without_suffix_in_nested_folders_are_found(tmp_path):
    deep = tmp_path / "a" / "b" / "c" / "d"
    s1 = write_series(deep, make_phantom((4, 8, 8)), suffix="", seed=1)
    s2 = write_series(tmp_path / "x", make_phantom((3, 8, 8)), suffix=".IMA", seed=2)
    (tmp_path / "x" / "notes.txt").write_text("not dicom")
    with DicomIndex([tmp_path]) as idx:
        report = idx.scan(workers=1)
        series = {s.series_uid: s for s in idx.series()}
        skipped = dict(idx.skipped())
    assert report.n_files == 8
    assert all(Path(f).suffix == "" for f in series[s1.series_uid].files)
    assert series[s1.series_uid].n_slices == 4
    assert series[s2.series_uid].n_slices == 3
    assert skipped == {
        str(tmp_path / "x" / "notes.txt"): "not a DICOM file (no DICM preamble or valid header)"
    }


def test_raw_dataset_without_preamble_is_recognised_and_junk_is_not(tmp_path):
    """pydicom's rtstruct.dcm has no preamble nor file meta: read as a raw dataset, it is an RT
    Structure Set (skipped as a non-image, by name); bytes that are not a dataset stay "not DICOM"."""
    shutil.copy(PYDICOM_FILES / "rtstruct.dcm", tmp_path / "rtstruct.dcm")
    rng = np.random.default_rng(3)
    (tmp_path / "random.bin").write_bytes(rng.bytes(4096))
    (tmp_path / "group8.bin").write_bytes(b"\x08\x00\x16\x00" + rng.bytes(2000))  # starts like a dataset
    (tmp_path / "notes.txt").write_text("SOPClassUID 1.2.840.10008.5.1.4.1.1.2")
    (tmp_path / "short.bin").write_bytes(b"\x08\x00")
    with DicomIndex([tmp_path]) as idx:
        idx.scan(workers=1)
        skipped = dict(idx.skipped())
        assert idx.series() == []
    assert "RT Structure Set Storage" in skipped[str(tmp_path / "rtstruct.dcm")]
    for name in ("random.bin", "group8.bin", "notes.txt", "short.bin"):
        assert skipped[str(tmp_path / name)] == "not a DICOM file (no DICM preamble or valid header)", name


def test_symlink_loops_do_not_hang_and_links_do_not_duplicate(tmp_path):
    root = tmp_path / "root"
    s = write_series(root / "series", make_phantom((3, 8, 8)), seed=1)
    (root / "series" / "loop").symlink_to(root, target_is_directory=True)  # root/series/loop -> root
    (root / "self").symlink_to(root / "self")  # a link to itself
    (root / "a").symlink_to(root / "b")
    (root / "b").symlink_to(root / "a")  # a <-> b
    (root / "dangling").symlink_to(tmp_path / "nowhere")
    (root / "copy.dcm").symlink_to(s.files[0])  # a link to a slice
    t0 = time.perf_counter()
    with DicomIndex([root]) as idx:
        idx.scan(workers=1)
        (rec,) = idx.series()
        skipped = dict(idx.skipped())
        dups = idx.duplicates()
    assert time.perf_counter() - t0 < 30
    assert rec.n_slices == 3  # the link to a slice is the same instance: counted once
    assert len(dups) == 1
    assert set(*dups.items()) == {str(root / "copy.dcm"), str(s.files[0])}
    assert set(rec.files) & set(*dups.items())  # whichever path is kept, it is in the volume
    for name in ("self", "a", "b", "dangling"):
        assert skipped[str(root / name)] == "cannot stat (broken symlink or symlink loop)"


def test_one_uid_with_two_orientations_and_multiframe_files(tmp_path):
    uid = "1.2.826.0.1.3680043.8.498.1"
    write_series(tmp_path / "ax", make_phantom((5, 8, 8)), series_uid=uid, seed=1)
    write_series(
        tmp_path / "sag",
        make_phantom((2, 8, 8)),
        series_uid=uid,
        seed=2,
        direction=direction_from_orientation("sagittal"),
    )
    order = [2, 0, 3, 1]
    mf = write_multiframe(
        tmp_path / "mf" / "one.dcm",
        make_phantom((4, 6, 6)),
        series_uid=uid,
        frame_order=order,
        spacing=(1, 1, 3),
        direction=direction_from_orientation("coronal"),
    )
    with DicomIndex([tmp_path]) as idx:
        idx.scan(workers=1)
        vols = {s.series_id: s for s in idx.series()}
    assert set(vols) == {f"{uid}#1", f"{uid}#2", f"{uid}#3"}
    assert (vols[f"{uid}#1"].n_slices, vols[f"{uid}#1"].plane) == (5, "axial")  # #1 = the largest
    mf_rec = vols[f"{uid}#2"]
    assert (mf_rec.n_instances, mf_rec.n_slices, mf_rec.plane) == (1, 4, "coronal")
    assert mf_rec.files == (str(mf.files[0]),)
    assert mf_rec.frame_order == (1, 3, 0, 2)  # file frame holding slice 0, 1, 2, 3
    proj = np.asarray(mf_rec.positions) @ np.array([0.0, 1.0, 0.0])  # coronal normal
    assert proj == pytest.approx(np.asarray(mf.origin)[1] + 3 * np.arange(4), abs=1e-3)
    assert mf_rec.spacing == pytest.approx((1, 1, 3))
    assert (vols[f"{uid}#3"].n_slices, vols[f"{uid}#3"].plane) == (2, "sagittal")


def test_copied_folder_counts_once(tmp_path):
    s = write_series(tmp_path / "orig", make_phantom((4, 8, 8)), seed=1)
    shutil.copytree(tmp_path / "orig", tmp_path / "orig (copy)")
    with DicomIndex([tmp_path]) as idx:
        idx.scan(workers=1)
        (rec,) = idx.series()
        report = idx.report()
    assert rec.n_slices == 4
    assert len(rec.duplicates) == 4
    # the first path in sort order is kept: "orig (copy)/..." sorts before "orig/..."
    assert set(rec.duplicates) == {str(f) for f in s.files}
    assert all("(copy)" in f for f in rec.files)
    assert set(report["duplicates"]) == {str(f) for f in s.files}


def test_old_schema_is_rebuilt(tmp_path):
    db = tmp_path / "index.sqlite"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE files (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, status, reason)")
    con.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    con.execute("INSERT INTO meta VALUES ('schema', '1')")
    con.execute("INSERT INTO files VALUES ('/gone', 1, 1, 'ok', NULL)")
    con.commit()
    con.close()
    write_series(tmp_path / "d", make_phantom((2, 8, 8)), seed=1)
    with DicomIndex([tmp_path / "d"], db) as idx:
        assert idx.files() == []
        assert idx.scan(workers=1).n_read == 2
        assert len(idx.series()) == 1


def test_select_series_rules(dicomdir_volumes):
    kept, dropped = select_series(dicomdir_volumes, SelectionConfig(modalities=["CT"]))
    assert sorted(_folder(s) for s in kept) == [
        "77654033/CT2",
        "98892001/CT2N",
        "98892001/CT2N",
        "98892001/CT5N",
    ]
    assert len(dropped) == 20
    assert all(r.startswith("modality") for _, r in dropped)
    assert "modality CR not in ['CT']" in {r for _, r in dropped}

    kept, dropped = select_series(dicomdir_volumes, SelectionConfig(modalities=["ct", "MR"], min_slices=4))
    assert sorted(_folder(s) for s in kept) == ["77654033/CT2", "98892001/CT5N"]
    assert "1 slices < min_slices 4" in {r for _, r in dropped}

    kept, _ = select_series(dicomdir_volumes, SelectionConfig(modalities=None, description="smartscore"))
    assert [_folder(s) for s in kept] == ["98892001/CT5N"]

    kept, dropped = select_series(
        dicomdir_volumes, SelectionConfig(modalities=["MR"], exclude_description="LOCALIZER|PILOT")
    )
    assert {_folder(s) for s in kept} == {"98892003/MR700"}
    assert sum(r == "description excluded" for _, r in dropped) == 10

    kept, dropped = select_series(
        dicomdir_volumes, SelectionConfig(modalities=["MR"], orientations=["oblique"])
    )
    assert len(kept) == 4
    assert {_folder(s) for s in kept} == {"98892003/MR700"}
    assert {r for _, r in dropped if r.startswith("plane")} == {
        "plane sagittal not in ['oblique']",
        "plane coronal not in ['oblique']",
        "plane axial not in ['oblique']",
    }


# -- speed (correctness asserts only; the rate is printed) ------------------------------------------
def _clone_series(template: list[Path], out: Path, n: int) -> int:
    """n copies of a series with new Study/Series/SOP UIDs, patched byte-wise (same-length UIDs)."""
    blobs = [f.read_bytes() for f in template]
    first = pydicom.dcmread(template[0], stop_before_pixels=True)
    study, series = first.StudyInstanceUID.encode(), first.SeriesInstanceUID.encode()
    sops = [pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID.encode() for f in template]
    written = 0
    for k in range(n):
        d = out / f"p{k // 4:03d}" / f"s{k:04d}"
        d.mkdir(parents=True)
        tag = f"{k:06d}".encode()
        for i, (blob, sop) in enumerate(zip(blobs, sops, strict=True)):
            new = blob.replace(series, series[:-6] + tag).replace(
                study, study[:-6] + f"{k // 4:06d}".encode()
            )
            new = new.replace(sop, sop[:-6] + tag)
            (d / f"{i:03d}").write_bytes(new)
            written += 1
    return written


def test_index_rate_on_a_2000_file_tree(tmp_path):
    s = write_series(tmp_path / "template", make_phantom((20, 8, 8), seed=1), seed=1)
    n = _clone_series(s.files, tmp_path / "tree", 100)
    assert n == 2000
    with DicomIndex([tmp_path / "tree"], tmp_path / "index.sqlite") as idx:
        report = idx.scan(workers=2)
        series = idx.series()
        assert report.n_files == report.n_read == 2000
        assert not idx.skipped()
        assert len(series) == 100
        assert {v.n_slices for v in series} == {20}
        assert len({v.study_uid for v in series}) == 25
        assert len({v.series_uid for v in series}) == 100
        assert all(v.spacing == pytest.approx(s.spacing) for v in series)
        again = idx.scan(workers=2)
        assert again.n_read == 0
    print(
        f"\nindexed {report.n_files} files in {report.seconds:.2f} s = {report.files_per_second:.0f} files/s "
        f"(2 workers); unchanged re-scan {again.seconds:.3f} s"
    )


def test_colour_images_are_dropped_by_default_and_kept_on_request(tmp_path):
    """SamplesPerPixel > 1 (an RGB screenshot among grayscale series) is left out with a reason that
    names the setting; ``selection.colour: keep`` keeps it."""
    import shutil

    from lightning_dicom.config import SelectionConfig
    from lightning_dicom.dicom.index import DicomIndex, select_series

    shutil.copy(PYDICOM_FILES / "SC_rgb_small_odd.dcm", tmp_path / "rgb.dcm")
    shutil.copy(PYDICOM_FILES / "CT_small.dcm", tmp_path / "ct.dcm")
    with DicomIndex([tmp_path], tmp_path / "i.sqlite") as idx:
        idx.scan(workers=1)
        series = idx.series()
    kept, dropped = select_series(series, SelectionConfig(modalities=None))
    assert [s.samples_per_pixel for s in kept] == [1]
    assert len(dropped) == 1 and "colour image (3 samples per pixel; selection.colour: keep" in dropped[0][1]
    kept, dropped = select_series(series, SelectionConfig(modalities=None, colour="keep"))
    assert sorted(s.samples_per_pixel for s in kept) == [1, 3] and dropped == []
