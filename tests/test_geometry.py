"""to_source_geometry inverts reorientation, resampling and crop/pad."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from lightning_dicom.config import PreprocessingConfig
from lightning_dicom.data.preprocess import preprocess
from lightning_dicom.demo.synthetic import direction_from_orientation, make_phantom, write_series
from lightning_dicom.dicom.series import read_series
from lightning_dicom.geometry import to_source_geometry


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


@pytest.fixture(scope="module", params=["axial", "sagittal", "oblique"])
def source(request, tmp_path_factory) -> sitk.Image:
    orient = {"axial": ("axial", 0.0), "sagittal": ("sagittal", 0.0), "oblique": ("axial", 20.0)}[
        request.param
    ]
    hu = make_phantom((20, 32, 28), lesion=True, seed=4)
    s = write_series(
        tmp_path_factory.mktemp(request.param),
        hu,
        spacing=(1.0, 1.0, 1.0),
        direction=direction_from_orientation(*orient),
        seed=2,
    )
    return read_series(s.files)


def _ball(img: sitk.Image) -> np.ndarray:
    z, y, x = np.mgrid[: img.GetSize()[2], : img.GetSize()[1], : img.GetSize()[0]]
    return ((z - 9) ** 2 / 36 + (y - 15) ** 2 / 64 + (x - 12) ** 2 / 49 <= 1).astype(np.uint8)


def test_identity_preprocessing_round_trip_is_exact(source):
    mask = _ball(source)
    m = sitk.GetImageFromArray(mask)
    m.CopyInformation(source)
    arr, meta = preprocess(m, PreprocessingConfig(orientation="none", normalize="none"))
    back = to_source_geometry(arr.astype(np.uint8), meta)
    assert back.GetSize() == source.GetSize()
    np.testing.assert_allclose(back.GetOrigin(), source.GetOrigin(), atol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), mask)


@pytest.mark.parametrize("orientation", ["RAS", "LPS"])
def test_resample_reorient_crop_round_trip_dice(source, orientation):
    mask = _ball(source)
    m = sitk.GetImageFromArray(mask.astype(np.float32))
    m.CopyInformation(source)
    cfg = PreprocessingConfig(
        orientation=orientation,
        spacing=(1.5, 1.5, 1.5),
        interpolation="linear",
        normalize="none",
        size=(18, 22, 20),
    )
    arr, meta = preprocess(m, cfg)
    assert arr.shape[1:] == (18, 22, 20)
    back = to_source_geometry(arr, meta)  # linear on the float mask, then threshold
    rec = sitk.GetArrayFromImage(back) >= 0.5
    assert back.GetSize() == source.GetSize()
    np.testing.assert_allclose(back.GetDirection(), source.GetDirection(), atol=1e-9)
    assert _dice(rec, mask.astype(bool)) >= 0.98
