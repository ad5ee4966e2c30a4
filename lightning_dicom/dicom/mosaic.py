"""Siemens mosaics: one stored 2D image that holds the slices of a volume as a grid of tiles.

A Siemens EPI/DWI/fMRI file whose ImageType (0008,0008) contains ``MOSAIC`` stores ``n`` slices of
``r x c`` pixels as one image of Rows x Columns = ``g r x g c`` pixels, ``g = ceil(sqrt(n))`` tiles per
side, tiles in row-major order (left to right, then top to bottom), unused tiles blank. The rules
(those of nibabel's ``nicom.dicomwrappers.MosaicWrapper`` and of dcm2niix):

* ``n``: NumberOfImagesInMosaic from the CSA image header (0029,xx10) of the private block "SIEMENS
  CSA HEADER", else the private element (0019,xx0A) of "SIEMENS MR HEADER";
* slice ``k`` (tile ``k``) lies at ``p0 + k * dz * s``: ``s`` is the CSA SliceNormalVector, which has the
  direction of row x column cosines (ImageOrientationPatient (0020,0037)) and may have the opposite sign
  (Siemens keeps slices in the order of ``s``: "ascending is still ascending", dcm2niix); without it
  ``s`` = row x column (nibabel's fallback). ``dz`` = SpacingBetweenSlices (0018,0088), else
  SliceThickness (0018,0050). The acquisition order (ascending, descending, interleaved: the CSA
  MosaicRefAcqTimes) changes slice timing, never the tile order;
* ``p0``, the centre of the first voxel of tile 0: Siemens writes ImagePositionPatient (0020,0032) as if
  the whole mosaic were one slice, so it is moved by half the difference between the mosaic and a tile,
  ``p0 = IPP + column cosine x PixelSpacing[0] x (Rows - r) / 2 + row cosine x PixelSpacing[1] x
  (Columns - c) / 2`` (nibabel ``MosaicWrapper.image_position``; dcm2niix ``nii_dicom.c``).

The CSA header is parsed by nibabel's ``nibabel.nicom.csareader`` (maintained, used by nibabel's own
DICOM wrappers and tested on Siemens data), not by a parser of our own; nibabel is therefore a run-time
dependency. The index (:mod:`lightning_dicom.dicom.header`) turns a mosaic into a multi-frame file of
``n`` frames of ``r x c`` pixels with one position per tile; the reader (:func:`unpack_mosaic`) cuts the
decoded image into tiles. tests/test_mosaic.py writes mosaics with real-format CSA headers
(:mod:`lightning_dicom.demo.synthetic_mosaic`), tests/test_realdata_geometry.py compares real ones with
dcm2niix.
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from lightning_dicom import io
from lightning_dicom.dicom.parser import Fallback
from lightning_dicom.errors import NotDicomError, SeriesError

if TYPE_CHECKING:
    import SimpleITK as sitk

    from lightning_dicom.dicom.index import SeriesRecord

__all__ = [
    "CSA_CREATOR",
    "MR_HEADER_CREATOR",
    "is_mosaic",
    "mosaic_layout",
    "read_csa",
    "tile_shape",
    "unpack_mosaic",
]

CSA_CREATOR = "SIEMENS CSA HEADER"
MR_HEADER_CREATOR = "SIEMENS MR HEADER"
#: |SliceNormalVector . (row x column)| must be within this of 1.
_NORMAL_TOLERANCE = 1e-3


def is_mosaic(ds: Any) -> bool:
    """ImageType (0008,0008) holds the value ``MOSAIC`` (a malformed ImageType counts as no)."""
    try:
        image_type = ds.get("ImageType")
        if image_type is None:
            return False
        values = str(image_type).split("\\") if isinstance(image_type, (str, bytes)) else list(image_type)
        return any(str(v).strip().upper() == "MOSAIC" for v in values)
    except Exception:  # a value pydicom cannot convert: not a reason to lose the file
        return False


def read_csa(ds: Any) -> dict[str, Any]:
    """The CSA image header (0029,xx10) of a pydicom dataset as nibabel's ``csareader`` parses it
    (``{"tags": {name: {"items": [...]}}}``); ``{}`` when absent or unreadable."""
    with warnings.catch_warnings():  # nibabel.nicom warns that its DICOM *wrappers* are experimental
        warnings.simplefilter("ignore")
        from nibabel.nicom import csareader
    try:
        return csareader.get_csa_header(ds, "image") or {}
    except Exception:  # CSAReadError, struct errors, odd private blocks: treated as no CSA header
        return {}


def _csa_value(csa: dict[str, Any], name: str) -> list[Any]:
    try:
        return list(csa["tags"][name]["items"])
    except (KeyError, TypeError):
        return []


def _private_tile_count(ds: Any) -> int | None:
    """NumberOfImagesInMosaic (0019,xx0A) of the "SIEMENS MR HEADER" private block, or None."""
    try:
        value = ds.private_block(0x0019, MR_HEADER_CREATOR)[0x0A].value
    except (KeyError, ValueError, AttributeError):
        return None
    if isinstance(value, bytes):  # VR UN (implicit VR without a private dictionary entry)
        return int.from_bytes(value[:2], "little") if len(value) >= 2 else None
    try:
        return int(value[0] if isinstance(value, (list, tuple)) else value)
    except (TypeError, ValueError, IndexError):
        return None


def _tile_count(ds: Any, csa: dict[str, Any], path: str) -> int:
    items = _csa_value(csa, "NumberOfImagesInMosaic")
    try:
        from_csa = int(items[0]) if items else None
    except (TypeError, ValueError):
        from_csa = None
    private = _private_tile_count(ds)
    if from_csa and private and from_csa != private:
        raise NotDicomError(
            f"Siemens MOSAIC: NumberOfImagesInMosaic is {from_csa} in the CSA header but {private} in "
            "(0019,xx0A)",
            path=path,
        )
    n = from_csa or private
    if not n or n < 1:
        raise NotDicomError(
            "Siemens MOSAIC without NumberOfImagesInMosaic (CSA image header (0029,xx10) or "
            "(0019,xx0A)): the number of slices in the mosaic is unknown",
            path=path,
        )
    return n


def _slice_normal(csa: dict[str, Any], iop: list[float], path: str) -> np.ndarray:
    normal = np.cross(iop[:3], iop[3:])
    items = _csa_value(csa, "SliceNormalVector")
    if len(items) != 3:
        return normal
    try:
        csa_normal = np.asarray([float(v) for v in items])
    except (TypeError, ValueError):
        return normal
    dot = float(csa_normal @ normal) / max(float(np.linalg.norm(csa_normal)), 1e-12)
    if abs(abs(dot) - 1) > _NORMAL_TOLERANCE:
        raise NotDicomError(
            f"Siemens MOSAIC: CSA SliceNormalVector {np.round(csa_normal, 4).tolist()} is not normal to "
            "ImageOrientationPatient (0020,0037)",
            path=path,
        )
    return normal if dot > 0 else -normal  # the cross product (most orthogonal), with the CSA sign


def mosaic_layout(ds: Any, h: dict[str, Any], path: str) -> dict[str, Any]:
    """Header updates for a mosaic file (``h``: the header fields read so far, stored Rows/Columns).

    Returns ``mosaic_grid`` (tiles per side), ``_mosaic_tiles`` (slices), and when the file has
    ImagePositionPatient/ImageOrientationPatient: ``ipp`` (first voxel of tile 0), ``frame_ipps`` (one
    position per tile, LPS mm) and ``slice_gap`` (mm between tiles along the normal, signed by the
    CSA SliceNormalVector). Rows/Columns/NumberOfFrames are changed later by :func:`tile_shape`.

    Raises:
        NotDicomError: no tile count, a grid that does not divide Rows/Columns, a multi-frame
            mosaic, a SliceNormalVector off the image normal, or no slice spacing.
    """
    if not hasattr(ds, "private_block"):
        raise Fallback  # the fast reader keeps no private elements: pydicom reads the CSA header
    csa = read_csa(ds)
    n = _tile_count(ds, csa, path)
    grid = math.ceil(math.sqrt(n))
    rows, cols = h["rows"], h["cols"]
    if (h["n_frames"] or 1) != 1 or rows % grid or cols % grid:
        raise NotDicomError(
            f"Siemens MOSAIC of {n} slices needs one frame of Rows x Columns divisible by {grid} "
            f"(got {rows} x {cols}, {h['n_frames']} frames)",
            path=path,
        )
    out: dict[str, Any] = {"mosaic_grid": grid, "_mosaic_tiles": n}
    if not h["iop"] or not h["ipp"]:
        return out
    iop = [float(v) for v in h["iop"]]
    ps = [float(v) for v in (h["pixel_spacing"] or (1.0, 1.0))]  # (row spacing, column spacing)
    dz = abs(h["slice_gap"] or 0.0) or h["slice_thickness"]
    if not dz:
        raise NotDicomError(
            "Siemens MOSAIC without SpacingBetweenSlices (0018,0088) or SliceThickness (0018,0050): "
            "the distance between its slices is unknown",
            path=path,
        )
    row, col = np.asarray(iop[:3]), np.asarray(iop[3:])
    tile_r, tile_c = rows // grid, cols // grid
    p0 = (
        np.asarray(h["ipp"], dtype=float)
        + col * ps[0] * (rows - tile_r) / 2
        + row * ps[1] * (cols - tile_c) / 2
    )
    normal = _slice_normal(csa, iop, path)
    tiles = p0 + np.outer(np.arange(n) * float(dz), normal)
    out.update(
        ipp=[float(v) for v in p0],
        frame_ipps=[[float(v) for v in p] for p in tiles],
        slice_gap=float(dz) if normal @ np.cross(row, col) > 0 else -float(dz),
    )
    return out


def tile_shape(h: dict[str, Any]) -> None:
    """After the pixel-data check (which needs the stored size): Rows/Columns/NumberOfFrames of a
    mosaic header become those of its tiles, in place."""
    n = h.pop("_mosaic_tiles", None)
    if n and h.get("mosaic_grid"):
        h["rows"] //= h["mosaic_grid"]
        h["cols"] //= h["mosaic_grid"]
        h["n_frames"] = n


def unpack_mosaic(image: sitk.Image, rec: SeriesRecord) -> sitk.Image:
    """The decoded mosaic (a ``SimpleITK.Image`` of one slice, ``g r x g c`` pixels) as ``n`` slices of
    ``r x c`` pixels in tile order (z-y-x array order; geometry is set by the caller from ``rec``, a
    :class:`~lightning_dicom.dicom.index.SeriesRecord` whose ``rows``/``cols``/``n_slices`` are a tile's)."""
    arr = io.to_array(image)
    g, r, c, n = rec.mosaic_grid, rec.rows, rec.cols, rec.n_slices
    plane = arr[0]  # (rows, columns[, samples]): the one stored slice
    if arr.shape[0] != 1 or plane.shape[:2] != (g * r, g * c):
        raise SeriesError(
            f"decoded {plane.shape[1]}x{plane.shape[0]} pixels for a mosaic of {g}x{g} tiles of {c}x{r}",
            series_uid=rec.series_uid,
            path=rec.files[0],
        )
    extra = plane.shape[2:]
    tiles = plane.reshape(g, r, g, c, *extra).swapaxes(1, 2).reshape(g * g, r, c, *extra)[:n]
    return io.from_array(np.ascontiguousarray(tiles), is_vector=bool(extra))
