"""Series that hold several volumes: split the instances (or frames) of one stack into volumes.

The rule, for the instances of one SeriesInstanceUID with one orientation and matrix size (or the
frames of one enhanced multi-frame file), follows dcm2niix:

1. **Kinds.** Instances that differ in echo (EchoNumbers (0018,0086), else EchoTime (0018,0081) /
   EffectiveEchoTime (0018,9082)), in b-value (DiffusionBValue (0018,9087) or a vendor private
   b-value, see :mod:`lightning_dicom.dicom.acquisition`) or in image type (ImageType (0008,0008) /
   FrameType (0008,9007): magnitude, phase, maps) never share a volume, whether or not they share
   slice positions (b=0 and b=2000 slices interleaved at offset positions are two volumes).
2. **Repeats at a position.** Within a kind, when several instances share a slice position (closer
   than 1e-3 mm along the normal), the first attribute that separates them makes one volume per value:
   the enhanced file's DimensionIndexValues (0020,9157) without the indices that follow the slice
   position, TemporalPositionIdentifier (0020,0100) / TemporalPositionIndex (0020,9128), the diffusion
   gradient direction (0018,9089), TriggerTime (0018,1060), AcquisitionNumber (0020,0012). An attribute
   separates when every instance has it, the instances at each position have distinct values, and every
   position holds one instance per value (a full grid of positions x volumes).
3. **Fallback (InstanceNumber order).** Failing that, when every position holds the same number N of
   instances, the instances at each position are ordered by InstanceNumber (0020,0013) (frames of an
   enhanced file: by file order) and the k-th goes to volume k: how dcm2niix reads GE EPI series whose
   TemporalPositionIdentifier is 1 in every file. The split is reported as "InstanceNumber order".
   When every instance sits at ONE position, only an acquisition attribute separates them (not
   DimensionIndexValues, whose in-stack index then contradicts the positions, nor InstanceNumber order):
   dicom2nifti's "notavolume" CT (4 files at one position, AcquisitionNumber 12-15) is 4 one-slice
   volumes as in dcm2niix, while frames that differ in nothing are a 2D+t series and refused.
4. Otherwise the stack is one volume with a recorded problem that names the files at the first
   repeated position, the position and the attributes compared; reading it raises
   :class:`~lightning_dicom.errors.SeriesError`.

Volumes are ordered as dcm2niix's 4th dimension: by DimensionIndexValues compared from the last index
to the first, as dcm2niix does (enhanced files; e.g. a Philips DTI file's b=0 volume, last index 65,
comes after the gradients 1-3), then TemporalPositionIdentifier / Index, then the smallest
InstanceNumber (acquisition order; not AcquisitionNumber: dicom2nifti's "notavolume" CT numbers its
acquisitions backwards and dcm2niix follows InstanceNumber), then path.
"""

from __future__ import annotations

import functools
import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["ATTRIBUTES", "Frame", "Volume", "frames_of", "mixed_reason", "split_frames"]

#: Attributes a volume carries (common to all its slices, else None).
ATTRIBUTES = (
    "echo_time",
    "echo_number",
    "b_value",
    "image_type",
    "temporal_position",
    "acquisition_number",
    "trigger_time",
    "gradient",
)
#: Attributes that may differ between the slices of a plain (regular) volume without harm; resampling
#: refuses a stack whose slices differ in any other of :data:`ATTRIBUTES`.
_POSITION_TOL_MM = 1e-3
_SEPARATORS = (
    ("DimensionIndexValues", "dim"),
    ("TemporalPositionIdentifier", "temporal_position"),
    ("DiffusionGradientOrientation", "gradient"),
    ("TriggerTime", "trigger_time"),
    ("AcquisitionNumber", "acquisition_number"),
)


@dataclass
class Frame:
    """One slice: a single-frame file (``index`` None) or one frame of a multi-frame file."""

    row: dict[str, Any]
    index: int | None
    position: tuple[float, float, float]
    attrs: dict[str, Any]
    depth: float = 0.0  # position along the slice normal, mm

    @property
    def instance(self) -> int:
        return int(self.row["instance_number"] or 0)


@dataclass
class Volume:
    """Slices of one volume, with how it was separated and its attributes."""

    frames: list[Frame]
    split_by: str = ""
    problem: tuple[str, str] | None = None  # (path, reason)
    attrs: dict[str, Any] = field(default_factory=dict)
    varying: tuple[str, ...] = ()
    order: tuple = ()  # sort key along the 4th dimension (see the module docstring)


@functools.lru_cache(maxsize=4096)
def _parsed(text: str) -> dict[str, Any]:
    """The ``acq`` column parsed (shared between the many rows with the same text: never mutate it)."""
    return json.loads(text)


def frames_of(row: dict[str, Any]) -> list[Frame]:
    """The slices of one index row (one per frame of a multi-frame file with per-frame positions)."""
    acq = _parsed(row["acq"]) if row.get("acq") else {}
    n = int(row["n_frames"] or 1)
    ipp = json.loads(row["ipp"]) if row["ipp"] else [0.0, 0.0, 0.0]
    if n == 1:
        return [Frame(row, None, tuple(ipp), acq)]
    acq = dict(acq)
    per_frame = acq.pop("frames", None) or []
    ipps = json.loads(row["frame_ipps"]) if row["frame_ipps"] else None
    out = []
    for k in range(n):
        attrs = dict(acq)
        if k < len(per_frame):
            attrs.update(per_frame[k])
        out.append(Frame(row, k, tuple(ipps[k]) if ipps else tuple(ipp), attrs))
    return out


def _kind(f: Frame, use_number: bool) -> tuple:
    a = f.attrs
    echo = a.get("echo_number") if use_number else _round(a.get("echo_time"))
    return (echo, a.get("image_type"), _round(a.get("b_value")))


def _round(v: Any) -> Any:
    return round(float(v), 3) if isinstance(v, (int, float)) else v


def _positions(frames: Sequence[Frame]) -> list[int]:
    """Position id of each frame (frames closer than 1e-3 mm along the normal share one)."""
    order = sorted(range(len(frames)), key=lambda i: frames[i].depth)
    ids = [0] * len(frames)
    pid, last = -1, None
    for i in order:
        if last is None or frames[i].depth - last > _POSITION_TOL_MM:
            pid += 1
        ids[i] = pid
        last = frames[i].depth
    return ids


def _positional_dims(frames: Sequence[Frame], pids: Sequence[int]) -> set[int]:
    """Indices of DimensionIndexValues whose value follows the slice position (stack, in-stack position)."""
    raw = [f.attrs.get("dim") for f in frames]
    if not raw or any(d is None for d in raw):
        return set()
    dims: list[list[int]] = [list(d) for d in raw if d is not None]
    if any(len(d) != len(dims[0]) for d in dims):
        return set()
    out = set()
    for j in range(len(dims[0])):
        seen: dict[int, int] = {}
        if all(seen.setdefault(p, d[j]) == d[j] for p, d in zip(pids, dims, strict=True)):
            out.add(j)
    return out


def _value(f: Frame, key: str, positional: set[int]) -> Any:
    v = f.attrs.get(key)
    if key == "dim":
        return None if v is None else tuple(x for j, x in enumerate(v) if j not in positional)
    return tuple(v) if isinstance(v, list) else _round(v)


def _separate(
    frames: list[Frame], pids: list[int], positional: set[int]
) -> tuple[str, list[list[Frame]]] | None:
    """(attribute name, volumes) from the first attribute that separates the frames on a full grid.
    When every frame sits at one position, DimensionIndexValues are not trusted (their in-stack index
    then contradicts the positions): only an acquisition attribute separates such frames."""
    n_pos = len(set(pids))
    for name, key in _SEPARATORS:
        if n_pos == 1 and key == "dim":
            continue
        values = [_value(f, key, positional) for f in frames]
        if any(v is None for v in values):
            continue
        distinct = sorted(set(values))
        if len(distinct) < 2:
            continue
        cells = {(p, v) for p, v in zip(pids, values, strict=True)}
        if len(cells) != len(frames) or len(cells) != n_pos * len(distinct):
            continue
        groups: dict[Any, list[Frame]] = defaultdict(list)
        for f, v in zip(frames, values, strict=True):
            groups[v].append(f)
        return name, [groups[v] for v in distinct]
    return None


def _by_order(frames: list[Frame], pids: list[int]) -> tuple[str, list[list[Frame]]] | None:
    """The k-th instance (by InstanceNumber, or frame order) at each position -> volume k, when every
    position holds the same number of instances."""
    at: dict[int, list[Frame]] = defaultdict(list)
    for f, p in zip(frames, pids, strict=True):
        at[p].append(f)
    counts = {len(v) for v in at.values()}
    if len(counts) != 1:
        return None
    n = counts.pop()
    enhanced = frames[0].index is not None
    vols: list[list[Frame]] = [[] for _ in range(n)]
    for members in at.values():
        key: Callable[[Frame], Any] = (
            (lambda f: f.index) if enhanced else (lambda f: (f.instance, f.row["path"]))
        )
        members.sort(key=key)
        if not enhanced and len({f.instance for f in members}) != n:
            return None
        for k, f in enumerate(members):
            vols[k].append(f)
    return ("frame order" if enhanced else "InstanceNumber order"), vols


def _fmt(v: Any) -> str:
    return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)


def _refusal(frames: list[Frame], pids: list[int]) -> tuple[str, str]:
    at: dict[int, list[Frame]] = defaultdict(list)
    for f, p in zip(frames, pids, strict=True):
        at[p].append(f)
    counts = sorted({len(v) for v in at.values()})
    pid = next(p for p, v in at.items() if len(v) > 1)
    here = at[pid]
    names = ", ".join(
        f"{f.row['path']}" + (f" frame {f.index + 1}" if f.index is not None else "") for f in here[:4]
    ) + (f" (+{len(here) - 4} more)" if len(here) > 4 else "")
    differ = [
        f"{name} ({', '.join(sorted({_fmt(_value(f, key, set())) for f in here}))})"
        for name, key in _SEPARATORS
        if len({_fmt(_value(f, key, set())) for f in here}) > 1 and (len(at) > 1 or key != "dim")
    ]
    why = (
        f"they differ in {'; '.join(differ)}, but the positions hold {'/'.join(map(str, counts))} "
        "instances, not one per value"
        if differ
        else "no acquisition attribute tells them apart (TemporalPositionIdentifier, AcquisitionNumber, "
        "TriggerTime, gradient, InstanceNumber order with the same count at every position)"
    )
    if len(at) == 1 and not differ:
        why = (
            f"all {len(frames)} slices/frames sit at one position, a time series (2D+t) or repeated "
            "instances/acquisitions, not a 3D volume, and no acquisition attribute (TemporalPosition, "
            "TriggerTime, AcquisitionNumber, gradient) tells them apart"
        )
    reason = (
        f"{len(frames) - len(at)} duplicate slice positions: {len(here)} instances share the slice position {here[0].depth:.3f} mm along the normal "
        f"({names}): {why}; no setting reads this stack as one volume: remove the repeated files or "
        "give each acquisition its own SeriesInstanceUID"
    )
    return here[0].row["path"], reason


def _finish(vol: Volume) -> Volume:
    """Set the volume's attributes (common values, else None) and ``varying``: the attributes whose
    values interleave along the normal (slices of several acquisitions alternate in space: resampling
    would blend them). Acquisitions that follow one another along the normal (a CT acquired in two
    parts, AcquisitionNumber 4 then 5) and a counter that gives every slice its own value (step-and-shoot
    CT) do not interleave."""
    varying = []
    by_depth = sorted(vol.frames, key=lambda f: f.depth)
    for a in ATTRIBUTES:
        first = vol.frames[0].attrs.get(a)
        same = all(f.attrs.get(a) == first for f in vol.frames)
        vol.attrs[a] = first if same else None
        if not same and _interleaved([json.dumps(f.attrs.get(a)) for f in by_depth]):
            varying.append(a)
    vol.varying = tuple(varying)
    return vol


def _interleaved(values: Sequence[str]) -> bool:
    """Values (in slice order) that do not form one contiguous run each."""
    changes = sum(1 for a, b in zip(values, values[1:], strict=False) if a != b)
    return changes > len(set(values)) - 1


def _order_key(vol: Volume, positional: set[int]) -> tuple:
    first = min(vol.frames, key=lambda f: (f.instance, f.index or 0))
    dim = first.attrs.get("dim")
    # dcm2niix compares DimensionIndexValues from the last index to the first
    dim_key = tuple(reversed([x for j, x in enumerate(dim) if j not in positional])) if dim else ()
    tp = first.attrs.get("temporal_position")
    return (
        dim_key,
        tp if tp is not None else -1,
        min(f.instance for f in vol.frames),
        first.row["path"],
        first.index or 0,
    )


def split_frames(frames: list[Frame], normal: np.ndarray) -> list[Volume]:
    """The volumes of one stack (see the module docstring), in dcm2niix's 4th-dimension order."""
    for f in frames:
        f.depth = float(np.dot(f.position, normal))
    use_number = any(f.attrs.get("echo_number") is not None for f in frames)
    kinds: dict[tuple, list[Frame]] = defaultdict(list)
    for f in frames:
        kinds[_kind(f, use_number)].append(f)
    all_pids = _positions(frames)
    positional_all = _positional_dims(frames, all_pids)
    out: list[Volume] = []
    for members in kinds.values():
        pids = _positions(members)
        if len(set(pids)) == len(members):
            out.append(_finish(Volume(members, "kind" if len(kinds) > 1 else "")))
            continue
        positional = _positional_dims(members, pids)
        found = _separate(members, pids, positional)
        if found is None and len(set(pids)) > 1:  # at one position, order alone is no evidence of 4D
            found = _by_order(members, pids)
        if found is None:
            out.append(_finish(Volume(members, "", _refusal(members, pids))))
            continue
        name, vols = found
        out.extend(_finish(Volume(v, name)) for v in vols)
    if len(kinds) > 1:  # name the kind attribute that separated them
        differ = [
            name
            for name, idx in (("echo", 0), ("ImageType", 1), ("b-value", 2))
            if len({k[idx] for k in kinds}) > 1
        ]
        for v in out:
            v.split_by = ", ".join(x for x in (*differ, v.split_by) if x and x != "kind")
    for v in out:
        v.order = _order_key(v, positional_all)
    out.sort(key=lambda v: v.order)
    return out


def mixed_reason(varying: Sequence[str]) -> str:
    """Why an irregular stack whose slices differ in acquisition attributes is not resampled."""
    return (
        f"its slices differ in {', '.join(varying)}: resampling would blend acquisitions into one "
        "volume, so it is refused (select the slices of one acquisition, or fix the series' headers)"
    )
