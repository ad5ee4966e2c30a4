"""A subject's channels: every input read, resampled onto the reference grid in world coordinates,
preprocessed with its own intensity settings, and stacked ``[C, D, H, W]`` in the config's order.

Rule (as MONAI's ``ResampleToMatch`` and ITK's ``ResampleImageFilter``): the output grid is the
reference series' grid after the configured reorientation and resampling
(:func:`lightning_dicom.data.preprocess.to_grid`; with neither, the reference's own grid). At each
of its voxels (origin, spacing and direction, LPS mm) every other input is sampled at the same world
point, once (no double interpolation), trilinearly; within half a voxel of an input's border its
border voxels are used (ITK's rule), and beyond that the input's smallest value (its background, as
:func:`lightning_dicom.data.preprocess.preprocess` pads). No
registration is done: inputs must share the reference's FrameOfReferenceUID (0020,0052), else the
subject is refused naming both series. Then each channel goes through the same preprocessing
(clip, normalise, crop/pad: identical grids give identical geometry) with the input's ``window`` and
``normalize`` when set. A missing input (``missing: zeros``) is a channel of zeros.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import SimpleITK as sitk

from lightning_dicom import io
from lightning_dicom.config import PreprocessingConfig
from lightning_dicom.errors import SeriesError
from lightning_dicom.subjects.resolve import SubjectRecord

__all__ = ["process_subject", "resample_onto"]


def resample_onto(image: sitk.Image, reference: sitk.Image) -> sitk.Image:
    """``image`` sampled on ``reference``'s grid (world coordinates, trilinear, float32); outside its
    field of view the image's minimum."""
    background = float(io.array_view(image).min()) if image.GetNumberOfPixels() else 0.0
    return sitk.Resample(image, reference, sitk.Transform(), sitk.sitkLinear, background, sitk.sitkFloat32)


def process_subject(
    subject: SubjectRecord, preprocessing: PreprocessingConfig
) -> tuple[np.ndarray, dict[str, Any], sitk.Image]:
    """Read and preprocess every input of ``subject``.

    Returns:
        ``(array, meta, reference_image)``: float32 ``[C, D, H, W]`` (C = number of inputs, in order);
        the preprocessed grid's geometry (as :func:`~lightning_dicom.data.preprocess.preprocess`) plus
        ``inputs`` (``"name=SeriesInstanceUID"`` joined by ``|``; empty UID when missing) and
        ``missing_inputs`` (names); the reference series as read (source grid, for masks).

    Raises:
        SeriesError: an input cannot be read, or does not share the reference's FrameOfReferenceUID.
    """
    from lightning_dicom.data.preprocess import finish, to_grid
    from lightning_dicom.dicom.series import read_series

    def read(rec: Any) -> sitk.Image:
        return read_series(
            rec, irregular=preprocessing.irregular_stacks, gap_tolerance=preprocessing.gap_tolerance
        )

    ref_rec = subject.inputs[subject.reference_index]
    assert ref_rec is not None
    reference = read(ref_rec)
    source = io.geometry(reference)
    grid = to_grid(reference, preprocessing)  # the output grid: reference reoriented and resampled
    channels: list[np.ndarray | None] = []
    meta: dict[str, Any] = {}
    for name, rec, (window, normalize) in zip(
        subject.input_names, subject.inputs, subject.channel_settings, strict=True
    ):
        if rec is None:
            channels.append(None)
            continue
        if rec is ref_rec:
            image = grid
        else:
            if not rec.frame_uid or rec.frame_uid != ref_rec.frame_uid:
                raise SeriesError(
                    f"subject {subject.series_id}: input {name!r} (series {rec.series_uid}) does not share the "
                    f"FrameOfReferenceUID of the reference series {ref_rec.series_uid} "
                    f"({rec.frame_uid or 'none'} vs {ref_rec.frame_uid or 'none'}); no registration is done, "
                    "so the subject is left out",
                    series_uid=rec.series_uid,
                )
            image = resample_onto(read(rec), grid)  # one interpolation, straight onto the output grid
        cfg = preprocessing.model_copy(
            update={"window": window if window is not None else preprocessing.window,
                    "normalize": normalize if normalize is not None else preprocessing.normalize}
        )  # fmt: skip
        array, geometry = finish(image, cfg, source)
        if array.shape[0] != 1:
            raise SeriesError(f"subject input {name!r} is a colour image; channels must be scalar volumes",
                              series_uid=rec.series_uid)  # fmt: skip
        channels.append(array[0])
        if rec is ref_rec:
            meta = geometry
    shape = next(c.shape for c in channels if c is not None)
    stacked = np.stack([c if c is not None else np.zeros(shape, np.float32) for c in channels])
    meta["inputs"] = "|".join(
        f"{n}={r.series_uid if r is not None else ''}"
        for n, r in zip(subject.input_names, subject.inputs, strict=True)
    )
    meta["missing_inputs"] = list(subject.missing_inputs)
    return stacked, meta, reference
