"""Map-style datasets: cached volumes, random patches from the cache, and uncached series.

Hot-path rules: per-sample metadata lives in numpy arrays (no lists of dicts that every worker
copies page by page as refcounts change), ``__getitem__`` opens a memory map and copies only the
bytes it returns, and nothing parses YAML, re-validates config or walks folders.

A sample is a dict::

    image  torch.Tensor [C, D, H, W]  (float16/float32 from the cache, float32 uncached)
    label  torch.Tensor []            (int64 class or float32 target; [K] for several columns), when labelled
    meta   dict: series_id (str), spacing (x-y-z mm), origin (LPS mm of voxel 0), direction (9),
           index (int), and for patches patch_start (z-y-x voxel index of the patch in its volume);
           the volume's acquisition: b_value (s/mm2, nan when unknown), echo_time (ms, nan),
           echo_number (0 when unknown), temporal_index (0-based along the series' 4th dimension),
           image_type (str)
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from lightning_dicom.config import PreprocessingConfig
from lightning_dicom.dicom.index import SeriesRecord
from lightning_dicom.errors import ConfigError, LightningDicomError

__all__ = ["CachedVolumeDataset", "PatchDataset", "SeriesDataset", "collate", "map_view"]

log = logging.getLogger(__name__)

_NPY_OPEN_LOCK = threading.Lock()
"""Serialises ``np.load(mmap_mode="r")`` across loader threads: numpy reads the ``.npy`` header with
``ast.literal_eval``, and CPython 3.11 (issue gh-106905) can raise ``SystemError: AST constructor
recursion depth mismatch`` when threads build ASTs at once (seen here in whole-volume predict). Opening
is microseconds and each map is then kept in the per-dataset LRU."""


class _MetaTable:
    """Per-sample metadata in numpy arrays (copy-on-access safe across forked workers)."""

    def __init__(self, metas: Sequence[dict[str, Any]], series_ids: Sequence[str]):
        self.series_id = np.array(series_ids, dtype=np.str_)
        self.spacing = np.array([m["spacing"] for m in metas], dtype=np.float64).reshape(-1, 3)
        self.origin = np.array([m["origin"] for m in metas], dtype=np.float64).reshape(-1, 3)
        self.direction = np.array([m["direction"] for m in metas], dtype=np.float64).reshape(-1, 9)
        acq = [m.get("acquisition") or {} for m in metas]
        self.b_value = np.array([_nan(a.get("b_value")) for a in acq], dtype=np.float64)
        self.echo_time = np.array([_nan(a.get("echo_time")) for a in acq], dtype=np.float64)
        self.echo_number = np.array([a.get("echo_number") or 0 for a in acq], dtype=np.int64)
        self.temporal_index = np.array([a.get("temporal_index") or 0 for a in acq], dtype=np.int64)
        self.image_type = np.array([a.get("image_type") or "" for a in acq], dtype=np.str_)
        self.has_inputs = bool(metas) and all("inputs" in m for m in metas)
        if self.has_inputs:  # subjects: each channel's source series, and which inputs are zero channels
            self.inputs = np.array([m["inputs"] for m in metas], dtype=np.str_)
            names = [[p.split("=", 1)[0] for p in m["inputs"].split("|")] for m in metas]
            self.missing_inputs = np.array(
                [
                    [n in m.get("missing_inputs", ()) for n in row]
                    for row, m in zip(names, metas, strict=True)
                ],
                dtype=bool,
            )
        self.has_source = bool(metas) and all("source" in m for m in metas)
        if self.has_source:  # the source series' grid, for to_source_geometry
            self.source_spacing = np.array([m["source"]["spacing"] for m in metas], np.float64).reshape(-1, 3)
            self.source_origin = np.array([m["source"]["origin"] for m in metas], np.float64).reshape(-1, 3)
            self.source_direction = np.array([m["source"]["direction"] for m in metas], np.float64).reshape(
                -1, 9
            )
            self.source_size = np.array([m["source"]["size"] for m in metas], np.int64).reshape(-1, 3)

    def get(self, i: int) -> dict[str, Any]:
        out = {
            "series_id": str(self.series_id[i]),
            "spacing": torch.from_numpy(self.spacing[i].copy()),
            "origin": torch.from_numpy(self.origin[i].copy()),
            "direction": torch.from_numpy(self.direction[i].copy()),
            "index": i,
            "b_value": torch.tensor(float(self.b_value[i]), dtype=torch.float64),
            "echo_time": torch.tensor(float(self.echo_time[i]), dtype=torch.float64),
            "echo_number": torch.tensor(int(self.echo_number[i])),
            "temporal_index": torch.tensor(int(self.temporal_index[i])),
            "image_type": str(self.image_type[i]),
        }
        if self.has_inputs:
            out["inputs"] = str(self.inputs[i])
            out["missing_inputs"] = torch.from_numpy(self.missing_inputs[i].copy())
        if self.has_source:
            for k in ("source_spacing", "source_origin", "source_direction", "source_size"):
                out[k] = torch.from_numpy(getattr(self, k)[i].copy())
        return out

    def batch(self, idx: np.ndarray) -> dict[str, Any]:
        """What ``default_collate([get(i) for i in idx])`` returns, gathered from the arrays at once
        (strings as lists, arrays stacked ``[B, ...]``, ``index`` int64 ``[B]``). Each key of ``get`` is read
        from the table's array of the same name; a key without one is collated sample by sample."""
        idx = np.asarray(idx, dtype=np.int64)
        if not len(idx):
            return {}
        plan = self.__dict__.get("_plan")
        if plan is None:  # once: each key of get() -> its array (or None: collate per sample)
            plan = []
            for key in self.get(0):
                arr = getattr(self, key, None)
                ok = isinstance(arr, np.ndarray) and len(arr) == len(self.series_id) and key != "index"
                plan.append((key, arr if ok else None))
            self._plan = plan
        out: dict[str, Any] = {}
        for key, arr in plan:
            if key == "index":
                out[key] = torch.from_numpy(idx.copy())
            elif arr is None:
                out[key] = default_collate([self.get(int(i))[key] for i in idx])
            elif arr.dtype.kind == "U":
                out[key] = arr[idx].tolist()
            else:  # ndarray.take: a fresh array, at about half the cost of arr[idx] for a few rows
                out[key] = torch.from_numpy(arr.take(idx, 0))
        return out


def _nan(v: Any) -> float:
    return float("nan") if v is None else float(v)


def map_view(arr: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``arr`` (a read-only memory map or a view of one) as a tensor sharing its memory, to be read only.

    torch warns once per process that a read-only array is not writable (``TORCH_WARN_ONCE``); the first
    call here takes that one warning under ``catch_warnings`` and later calls skip the filter juggling,
    which costs more than the call itself and is not thread-safe (``warnings`` filters are global).
    """
    global _VIEW_WARNED
    if isinstance(arr, torch.Tensor):
        return arr
    if not _VIEW_WARNED and not arr.flags.writeable:
        with _VIEW_LOCK, warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            out = torch.from_numpy(arr)
            _VIEW_WARNED = True
        return out
    return torch.from_numpy(arr)


_VIEW_WARNED = False
_VIEW_LOCK = threading.Lock()


def _tensor(arr: np.ndarray | torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """A private, contiguous copy of ``arr`` (a memory map or a view of one) as a tensor of ``dtype``.

    With a dtype other than the stored one, the copy and the cast are one pass (torch reads the
    page-cache mapping directly; numpy's float16 cast is much slower)."""
    src = map_view(arr)
    if dtype is None or dtype == src.dtype:
        return src.clone(memory_format=torch.contiguous_format)
    return src.to(dtype, memory_format=torch.contiguous_format)


def _labels(labels: Sequence[np.ndarray] | None) -> np.ndarray | None:
    if labels is None:
        return None
    return np.stack([np.asarray(x) for x in labels]) if len(labels) else np.zeros(0, np.int64)


class CachedVolumeDataset(Dataset):
    """Whole volumes read from cache entries (``.npy`` paths) with their sidecar geometry."""

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]],
        metas: Sequence[dict[str, Any]],
        labels: Sequence[np.ndarray] | None = None,
        shared: Sequence[torch.Tensor] | None = None,
        mask_paths: Sequence[str | os.PathLike[str]] | None = None,
        foreground: Sequence[np.ndarray] | None = None,
    ):
        self.paths = np.array([str(p) for p in paths], dtype=np.str_)
        self.mask_paths = (
            np.array([str(p) for p in mask_paths], dtype=np.str_) if mask_paths is not None else None
        )
        fg = list(foreground) if foreground is not None else [np.zeros((0, 3), np.int32)] * len(self.paths)
        self.fg_offsets = np.cumsum([0] + [len(f) for f in fg]).astype(np.int64)
        self.fg_coords = np.concatenate(fg).astype(np.int32) if fg else np.zeros((0, 3), np.int32)
        self.meta = _MetaTable(metas, [m["series_id"] for m in metas])
        self.shapes = np.array([m["shape"] for m in metas], dtype=np.int64).reshape(-1, 4)
        self.labels = _labels(labels)
        self.shared = list(shared) if shared is not None else None
        self.image_dtype: torch.dtype | None = None
        """Cast images to this dtype while reading (None: the stored dtype, float16 by default)."""
        self.mask_dtype: torch.dtype | None = None
        """Cast masks to this dtype while reading (None: uint8 as stored)."""
        self.max_open_maps = 64
        self._maps: OrderedDict[str, np.ndarray] = OrderedDict()
        self._maps_lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.paths)

    def volume(self, i: int) -> np.ndarray | torch.Tensor:
        """The ``[C, D, H, W]`` array of sample i: an in-RAM shared tensor or a read-only memory map."""
        if self.shared is not None:
            return self.shared[i]
        return self._map(str(self.paths[i]))

    def _map(self, path: str) -> np.ndarray:
        """A read-only memory map of ``path``, kept open in a small per-process LRU (parsing the .npy
        header on every item costs as much as copying a patch; each open map holds a file descriptor)."""
        with self._maps_lock:
            arr = self._maps.get(path)
            if arr is not None:
                self._maps.move_to_end(path)
                return arr
        with _NPY_OPEN_LOCK:  # numpy parses the header with ast.literal_eval: not thread-safe, see below
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        with self._maps_lock:
            self._maps[path] = arr
            while len(self._maps) > self.max_open_maps:
                self._maps.popitem(last=False)
        return arr

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_maps", "_maps_lock")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._maps, self._maps_lock = OrderedDict(), threading.Lock()

    def mask(self, i: int) -> np.ndarray | None:
        """The uint8 ``[1 or K, D, H, W]`` mask of sample i (a read-only memory map), if masks are cached."""
        if self.mask_paths is None:
            return None
        return self._map(str(self.mask_paths[i]))

    def foreground(self, i: int) -> np.ndarray:
        """Sampled foreground voxel indices (z-y-x) of sample i's mask."""
        return self.fg_coords[self.fg_offsets[i] : self.fg_offsets[i + 1]]

    def _sample(self, i: int, image: torch.Tensor, mask: np.ndarray | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"image": image, "meta": self.meta.get(i)}
        if self.labels is not None:
            out["label"] = torch.as_tensor(np.asarray(self.labels[i]).copy())
        if mask is not None:
            out["mask"] = _tensor(mask, self.mask_dtype)
        return out

    def __getitem__(self, i: int) -> dict[str, Any]:
        vol = self.volume(i)
        return self._sample(i, _tensor(vol, self.image_dtype), self.mask(i))


class PatchDataset(Dataset):
    """``per_volume`` random patches of ``size`` (z-y-x) from each cached volume, per epoch.

    Only the patch's bytes are read from the memory map. Volumes smaller than the patch are
    padded with their minimum. Randomness comes from the worker's torch seed, which Lightning and
    the DataLoader vary per worker and per epoch (``seed_everything`` makes it reproducible).
    """

    def __init__(
        self,
        volumes: CachedVolumeDataset,
        size: tuple[int, int, int],
        per_volume: int,
        foreground_fraction: float = 0.0,
    ):
        self.volumes = volumes
        self.size = tuple(int(s) for s in size)
        self.per_volume = int(per_volume)
        self.foreground_fraction = float(foreground_fraction)
        self._lock = threading.Lock()
        self._rng: np.random.Generator | None = None
        self._seed: int | None = None
        # per volume: how many start positions each axis has (1 where the volume is not larger than the patch)
        self._n_starts = np.maximum(self.volumes.shapes[:, 1:] - np.array(self.size, np.int64), 0) + 1
        self._has_fg = self.foreground_fraction > 0 and bool(len(self.volumes.fg_coords))

    def __len__(self) -> int:
        return len(self.volumes) * self.per_volume

    def __getitem__(self, i: int) -> dict[str, Any]:
        v = i // self.per_volume
        start = self._start(v)
        sl = (slice(None), *(slice(a, a + s) for a, s in zip(start, self.size, strict=True)))
        patch = self._crop(self.volumes.volume(v), sl, None)
        mask = self.volumes.mask(v)
        out = self.volumes._sample(v, patch, None)
        if mask is not None:
            out["mask"] = self._crop(mask, sl, 0)
            if self.volumes.mask_dtype is not None:
                out["mask"] = out["mask"].to(self.volumes.mask_dtype)
        meta = out["meta"]
        direction = meta["direction"].reshape(3, 3)
        offset = torch.tensor(start[::-1], dtype=torch.float64) * meta["spacing"]
        meta["origin"] = meta["origin"] + direction @ offset
        meta["patch_start"] = torch.tensor(start)
        return out

    def _start(self, v: int) -> list[int]:
        """Random patch start (z-y-x) in volume v; thread-safe (the 'threads' loader calls concurrently)."""
        with self._lock:
            seed = torch.initial_seed()
            if self._rng is None or seed != self._seed:  # e.g. a worker forked after the parent drew a patch
                self._rng, self._seed = np.random.default_rng(seed % 2**63), seed
            rng = self._rng
            fg = self.volumes.foreground(v) if self._has_fg else ()
            if len(fg) and rng.random() < self.foreground_fraction:  # centre on a foreground voxel
                centre = fg[int(rng.integers(len(fg)))]
                return [
                    int(min(max(c - s // 2, 0), n - 1))
                    for c, n, s in zip(centre, self._n_starts[v], self.size, strict=True)
                ]
            # uniform over the start positions of each axis: floor(u * n), u in [0, 1)
            return (rng.random(3) * self._n_starts[v]).astype(np.int64).tolist()

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _crop(self, vol: np.ndarray | torch.Tensor, sl: tuple, pad: float | None) -> torch.Tensor:
        patch = _tensor(vol[sl], self.volumes.image_dtype if pad is None else None)
        if tuple(patch.shape[1:]) != self.size:  # volume smaller than the patch: pad at the end
            value = float(patch.min()) if pad is None else pad
            full = torch.full((patch.shape[0], *self.size), value, dtype=patch.dtype)
            full[(slice(None), *(slice(0, n) for n in patch.shape[1:]))] = patch
            patch = full
        return patch


class SeriesDataset(Dataset):
    """Uncached: read and preprocess each series in the worker, on every access.

    With ``on_error='skip'`` a series that fails is logged and replaced by the next one that
    reads (the epoch goes on); with 'raise' the error propagates.
    """

    def __init__(
        self,
        series: Sequence[SeriesRecord],
        preprocessing: PreprocessingConfig,
        labels: Sequence[np.ndarray] | None = None,
        on_error: str = "skip",
    ):
        self.series = list(series)
        self.preprocessing = preprocessing
        self.labels = _labels(labels)
        self.on_error = on_error

    def __len__(self) -> int:
        return len(self.series)

    def load(self, i: int) -> dict[str, Any]:
        from lightning_dicom.data.pipeline import process_series

        rec = self.series[i]
        done = process_series(rec, self.preprocessing)
        table = _MetaTable([done.meta], [rec.series_id])
        out: dict[str, Any] = {"image": torch.from_numpy(done.image), "meta": {**table.get(0), "index": i}}
        if self.labels is not None:
            out["label"] = torch.as_tensor(np.asarray(self.labels[i]).copy())
        return out

    def __getitem__(self, i: int) -> dict[str, Any]:
        for attempt in range(len(self.series)):
            j = (i + attempt) % len(self.series)
            try:
                return self.load(j)
            except LightningDicomError as err:
                if self.on_error == "raise":
                    raise
                log.warning("skipping series %s (sample %d): %s", self.series[j].series_id, j, err.reason)
        raise LightningDicomError("no series in this dataset could be read")


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """``default_collate`` with a clear error when volumes differ in shape; a batch of one sample is
    a view with a leading dimension (no copy of the volume)."""
    shapes = {tuple(s["image"].shape) for s in samples}
    if len(shapes) > 1:
        raise ConfigError(
            f"volumes in a batch differ in shape {sorted(shapes)}: set preprocessing.size (z-y-x) "
            "or patches, or use loader.batch_size 1"
        )
    if len(samples) == 1:
        return _one(samples[0])
    return default_collate(samples)


def _one(x: Any) -> Any:
    """What ``default_collate([x])`` returns, without copying tensors."""
    if isinstance(x, torch.Tensor):
        return x.unsqueeze(0)
    if isinstance(x, dict):
        return {k: _one(v) for k, v in x.items()}
    if isinstance(x, (str, bytes)):
        return [x]
    return default_collate([x])
