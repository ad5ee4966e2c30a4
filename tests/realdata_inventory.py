"""Inventory of ../shared/realdata: what dcm2niix makes of each folder, and what the headers say.

Run ``python tests/realdata_inventory.py [out.txt]`` from the repository root (default output file:
``realdata_inventory.txt`` at the root; it is printed too). Per folder:

* dcm2niix's outputs: file, SeriesNumber, SeriesInstanceUID, shape (x, y, z, volumes), what the 4th
  dimension runs over (time / bval; each echo is its own file), ImageType, b-values, variant
  (``Tilt_1``/``Eq_1``: resampled copies), and for 3D outputs a check against SimpleITK's
  ImageSeriesReader on the same files (canonical shapes, max |diff|, max corner distance in mm);
* pydicom, per series (SeriesInstanceUID + SeriesNumber): files, frames, distinct positions (per frame
  for enhanced files: PlanePositionSequence), mosaic tiles, and the attributes that take more than one
  value among the frames at one position (what separates the volumes of a 4D series).
"""

from __future__ import annotations

import sys
import tempfile
import time
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import pydicom
from pydicom.tag import BaseTag, Tag

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dcm2niix_reference as ref  # noqa: E402

#: (label, keyword or tag) watched for variation among frames at one position.
WATCH = [
    ("TemporalPositionIdentifier", "TemporalPositionIdentifier"),
    ("TemporalPositionIndex", "TemporalPositionIndex"),
    ("AcquisitionNumber", "AcquisitionNumber"),
    ("FrameAcquisitionNumber", "FrameAcquisitionNumber"),
    ("EchoNumbers", "EchoNumbers"),
    ("EchoTime", "EchoTime"),
    ("EffectiveEchoTime", "EffectiveEchoTime"),
    ("DiffusionBValue", "DiffusionBValue"),
    ("GE_b(0043,1039)", Tag(0x0043, 0x1039)),
    ("Siemens_b(0019,100C)", Tag(0x0019, 0x100C)),
    ("Philips_b(2001,1003)", Tag(0x2001, 0x1003)),
    ("ImageType", "ImageType"),
    ("FrameType", "FrameType"),
    ("TriggerTime", "TriggerTime"),
    ("NominalCardiacTriggerDelayTime", "NominalCardiacTriggerDelayTime"),
    ("InstanceNumber", "InstanceNumber"),
    ("StackID", "StackID"),
    ("InStackPositionNumber", "InStackPositionNumber"),
    ("DimensionIndexValues", "DimensionIndexValues"),
    ("RescaleSlope", "RescaleSlope"),
    ("RescaleIntercept", "RescaleIntercept"),
    ("AcquisitionTime", "AcquisitionTime"),
    ("ContentTime", "ContentTime"),
]


def _value(elem_value) -> object:
    if isinstance(elem_value, (list, pydicom.multival.MultiValue)):
        return tuple(str(v) for v in elem_value)
    if isinstance(elem_value, bytes):
        return elem_value[:16].hex()
    return str(elem_value)


def _flatten(item: pydicom.Dataset, into: dict) -> None:
    """The elements of a functional-group item and of its nested sequences' first items."""
    for elem in item:
        if elem.VR == "SQ":
            if elem.value:
                _flatten(elem.value[0], into)
        else:
            into[elem.keyword or elem.tag] = elem.value


def frame_records(ds: pydicom.Dataset) -> list[dict]:
    """One flat {keyword or tag: value} per frame: the top-level elements, overridden by the shared and
    then the per-frame functional groups."""
    top = {}
    for elem in ds:
        if elem.VR != "SQ" and elem.tag != Tag(0x7FE0, 0x0010):
            top[elem.keyword or elem.tag] = elem.value
    shared = dict(top)
    if "SharedFunctionalGroupsSequence" in ds:
        _flatten(ds.SharedFunctionalGroupsSequence[0], shared)
    per = ds.get("PerFrameFunctionalGroupsSequence")
    if not per:
        return [shared]
    records = []
    for item in per:
        rec = dict(shared)
        _flatten(item, rec)
        records.append(rec)
    return records


def _position(rec: dict) -> tuple | None:
    ipp = rec.get("ImagePositionPatient")
    return tuple(round(float(v), 3) for v in ipp) if ipp is not None else None


def _is_mosaic(ds: pydicom.Dataset) -> int:
    if "MOSAIC" not in [str(v).upper() for v in ds.get("ImageType", [])]:
        return 0
    tiles = ds.get(Tag(0x0019, 0x100A))
    return int(tiles.value) if tiles is not None and tiles.value not in (None, b"") else -1


#: Per-instance bookkeeping that always differs; left out of the "other attributes" list.
ALWAYS_DIFFERENT = {
    "SOPInstanceUID",
    "MediaStorageSOPInstanceUID",
    "InstanceCreationTime",
    "ImagePositionPatient",
    "SliceLocation",
    "WindowCenter",
    "WindowWidth",
    "LargestImagePixelValue",
    "SmallestImagePixelValue",
    "FrameReferenceDateTime",
    "FrameAcquisitionDateTime",
    "FrameAcquisitionDuration",
    "AcquisitionDateTime",
    "ContentDate",
    "AcquisitionDate",
    "InstanceCreationDate",
    "SliceLocationVector",
}


def _by_position(records: list[dict]) -> list[list[dict]]:
    by_pos = defaultdict(list)
    for rec in records:
        by_pos[_position(rec)].append(rec)
    return list(by_pos.values())


def _varies(groups: list[list[dict]], key) -> bool:
    return any(len({_value(r.get(key)) for r in group}) > 1 for group in groups)


def varying(records: list[dict]) -> dict[str, int]:
    """Watched attribute -> number of distinct values, for those that vary among frames at a position."""
    groups = _by_position(records)
    return {label: len({_value(r.get(key)) for r in records}) for label, key in WATCH if _varies(groups, key)}


def other_varying(records: list[dict]) -> list[str]:
    """Any other attribute (keyword or private tag) that varies among frames at a position."""
    groups = _by_position(records)
    watched = {key for _, key in WATCH}
    keys = dict.fromkeys(k for r in records for k in r)
    return [
        str(k)
        for k in keys
        if k not in watched
        and k not in ALWAYS_DIFFERENT
        and not (isinstance(k, BaseTag) and k.element == 0)
        and _varies(groups, k)
    ]


def header_series(folder: Path) -> dict[tuple[str, int | None], dict]:
    """Per (SeriesInstanceUID, SeriesNumber): files, frame records, mosaic tiles, transfer syntaxes."""
    series: dict = {}
    for path in sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() not in ref.NOT_DICOM_SUFFIXES
    ):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ds = pydicom.dcmread(str(path), stop_before_pixels=True, force=True)
            except Exception:  # not DICOM
                continue
        if "SeriesInstanceUID" not in ds:
            continue
        sn = ds.get("SeriesNumber")
        key = (str(ds.SeriesInstanceUID), int(sn) if sn is not None else None)
        entry = series.setdefault(
            key, {"files": [], "records": [], "mosaic": 0, "enhanced": False, "sop": set()}
        )
        entry["files"].append(path)
        entry["records"].extend(frame_records(ds))
        entry["mosaic"] = entry["mosaic"] or _is_mosaic(ds)
        entry["enhanced"] |= "PerFrameFunctionalGroupsSequence" in ds
        entry["sop"].add(str(ds.get("SOPClassUID", "?")).split(".")[-1])
    return series


def _sitk_check(out: ref.RefSeries, folder: Path) -> str:
    import SimpleITK as sitk

    files = ref.source_files(out, folder)
    if not files:
        return "sitk: no source files"
    try:
        if len(files) == 1:
            image = sitk.ReadImage(str(files[0]))
        else:
            reader = sitk.ImageSeriesReader()
            reader.SetFileNames([str(f) for f in files])
            image = reader.Execute()
    except RuntimeError as err:
        return f"sitk error: {str(err).strip().splitlines()[-1][:80]}"
    report = ref.compare_sitk(image, out.volumes[0])
    return f"sitk({len(files)} files): {'OK' if report.ok() else 'DIFFERS'} {report}"


def describe_outputs(outs: list[ref.RefSeries], folder: Path) -> list[str]:
    lines = []
    for out in outs:
        lines.append(f"  dcm2niix {out.nifti.name}")
        bvals = "" if out.bvals is None else f" bvals={out.bvals.tolist()}"
        lines.append(
            f"    series {out.series_number} uid {out.series_uid} shape {out.shape} "
            f"4th={out.fourth_dim or '-'}{bvals} -p {out.p_option}"
            f"{' variant=' + out.variant if out.variant else ''}"
        )
        lines.append(
            f"    ImageType {'/'.join(out.image_type)} EchoNumber {out.echo_number} "
            f"EchoTime {out.echo_time} AcquisitionNumber {out.acquisition_number}"
        )
        if len(out.volumes) == 1 and not out.variant:
            lines.append(f"    {_sitk_check(out, folder)}")
        notes = [
            ln.split("Convert ")[0].strip()
            for ln in out.log.splitlines()
            if ln.startswith("Warning")
            and "issue 642" not in ln
            and "manufacturer" not in ln
            and "protocol" not in ln.lower()
        ]
        lines.extend(f"    ! {n}" for n in dict.fromkeys(notes))
    return lines


def describe_headers(folder: Path) -> list[str]:
    lines = []
    for (uid, sn), entry in header_series(folder).items():
        recs = entry["records"]
        positions = {_position(r) for r in recs}
        kind = "enhanced" if entry["enhanced"] else "classic"
        mosaic = f" MOSAIC tiles={entry['mosaic']}" if entry["mosaic"] else ""
        lines.append(
            f"  pydicom series {sn} uid {uid}: {len(entry['files'])} files, {len(recs)} frames, "
            f"{len(positions)} positions, {kind} SOP ...{'/'.join(sorted(entry['sop']))}{mosaic}"
        )
        var = varying(recs)
        lines.append("    varies at a position: " + (", ".join(f"{k}({n})" for k, n in var.items()) or "-"))
        other = other_varying(recs)
        if other:
            lines.append(
                "    other attributes varying at a position: "
                + ", ".join(other[:12])
                + (f" (+{len(other) - 12})" if len(other) > 12 else "")
            )
    return lines


_BOOKKEEPING = {"InstanceNumber", "DimensionIndexValues", "ContentTime", "AcquisitionTime"}


def summary_line(rel: str, outs: list[ref.RefSeries], folder: Path) -> str:
    shapes = ", ".join(
        f"{'x'.join(map(str, o.shape[:4]))}{' ' + o.fourth_dim if o.fourth_dim else ''}"
        f"{' (' + o.variant + ')' if o.variant else ''}"
        for o in outs
    )
    notes = []
    for entry in header_series(folder).values():
        var = [k for k in varying(entry["records"]) if k not in _BOOKKEEPING]
        if len({_position(r) for r in entry["records"]}) < len(entry["records"]) and not var:
            var = ["InstanceNumber only"]
        notes.append("/".join(var) if var else "")
        if entry["mosaic"]:
            notes.append(f"mosaic {entry['mosaic']} tiles")
        if entry["enhanced"]:
            notes.append("enhanced")
    text = "; ".join(n for n in notes if n)
    return f"  {rel:50s} {shapes}{'  [' + text + ']' if text else ''}"


def inventory(cache_dir: Path) -> list[str]:
    start = time.perf_counter()
    converted = ref.convert_realdata(cache_dir)
    took = time.perf_counter() - start
    lines = [
        f"dcm2niix {ref.dcm2niix_version()} args {' '.join(ref.BASE_ARGS)} -p n|y -d 0",
        f"realdata {ref.REALDATA}: {len(converted)} folders converted and loaded in {took:.2f} s",
        "",
        "SUMMARY: dcm2niix outputs (x*y*z*volumes, 4th dim) [what separates volumes at one position]",
    ]
    lines += [summary_line(rel, outs, ref.REALDATA / rel) for rel, outs in converted.items()]
    lines.append("")
    for rel, outs in converted.items():
        folder = ref.REALDATA / rel
        lines.append(f"== {rel}")
        lines.extend(describe_outputs(outs, folder))
        lines.extend(describe_headers(folder))
    return lines


def main(argv: list[str]) -> int:
    if ref.dcm2niix_path() is None:
        print("dcm2niix is not installed (pip install dcm2niix)")
        return 1
    target = (
        Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[1] / "realdata_inventory.txt"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import SimpleITK as sitk

        sitk.ProcessObject.SetGlobalWarningDisplay(False)
        with tempfile.TemporaryDirectory() as tmp:
            lines = inventory(Path(tmp))
    text = "\n".join(lines) + "\n"
    print(text, end="")
    target.write_text(text)
    return 0


if __name__ == "__main__":
    np.set_printoptions(precision=4, suppress=True)
    sys.exit(main(sys.argv))
