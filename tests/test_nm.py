"""NM geometry (issue 10): position and orientation inside DetectorInformationSequence (0054,0022), a
negative SpacingBetweenSlices (frames run against the normal, as GDCM reads them), and NM frames that
are not slices of one volume."""

from __future__ import annotations

import numpy as np
import pytest

from lightning_dicom.demo.synthetic import direction_from_orientation
from lightning_dicom.demo.synthetic_nm import write_nm
from lightning_dicom.dicom.index import DicomIndex
from lightning_dicom.dicom.series import read_series
from lightning_dicom.errors import SeriesError
from lightning_dicom.io import read_image, to_array


def _corners(image) -> np.ndarray:
    nx, ny, nz = image.GetSize()
    return np.array(
        [
            image.TransformIndexToPhysicalPoint((i, j, k))
            for k in (0, nz - 1)
            for j in (0, ny - 1)
            for i in (0, nx - 1)
        ]
    )


@pytest.mark.parametrize(("detector_sequence", "top_level"), [(True, False), (True, True), (False, True)])
@pytest.mark.parametrize("orientation", ["axial", "coronal:10"])
def test_recon_tomo_frames_lie_at_ipp_minus_k_gaps(tmp_path, detector_sequence, top_level, orientation):
    name, _, deg = orientation.partition(":")
    direction = direction_from_orientation(name, float(deg or 0))
    frames = np.random.default_rng(0).integers(0, 1000, (6, 5, 4)).astype(np.uint16)
    s = write_nm(
        tmp_path / "nm.dcm",
        frames,
        origin=(-100.0, -80.0, 50.0),
        direction=direction,
        spacing_between_slices=-4.0,
        detector_sequence=detector_sequence,
        top_level=top_level,
    )
    normal = np.asarray(direction).reshape(3, 3)[:, 2]
    assert s.positions[1] == pytest.approx(tuple(np.array([-100.0, -80.0, 50.0]) - 4.0 * normal))
    image = read_series(s.path)
    assert image.GetSize() == (4, 5, 6) and image.GetSpacing() == pytest.approx((4.0, 4.0, 4.0))
    arr = to_array(image)
    for k in range(6):  # each frame at its own position: frame k centred at (x0, y0, z0) - 4k normal
        slot = int(
            np.argmin(
                [
                    np.linalg.norm(
                        np.subtract(image.TransformIndexToPhysicalPoint((0, 0, m)), s.positions[k])
                    )
                    for m in range(6)
                ]
            )
        )
        assert np.allclose(image.TransformIndexToPhysicalPoint((0, 0, slot)), s.positions[k], atol=1e-6)
        np.testing.assert_array_equal(arr[slot], frames[k])
    np.testing.assert_allclose(image.GetOrigin(), s.positions[-1], atol=1e-6)  # ascending along the normal
    if detector_sequence:  # GDCM reads the detector's plane and the negative spacing the same way
        np.testing.assert_allclose(
            np.sort(_corners(image), axis=0), np.sort(_corners(read_image(s.path)), axis=0), atol=1e-6
        )


def test_nm_without_any_position_is_read_without_geometry(tmp_path):
    s = write_nm(tmp_path / "nm.dcm", np.zeros((3, 4, 4), np.uint16), detector_sequence=False)
    with DicomIndex([tmp_path]) as idx:
        idx.scan(workers=1)
        (rec,) = idx.series()
    assert not rec.has_geometry and rec.n_slices == 3
    assert read_series(s.path).GetOrigin() == (0.0, 0.0, 0.0)


def test_nm_dynamic_frames_are_not_stacked_as_a_volume(tmp_path):
    s = write_nm(tmp_path / "nm.dcm", np.zeros((8, 4, 4), np.uint16), kind="DYNAMIC")
    with DicomIndex([tmp_path]) as idx:
        idx.scan(workers=1)
        (rec,) = idx.series()
    assert "TimeSliceVector" in rec.geometry_problem
    with pytest.raises(
        SeriesError, match=r"NM DYNAMIC image: its 8 frames are sequenced by TimeSliceVector"
    ) as info:
        read_series(rec)
    assert info.value.path == str(s.path)
