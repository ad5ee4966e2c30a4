"""Persistent cache of preprocessed volumes: plain ``.npy`` arrays + JSON sidecars, no pickle.

An entry is ``<dir>/<key[:2]>/<key>.npy`` (``[C, D, H, W]``, float16 or float32) and
``<key>.json`` (geometry, series ids, preprocessing, library version). The key hashes the source
files' identity (paths, sizes, mtimes), the preprocessing config, the stored dtype and the cache
format version, so a change to any of them makes a new entry and unchanged data is never
recomputed. Writes go to a temp file in the same folder and are moved into place with
``os.replace`` (atomic), the array first and the sidecar last: an entry exists once its sidecar
does. Concurrent writers (workers, DDP ranks on a shared filesystem) write identical bytes, and
the last rename wins. An entry whose array does not match its sidecar (truncated, corrupt) is
rebuilt. A series that fails leaves an ``<key>.error.json`` with the reason, so every rank agrees
on what was skipped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from lightning_dicom.config import MaskConfig, PreprocessingConfig
from lightning_dicom.dicom.index import SeriesRecord
from lightning_dicom.errors import CacheError, LightningDicomError, LightningDicomWarning, warn
from lightning_dicom.files import atomic_write

__all__ = ["VolumeCache"]

log = logging.getLogger(__name__)

CACHE_FORMAT = 1


class VolumeCache:
    """The on-disk cache for one preprocessing config.

    Args:
        directory: cache folder (created).
        preprocessing: the config whose output is stored.
        dtype: stored dtype of images, 'float16' (default) or 'float32'.
    """

    def __init__(
        self,
        directory: str | Path,
        preprocessing: PreprocessingConfig,
        dtype: str = "float16",
        masks: MaskConfig | None = None,
        mask_sources: Mapping[str, Sequence[str]] | None = None,
    ):
        from lightning_dicom._version import __version__

        self.dir = Path(directory)
        self.preprocessing = preprocessing
        self.dtype = np.dtype(dtype)
        self.masks = masks
        self.mask_sources = {k: tuple(v) for k, v in (mask_sources or {}).items()}
        self._salt = json.dumps(
            [
                CACHE_FORMAT,
                __version__.split(".")[:2],
                preprocessing.digest(),
                self.dtype.str,
                masks.digest() if masks else None,
            ]
        )

    def _mask_fingerprint(self, rec: SeriesRecord) -> str:
        if self.masks is None:
            return ""
        ident = []
        for p in self.mask_sources.get(rec.series_id, ()):
            try:
                st = os.stat(p)
                ident.append((str(p), st.st_size, st.st_mtime_ns))
            except OSError:
                ident.append((str(p), -1, -1))
        return json.dumps(ident)

    def key(self, rec: SeriesRecord) -> str:
        """Cache key of a series under this config (and its mask files, when masks are configured)."""
        ident = f"{self._salt}|{rec.series_id}|{rec.fingerprint}|{self._mask_fingerprint(rec)}"
        return hashlib.sha256(ident.encode()).hexdigest()[:32]

    def paths(self, rec: SeriesRecord) -> tuple[Path, Path, Path]:
        """(array, sidecar, error marker) paths of a series' entry."""
        k = self.key(rec)
        d = self.dir / k[:2]
        return d / f"{k}.npy", d / f"{k}.json", d / f"{k}.error.json"

    def mask_paths(self, rec: SeriesRecord) -> tuple[Path, Path]:
        """(mask array ``[1 or K, D, H, W]`` uint8, foreground voxel list ``[N, 3]`` int32) of an entry."""
        npy = self.paths(rec)[0]
        return npy.with_name(npy.stem + ".mask.npy"), npy.with_name(npy.stem + ".fg.npy")

    # -- reading ----------------------------------------------------------------------------------
    def status(self, rec: SeriesRecord) -> str:
        """'ok', 'error' (a recorded failure), 'missing' or 'corrupt'."""
        npy, side, err = self.paths(rec)
        if side.exists():
            return "ok" if self._valid(npy, side) else "corrupt"
        return "error" if err.exists() else "missing"

    @staticmethod
    def _valid(npy: Path, side: Path) -> bool:
        try:
            meta = json.loads(side.read_text())
            arr = np.load(npy, mmap_mode="r", allow_pickle=False)
            expected = int(np.prod(meta["shape"])) * np.dtype(meta["dtype"]).itemsize
            ok = (
                list(arr.shape) == meta["shape"]
                and arr.dtype.str == np.dtype(meta["dtype"]).str
                and (arr.nbytes == expected and npy.stat().st_size >= expected)
            )
            if ok and "mask" in meta:
                mask = np.load(npy.with_name(npy.stem + ".mask.npy"), mmap_mode="r", allow_pickle=False)
                np.load(npy.with_name(npy.stem + ".fg.npy"), mmap_mode="r", allow_pickle=False)
                ok = list(mask.shape) == meta["mask"]["shape"] and mask.dtype == np.uint8
            return ok
        except (OSError, ValueError, KeyError, json.JSONDecodeError):
            return False

    def load(self, rec: SeriesRecord, mmap: bool = True) -> tuple[np.ndarray, dict[str, Any]]:
        """The cached array (memory-mapped, read-only) and its sidecar."""
        npy, side, _ = self.paths(rec)
        try:
            meta = json.loads(side.read_text())
            return np.load(npy, mmap_mode="r" if mmap else None, allow_pickle=False), meta
        except (OSError, ValueError) as err:
            raise CacheError(
                f"cannot read cache entry ({err}); delete it or rebuild the cache",
                path=npy,
                series_uid=rec.series_uid,
            ) from None

    def sidecar(self, rec: SeriesRecord) -> dict[str, Any]:
        """The JSON sidecar of a series' entry (geometry, ids, preprocessing, mask summary).

        Raises:
            CacheError: the entry is missing or unreadable.
        """
        side = self.paths(rec)[1]
        try:
            return json.loads(side.read_text())
        except (OSError, ValueError) as err:
            raise CacheError(
                f"cannot read cache sidecar ({err}); rebuild the cache", path=side, series_uid=rec.series_uid
            ) from None

    def array_path(self, rec: SeriesRecord) -> Path:
        """The ``.npy`` of a series' image entry (``[C, D, H, W]``, memory-mappable)."""
        return self.paths(rec)[0]

    def foreground(self, rec: SeriesRecord) -> np.ndarray:
        """Foreground voxel list ``[N, 3]`` (z-y-x int32) of a series' mask entry."""
        return np.load(self.mask_paths(rec)[1], allow_pickle=False)

    def error(self, rec: SeriesRecord) -> str | None:
        """The recorded failure reason of a series, if any."""
        err = self.paths(rec)[2]
        return json.loads(err.read_text())["reason"] if err.exists() else None

    # -- writing ----------------------------------------------------------------------------------
    def build_one(self, rec: SeriesRecord, *, raise_errors: bool = False) -> str:
        """Make sure one entry exists. Returns its status after the call ('ok' or 'error')."""
        st = self.status(rec)
        if st == "ok" or (st == "error" and not raise_errors):
            return st
        from lightning_dicom.data.pipeline import process_series

        npy, side, err = self.paths(rec)
        npy.parent.mkdir(parents=True, exist_ok=True)
        try:
            done = process_series(
                rec,
                self.preprocessing,
                masks=self.masks,
                mask_sources=self.mask_sources.get(rec.series_id, ()),
            )
            array = self._cast(done.image, rec)
        except LightningDicomError as e:
            if raise_errors:
                raise
            marker = json.dumps({"series_id": rec.series_id, "reason": str(e)}).encode()
            atomic_write(err, lambda tmp: Path(tmp).write_bytes(marker))
            log.warning("skipping series %s: %s", rec.series_id, e.reason)
            return "error"
        meta = done.meta
        meta.update(
            {
                "shape": list(array.shape),
                "dtype": array.dtype.str,
                "preprocessing": self.preprocessing.model_dump(mode="json"),
                "cache_format": CACHE_FORMAT,
                "lightning_dicom": self._salt,
            }
        )
        if done.mask is not None and self.masks is not None:
            from lightning_dicom.masks.pipeline import foreground_coords

            labels = done.mask
            fg = foreground_coords(labels)
            mpath, fpath = self.mask_paths(rec)
            atomic_write(mpath, lambda tmp: np.save(tmp, labels, allow_pickle=False))
            atomic_write(fpath, lambda tmp: np.save(tmp, fg, allow_pickle=False))
            meta["mask"] = {
                "structures": list(self.masks.structures),
                "missing": done.missing,
                "mode": self.masks.mode,
                "shape": list(labels.shape),
                "foreground_voxels": int(len(fg)),
            }
        atomic_write(npy, lambda tmp: np.save(tmp, array, allow_pickle=False))
        atomic_write(side, lambda tmp: Path(tmp).write_text(json.dumps(meta)))
        err.unlink(missing_ok=True)  # a failure recorded earlier no longer holds
        return "ok"

    def _cast(self, array: np.ndarray, rec: SeriesRecord) -> np.ndarray:
        """``array`` in the stored dtype; values beyond its range are an error, not silent infinities."""
        with np.errstate(over="ignore"):
            out = array.astype(self.dtype, copy=False)
        if out.dtype != array.dtype and not np.isfinite(out).all() and np.isfinite(array).all():
            big = float(np.abs(array).max())
            raise CacheError(
                f"values up to {big:g} overflow the cache dtype {self.dtype.name} (max "
                f"{float(np.finfo(self.dtype).max):g}); set cache.dtype: float32, or a window or normalisation",
                series_uid=rec.series_uid,
            )
        return out

    def build(
        self,
        series: Sequence[SeriesRecord],
        *,
        workers: int | None = None,
        progress: bool = False,
        raise_errors: bool = False,
    ) -> dict[str, int]:
        """Build every missing entry in parallel processes. Returns counts by final status."""
        from tqdm import tqdm

        status = {s.series_id: self.status(s) for s in series}
        todo = [
            s
            for s in series
            if status[s.series_id] in ("missing", "corrupt")
            or (raise_errors and status[s.series_id] == "error")
        ]
        workers = min(workers or os.cpu_count() or 1, max(1, len(todo)))
        bar = tqdm(total=len(todo), desc="caching", unit="series", disable=not progress or not todo)
        if workers <= 1:
            for s in todo:
                status[s.series_id] = self.build_one(s, raise_errors=raise_errors)
                bar.update()
        else:
            with ProcessPoolExecutor(workers, initializer=_init_worker) as pool:
                jobs = [
                    (
                        self.dir,
                        self.preprocessing,
                        self.dtype.name,
                        self.masks,
                        {s.series_id: self.mask_sources.get(s.series_id, ())},
                        s,
                        raise_errors,
                    )
                    for s in todo
                ]
                for s, (result, notes) in zip(todo, pool.map(_build_entry, jobs), strict=True):
                    status[s.series_id] = result
                    for (
                        note
                    ) in notes:  # warnings of a worker process, issued again here where the user sees them
                        warn(note)
                    bar.update()
        bar.close()
        ok = sum(1 for v in status.values() if v == "ok")
        return {"ok": ok, "error": len(series) - ok, "built": len(todo)}

    def size_bytes(self) -> int:
        """Bytes of every file under the cache folder."""
        return sum(p.stat().st_size for p in self.dir.rglob("*") if p.is_file())


def _init_worker() -> None:
    from lightning_dicom.data.workers import limit_threads

    limit_threads(1)


def _build_entry(args: tuple) -> tuple[str, list[str]]:
    """One entry built in a worker process: (status, messages of the LightningDicomWarnings it issued)."""
    directory, prep, dtype, masks, sources, rec, raise_errors = args
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LightningDicomWarning)
        status = VolumeCache(directory, prep, dtype, masks, sources).build_one(rec, raise_errors=raise_errors)
    return status, [str(w.message) for w in caught if issubclass(w.category, LightningDicomWarning)]
