"""Tests for lightning_dicom.data.cache.VolumeCache on real synthetic DICOM series."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
from pathlib import Path

import numpy as np
import pytest

from lightning_dicom.config import PreprocessingConfig
from lightning_dicom.data.cache import VolumeCache
from lightning_dicom.data.preprocess import preprocess
from lightning_dicom.demo.synthetic import write_dataset
from lightning_dicom.dicom.index import DicomIndex, SeriesRecord
from lightning_dicom.dicom.series import read_series
from lightning_dicom.errors import CacheError, LightningDicomError, SeriesError

PREP = PreprocessingConfig(spacing=(2.0, 2.0, 2.0), window=(-1000, 400), size=(6, 8, 8))


def index(root: Path) -> list[SeriesRecord]:
    with DicomIndex([root]) as idx:
        idx.scan(workers=1)
        return idx.series()


@pytest.fixture
def dicom(tmp_path: Path) -> tuple[Path, list[SeriesRecord]]:
    """Three small CT series written into this test's own folder (tests may modify them)."""
    root = tmp_path / "dicom"
    write_dataset(
        root, n_patients=3, shape_zyx=(8, 12, 12), spacing=(1.0, 1.0, 2.0), seed=3, labels_csv=False
    )
    series = index(root)
    assert len(series) == 3
    return root, series


def entry_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file())


def test_key_depends_on_preprocessing_dtype_and_files(tmp_path: Path, dicom: tuple) -> None:
    root, series = dicom
    cache = VolumeCache(tmp_path / "c", PREP)
    keys = [cache.key(s) for s in series]
    assert len(set(keys)) == 3
    assert all(len(k) == 32 for k in keys)
    assert keys == [
        VolumeCache(tmp_path / "other", PreprocessingConfig(**PREP.model_dump())).key(s) for s in series
    ]
    assert keys == [cache.key(s) for s in index(root)]  # re-index of unchanged files: same entries
    for changed in (
        PREP.model_copy(update={"window": (-1000, 500)}),
        PREP.model_copy(update={"orientation": "RAS"}),
        PREP.model_copy(update={"size": None}),
        PREP.model_copy(update={"normalize": "zscore"}),
    ):
        assert not set(keys) & {VolumeCache(tmp_path / "c", changed).key(s) for s in series}
    assert not set(keys) & {VolumeCache(tmp_path / "c", PREP, dtype="float32").key(s) for s in series}

    # touching one file of series 0 (mtime) changes only series 0's key
    f = Path(series[0].files[3])
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    after_touch = [cache.key(s) for s in index(root)]
    assert after_touch[0] != keys[0]
    assert after_touch[1:] == keys[1:]
    # growing a file of series 1 (size) changes series 1's key
    g = Path(series[1].files[0])
    st = g.stat()
    with open(g, "ab") as fh:
        fh.write(b"\0\0")
    os.utime(g, ns=(st.st_atime_ns, st.st_mtime_ns))  # same mtime: the size alone must change the key
    after_grow = [cache.key(s) for s in index(root)]
    assert after_grow[1] != keys[1]
    assert after_grow[0] == after_touch[0]
    assert after_grow[2] == keys[2]


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_build_writes_npy_and_sidecar_equal_to_preprocess(tmp_path: Path, dicom: tuple, dtype: str) -> None:
    _, series = dicom
    cache = VolumeCache(tmp_path / "cache", PREP, dtype=dtype)
    assert [cache.status(s) for s in series] == ["missing"] * 3
    assert cache.build(series, workers=1) == {"ok": 3, "error": 0, "built": 3}
    assert cache.build(series, workers=1) == {"ok": 3, "error": 0, "built": 0}  # nothing recomputed
    for rec in series:
        npy, side, err = cache.paths(rec)
        assert npy.exists()
        assert side.exists()
        assert not err.exists()
        assert npy.parent.name == cache.key(rec)[:2]
        assert cache.status(rec) == "ok"
        assert npy.read_bytes()[:6] == b"\x93NUMPY"
        stored = np.load(npy, allow_pickle=False)
        expected, meta = preprocess(read_series(rec), PREP)
        assert stored.dtype == np.dtype(dtype)
        assert stored.shape == (1, 6, 8, 8)
        np.testing.assert_array_equal(stored, expected.astype(dtype))
        side_meta = json.loads(side.read_text())
        assert side_meta["shape"] == [1, 6, 8, 8]
        assert side_meta["dtype"] == np.dtype(dtype).str
        assert side_meta["series_id"] == rec.series_id
        assert side_meta["series_uid"] == rec.series_uid
        np.testing.assert_allclose(side_meta["origin"], meta["origin"])
        np.testing.assert_allclose(side_meta["spacing"], (2.0, 2.0, 2.0))
        assert side_meta["crop_start"] == meta["crop_start"]
        assert side_meta["preprocessing"] == PREP.model_dump(mode="json")
        arr, loaded_meta = cache.load(rec)
        assert isinstance(arr, np.memmap)
        assert not arr.flags.writeable
        np.testing.assert_array_equal(arr, stored)
        assert loaded_meta == side_meta
    files = entry_files(cache.dir)
    assert len(files) == 6
    assert not any(p.name.endswith(".tmp") for p in files)
    assert cache.size_bytes() == sum(p.stat().st_size for p in files) > 0
    assert cache.size_bytes() > 3 * 6 * 8 * 8 * np.dtype(dtype).itemsize


def test_parallel_build_matches_serial(tmp_path: Path, dicom: tuple) -> None:
    _, series = dicom
    serial = VolumeCache(tmp_path / "serial", PREP)
    parallel = VolumeCache(tmp_path / "parallel", PREP)
    serial.build(series, workers=1)
    assert parallel.build(series, workers=2) == {"ok": 3, "error": 0, "built": 3}
    for rec in series:
        assert parallel.paths(rec)[0].read_bytes() == serial.paths(rec)[0].read_bytes()


def test_truncated_entry_is_corrupt_and_rebuilt(tmp_path: Path, dicom: tuple) -> None:
    _, series = dicom
    cache = VolumeCache(tmp_path / "cache", PREP)
    cache.build(series, workers=1)
    npy, side, _ = cache.paths(series[0])
    good = npy.read_bytes()
    npy.write_bytes(good[: len(good) // 2])
    assert cache.status(series[0]) == "corrupt"
    assert [cache.status(s) for s in series[1:]] == ["ok", "ok"]
    with pytest.raises(CacheError) as info:
        cache.load(series[0])
    assert str(npy) in str(info.value)
    assert series[0].series_uid in str(info.value)
    assert cache.build(series, workers=1) == {"ok": 3, "error": 0, "built": 1}
    assert npy.read_bytes() == good
    assert cache.status(series[0]) == "ok"
    # a sidecar that is not JSON, or disagrees with the array, is corrupt too
    side.write_text("{not json")
    assert cache.status(series[0]) == "corrupt"
    meta = json.loads(cache.paths(series[1])[1].read_text())
    cache.paths(series[1])[1].write_text(json.dumps({**meta, "shape": [1, 6, 8, 9]}))
    assert cache.status(series[1]) == "corrupt"
    assert cache.build(series, workers=1)["built"] == 2
    assert [cache.status(s) for s in series] == ["ok"] * 3


def _race(directory: str, prep: PreprocessingConfig, series: list[SeriesRecord], barrier: mp.Barrier) -> None:
    cache = VolumeCache(directory, prep)
    barrier.wait(timeout=60)
    counts = cache.build(series, workers=1)
    if counts["ok"] != len(series):
        raise SystemExit(3)


def test_concurrent_builders_leave_valid_entries(tmp_path: Path, dicom: tuple) -> None:
    _, series = dicom
    ctx = mp.get_context("fork")
    expected = {s.series_id: preprocess(read_series(s), PREP)[0].astype(np.float16) for s in series}
    for round_ in range(3):
        directory = tmp_path / f"cache{round_}"
        barrier = ctx.Barrier(3)
        procs = [ctx.Process(target=_race, args=(str(directory), PREP, series, barrier)) for _ in range(3)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=120)
        assert [p.exitcode for p in procs] == [0, 0, 0]
        cache = VolumeCache(directory, PREP)
        assert [cache.status(s) for s in series] == ["ok"] * 3
        files = entry_files(directory)
        assert not [p for p in files if p.name.endswith(".tmp")]
        assert len(files) == 6
        for s in series:
            arr, meta = cache.load(s, mmap=False)
            np.testing.assert_array_equal(arr, expected[s.series_id])
            assert meta["series_id"] == s.series_id


@pytest.mark.parametrize("workers", [1, 2])
def test_failed_series_leaves_error_marker(tmp_path: Path, dicom: tuple, workers: int) -> None:
    _, series = dicom
    broken = series[1]
    hidden = tmp_path / "hidden.dcm"
    os.rename(broken.files[2], hidden)  # one slice disappears after indexing
    cache = VolumeCache(tmp_path / "cache", PREP)
    assert cache.build(series, workers=workers) == {"ok": 2, "error": 1, "built": 3}
    assert cache.status(broken) == "error"
    npy, side, err = cache.paths(broken)
    assert err.exists()
    assert not npy.exists()
    assert not side.exists()
    marker = json.loads(err.read_text())
    assert marker["series_id"] == broken.series_id
    assert broken.series_uid in marker["reason"]
    assert broken.series_uid in cache.error(broken)
    assert cache.error(series[0]) is None
    assert cache.build(series, workers=workers)["built"] == 0  # recorded failures are not retried
    with pytest.raises(LightningDicomError) as info:
        cache.build(series, workers=workers, raise_errors=True)
    assert isinstance(info.value, SeriesError)
    assert broken.series_uid in str(info.value)
    # once the file is back, a build that retries errors succeeds and clears the marker
    os.rename(hidden, broken.files[2])
    assert cache.build(series, workers=workers, raise_errors=True) == {"ok": 3, "error": 0, "built": 1}
    assert cache.status(broken) == "ok"
    assert not err.exists()
    assert cache.error(broken) is None


def test_float16_overflow_is_an_error_not_infinity(tmp_path: Path) -> None:
    """Modality values beyond float16's range (e.g. PET in Bq/ml) must not be cached as inf."""
    import pydicom

    from lightning_dicom.demo.synthetic import write_series

    hu = np.full((3, 4, 4), 100, np.int16)
    hu[1, 2, 2] = 3000
    s = write_series(tmp_path / "big", hu, rescale_intercept=0.0)
    for f in s.files:  # a large rescale slope: stored 3000 becomes 90000
        ds = pydicom.dcmread(f)
        ds.RescaleSlope = "30"
        ds.save_as(f)
    (rec,) = index(tmp_path / "big")
    raw = PreprocessingConfig(normalize="none")
    assert float(preprocess(read_series(rec), raw)[0].max()) == 90000.0
    half = VolumeCache(tmp_path / "c16", raw)
    assert half.build([rec], workers=1) == {"ok": 0, "error": 1, "built": 1}
    reason = half.error(rec)
    assert "overflow" in reason and "float16" in reason and rec.series_uid in reason and "90000" in reason
    assert not half.paths(rec)[0].exists()
    full = VolumeCache(tmp_path / "c32", raw, dtype="float32")
    assert full.build([rec], workers=1)["ok"] == 1
    assert float(full.load(rec)[0].max()) == 90000.0
    windowed = VolumeCache(tmp_path / "cw", PreprocessingConfig(window=(0, 1000), normalize="none"))
    assert windowed.build([rec], workers=1)["ok"] == 1
    assert float(windowed.load(rec)[0].max()) == 1000.0


def test_cache_key_is_pinned_for_fixed_inputs() -> None:
    """Keys computed from fixed inputs: the same values as before the package was reorganised (issue 8;
    computed at e3d3fb8). Change them only with a deliberate cache format or preprocessing change,
    since a new key means every user's cache is rebuilt."""
    from lightning_dicom.config import MaskConfig, PreprocessingConfig
    from lightning_dicom.data.cache import VolumeCache
    from lightning_dicom.dicom.index import SeriesRecord

    rec = SeriesRecord(
        series_id="1.2.826.0.1.3680043.8.498.1", series_uid="1.2.826.0.1.3680043.8.498.1", study_uid="1.2.3",
        patient_id="x", frame_uid="1.2.4", modality="CT", description="", series_number=1, n_instances=2,
        n_slices=2, rows=4, cols=4, spacing=(1.0, 1.0, 2.0), orientation=(1.0, 0, 0, 0, 1.0, 0), plane="axial",
        files=("a", "b"), fingerprint="0123456789abcdef",
    )  # fmt: skip
    windowed = PreprocessingConfig(spacing=(1.5, 1.5, 1.5), window=(-1000, 400))
    assert VolumeCache("unused", windowed, "float16").key(rec) == "398707fea570f64f33d8e30291e763db"
    masked = VolumeCache("unused", PreprocessingConfig(), "float32", masks=MaskConfig(structures=["lesion"]))
    assert masked.key(rec) == "aac111aec1f99b26fea8baa76d3e48ab"
