"""The SimpleITK boundary: every image file read or written, and every array <-> image conversion.

Nothing else in the package calls SimpleITK's readers (``ReadImage``, ``ImageSeriesReader``,
``ImageFileReader``), writers (``WriteImage``, ``ImageFileWriter``) or its array bridges
(``GetArrayFromImage``, ``GetArrayViewFromImage``, ``GetImageFromArray``); tests/test_io_boundary.py
fails when one appears elsewhere. Filters (resampling, casting, orientation) stay where they are used.

Axis order is converted here and only here: a ``SimpleITK.Image`` is indexed x-y-z (column, row,
slice) with spacing/origin in x-y-z mm and a direction matrix in DICOM LPS; the arrays this module
returns or takes are z-y-x (``[D, H, W]``, or ``[D, H, W, C]`` for vector images).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import SimpleITK as sitk

__all__ = [
    "array_view",
    "from_array",
    "geometry",
    "read_dicom_files",
    "read_image",
    "to_array",
    "write_image",
]


def read_image(path: str | os.PathLike[str], pixel_type: int | None = None) -> sitk.Image:
    """One image file (NIfTI, NRRD, MHA, a single DICOM file...) as SimpleITK reads it.

    Args:
        path: the file.
        pixel_type: a ``sitk.sitk*`` pixel type to read as; None keeps the file's.

    Raises:
        RuntimeError: SimpleITK cannot read the file (the caller turns it into a package error).
    """
    if pixel_type is None:
        return sitk.ReadImage(str(path))
    return sitk.ReadImage(str(path), pixel_type)


def read_dicom_files(files: Sequence[str], pixel_type: int) -> sitk.Image:
    """Slices of one DICOM series, in the order given, decoded by GDCM into one x-y-z image.

    Per-slice metadata dictionaries and private tags are not loaded (speed; the index holds the
    headers). ITK's own slice-spacing check (``ITK_non_uniform_sampling_deviation``) is dropped: the
    caller sets the geometry the index verified.
    """
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(list(files))
    reader.SetOutputPixelType(pixel_type)
    reader.MetaDataDictionaryArrayUpdateOff()
    reader.LoadPrivateTagsOff()
    img = reader.Execute()
    if img.HasMetaDataKey("ITK_non_uniform_sampling_deviation"):
        img.EraseMetaData("ITK_non_uniform_sampling_deviation")
    return img


def write_image(image: sitk.Image, path: str | os.PathLike[str], *, compress: bool = True) -> None:
    """Write ``image`` to ``path`` (format from the suffix, e.g. ``.nii.gz``); no atomicity here (see
    :func:`lightning_dicom.files.atomic_write`)."""
    sitk.WriteImage(image, str(path), compress)


def to_array(image: sitk.Image) -> np.ndarray:
    """A copy of the voxels as a z-y-x array (``[D, H, W]``, or ``[D, H, W, C]`` for vector images)."""
    return sitk.GetArrayFromImage(image)


def array_view(image: sitk.Image) -> np.ndarray:
    """A read-only z-y-x view of the voxels, valid only while ``image`` is alive (no copy)."""
    return sitk.GetArrayViewFromImage(image)


def from_array(
    array: np.ndarray,
    *,
    like: sitk.Image | None = None,
    is_vector: bool = False,
    geometry: dict[str, Any] | None = None,
) -> sitk.Image:
    """An image of a z-y-x array (``[D, H, W]``, or ``[D, H, W, C]`` with ``is_vector``).

    Args:
        array: the voxels, z-y-x (copied).
        like: copy spacing, origin and direction from this image (same x-y-z size).
        is_vector: the last axis holds components (channels), not x.
        geometry: or set them from a :func:`geometry` dict (spacing x-y-z mm, origin LPS mm, direction).
    """
    img = sitk.GetImageFromArray(array, isVector=is_vector)
    if like is not None:
        img.CopyInformation(like)
    elif geometry is not None:
        img.SetSpacing([float(v) for v in geometry["spacing"]])
        img.SetOrigin([float(v) for v in geometry["origin"]])
        img.SetDirection([float(v) for v in geometry["direction"]])
    return img


def geometry(image: sitk.Image) -> dict[str, Any]:
    """Spacing (x-y-z mm), origin (LPS mm), direction (9 floats, row-major, columns = axes) and size
    (x-y-z voxels) of an image."""
    return {
        "spacing": list(image.GetSpacing()),
        "origin": list(image.GetOrigin()),
        "direction": list(image.GetDirection()),
        "size": list(image.GetSize()),
    }
