"""Acquisition attributes of one file (or of each frame of an enhanced file): what tells apart the
volumes of a series whose instances share slice positions (time points, echoes, b-values, image types).

:func:`acquisition_fields` turns a header (a pydicom Dataset, or the fast parser's dataset) into a
plain dict, stored as JSON in the index's ``acq`` column. Keys (absent when the header lacks them):

* ``echo_time`` (ms): EchoTime (0018,0081); per frame EffectiveEchoTime (0018,9082) of the
  MREchoSequence (0018,9114);
* ``echo_number``: EchoNumbers (0018,0086) (first value);
* ``acquisition_number``: AcquisitionNumber (0020,0012);
* ``temporal_position``: TemporalPositionIdentifier (0020,0100); per frame TemporalPositionIndex
  (0020,9128) of the FrameContentSequence (0020,9111);
* ``trigger_time`` (ms): TriggerTime (0018,1060);
* ``b_value`` (s/mm2): DiffusionBValue (0018,9087) (per frame: in the MRDiffusionSequence (0018,9117)),
  else the vendor places dcm2niix reads, each trusted only when its block's private creator says so:
  GE (0043,xx39) of "GEMS_PARM_01" (first value; values of 1e9 and above carry an offset of 1e9,
  removed as dcm2niix does), Siemens (0019,xx0C) of "SIEMENS MR HEADER", Philips (2001,xx03) of
  "Philips Imaging DD 001";
* ``gradient``: DiffusionGradientOrientation (0018,9089) (3 numbers);
* ``image_type``: ImageType (0008,0008) values joined by "\\"; per frame FrameType (0008,9007) of the
  MRImageFrameTypeSequence (0018,9226) (or CTImageFrameTypeSequence (0018,9329));
* enhanced multi-frame files: ``frames``, one dict per frame (file order) with the per-frame keys
  above and ``dim`` (DimensionIndexValues (0020,9157)), ``stack`` (StackID (0020,9056)), ``slope`` and
  ``intercept`` (RescaleSlope/Intercept of the frame's PixelValueTransformationSequence (0028,9145),
  shared values when the frame has none).

Never raises: a malformed value is left out (it only ever helps to separate volumes).
"""

from __future__ import annotations

import contextlib
import math
import struct
from typing import Any

__all__ = ["PRIVATE_B_VALUES", "PRIVATE_GROUPS", "acquisition_fields", "private_wanted"]

#: Vendor b-value elements: (group, element low byte, private creator, VR, Manufacturer word), as
#: dcm2niix reads them.
PRIVATE_B_VALUES = (
    (0x0043, 0x39, "GEMS_PARM_01", "IS", "GE"),
    (0x0019, 0x0C, "SIEMENS MR HEADER", "IS", "SIEMENS"),
    (0x2001, 0x03, "Philips Imaging DD 001", "FL", "PHILIPS"),
)
PRIVATE_GROUPS = frozenset(g for g, *_ in PRIVATE_B_VALUES)
_GE_OFFSET = 1e9


def private_wanted(tag: int) -> bool:
    """Whether the fast parser keeps this (private) element: a creator of a vendor group, or a
    candidate b-value element."""
    group, elem = tag >> 16, tag & 0xFFFF
    if group not in PRIVATE_GROUPS:
        return False
    if 0x10 <= elem <= 0xFF:
        return True
    return any(group == g and (elem & 0xFF) == low and elem >> 8 >= 0x10 for g, low, *_ in PRIVATE_B_VALUES)


def _num(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if type(value) in (int, float):  # the usual case, fast
        return float(value) if math.isfinite(value) else None
    try:
        if isinstance(value, (list, tuple)) or (hasattr(value, "__len__") and not isinstance(value, str)):
            value = value[0]
        out = float(value)
    except (TypeError, ValueError, IndexError):
        return None
    return out if math.isfinite(out) else None


def _int(value: Any) -> int | None:
    out = _num(value)
    return int(out) if out is not None and out.is_integer() else None


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if isinstance(value, str):
        parts = value.split("\\")
    else:
        try:
            parts = [str(v) for v in value]
        except TypeError:
            parts = [str(value)]
    return "\\".join(p.strip(" \0") for p in parts) or None


def _vector(value: Any, n: int) -> list[float] | None:
    if value is None:
        return None
    try:
        out = [float(v) for v in value]
    except (TypeError, ValueError):
        return None
    return out if len(out) == n and all(math.isfinite(v) for v in out) else None


def _private_value(vr: str, value: Any) -> float | None:
    """The first number of a private element's value (raw bytes decoded by ``vr``)."""
    if isinstance(value, (bytes, bytearray)):
        raw = bytes(value)
        if vr == "FL":
            return _num(struct.unpack_from("<f", raw)[0]) if len(raw) >= 4 else None
        value = raw.decode("latin-1").strip(" \0").split("\\")[0]
    return _num(value)


def _private_elements(ds: Any) -> dict[int, Any]:
    """Vendor private elements of ``ds`` wanted here: tag -> value (raw bytes or pydicom's value)."""
    fast = getattr(ds, "private", None)
    if isinstance(fast, dict):
        return fast
    out: dict[int, Any] = {}
    try:
        for group in PRIVATE_GROUPS:
            for elem in ds.group_dataset(group):
                if private_wanted(int(elem.tag)):
                    out[int(elem.tag)] = elem.value
    except Exception:  # any odd element: no private b-value
        return out
    return out


def private_b_value(ds: Any) -> float | None:
    """A vendor private b-value (see the module docstring), or None. A group whose private creators
    were all removed (anonymisers do) is read at the first block (xx = 10) when Manufacturer
    (0008,0070) names the vendor, as dcm2niix reads it."""
    elems = _private_elements(ds)
    if not elems:
        return None
    maker = (_text(_get(ds, "Manufacturer")) or "").upper()
    for group, low, creator, vr, vendor in PRIVATE_B_VALUES:
        stripped = not any(group << 16 | b in elems for b in range(0x10, 0x100))
        for block in range(0x10, 0x100):
            name = elems.get(group << 16 | block)
            if name is None and stripped and block == 0x10 and vendor in maker.split():
                name = creator
            if name is None or _text(name) != creator:
                continue
            value = elems.get(group << 16 | block << 8 | low)
            b = _private_value(vr, value) if value is not None else None
            if b is None:
                continue
            if group == 0x0043 and b >= _GE_OFFSET:
                b = math.fmod(b, _GE_OFFSET)
            return b if b >= 0 else None
    return None


def _get(ds: Any, keyword: str) -> Any:
    try:
        return ds.get(keyword)
    except Exception:
        return None


def _seq_item(item: Any, seq: str) -> Any:
    try:
        inner = item.get(seq)
        return inner[0] if inner else None
    except Exception:
        return None


def _content(content: Any, out: dict[str, Any]) -> None:
    """DimensionIndexValues, TemporalPositionIndex and StackID of a FrameContentSequence item."""
    if content is None:
        return
    dim = _get(content, "DimensionIndexValues")
    if dim is not None:
        with contextlib.suppress(TypeError, ValueError):
            out["dim"] = [int(v) for v in (dim if hasattr(dim, "__len__") else [dim])]
    tp = _int(_get(content, "TemporalPositionIndex"))
    if tp is not None:
        out["temporal_position"] = tp
    stack = _get(content, "StackID")
    if stack not in (None, ""):
        out["stack"] = str(stack)


def _diffusion(diff: Any, out: dict[str, Any]) -> None:
    """b-value and gradient direction of an MRDiffusionSequence item."""
    if diff is None:
        return
    b = _num(_get(diff, "DiffusionBValue"))
    if b is not None:
        out["b_value"] = b
    grad = _seq_item(diff, "DiffusionGradientDirectionSequence")
    g = _vector(_get(grad, "DiffusionGradientOrientation"), 3) if grad is not None else None
    if g is not None:
        out["gradient"] = g


def _frame_fields(group: Any, shared: Any) -> dict[str, Any]:
    """Per-frame attributes of one PerFrameFunctionalGroupsSequence item (shared values as fallback)."""
    out: dict[str, Any] = {}

    def pick(seq: str) -> Any:
        return _seq_item(group, seq) or (_seq_item(shared, seq) if shared is not None else None)

    _content(pick("FrameContentSequence"), out)
    echo = pick("MREchoSequence")
    if echo is not None and _num(_get(echo, "EffectiveEchoTime")) is not None:
        out["echo_time"] = _num(_get(echo, "EffectiveEchoTime"))
    _diffusion(pick("MRDiffusionSequence"), out)
    ftype = pick("MRImageFrameTypeSequence") or pick("CTImageFrameTypeSequence")
    if ftype is not None and _text(_get(ftype, "FrameType")):
        out["image_type"] = _text(_get(ftype, "FrameType"))
    pvt = pick("PixelValueTransformationSequence")
    if pvt is not None:
        s, i = _num(_get(pvt, "RescaleSlope")), _num(_get(pvt, "RescaleIntercept"))
        if s is not None and s != 0:
            out["slope"] = s
        if i is not None:
            out["intercept"] = i
    return out


_TOP_LEVEL = (
    ("echo_time", "EchoTime", _num),
    ("echo_number", "EchoNumbers", _int),
    ("acquisition_number", "AcquisitionNumber", _int),
    ("temporal_position", "TemporalPositionIdentifier", _int),
    ("trigger_time", "TriggerTime", _num),
    ("b_value", "DiffusionBValue", _num),
    ("image_type", "ImageType", _text),
)


def acquisition_fields(ds: Any) -> dict[str, Any]:
    """The acquisition attributes of one header (see the module docstring for keys, units, tags)."""
    out: dict[str, Any] = {}
    get = ds.get
    for key, kw, conv in _TOP_LEVEL:
        try:
            raw = get(kw)
        except Exception:  # a value pydicom cannot convert: left out
            continue
        if raw is not None and raw != "":
            v = conv(raw)
            if v is not None:
                out[key] = v
    grad = _vector(_get(ds, "DiffusionGradientOrientation"), 3)
    if grad is not None:
        out["gradient"] = grad
    if "b_value" not in out:
        b = private_b_value(ds)
        if b is not None:
            out["b_value"] = b
    if "PerFrameFunctionalGroupsSequence" in ds:
        try:
            groups = ds.get("PerFrameFunctionalGroupsSequence") or []
            shared_seq = ds.get("SharedFunctionalGroupsSequence")
            shared = shared_seq[0] if shared_seq else None
            frames = [_frame_fields(g, shared) for g in groups]
        except Exception:
            frames = []
        if frames and any(frames):
            out["frames"] = frames
    return out
