"""read_series against the reference reader over every file of pydicom-data (GitHub issue 4).

pydicom-data (module ``data_store``, in the dev extra) ships pydicom's larger test files: CT/MR/CR
images in uncompressed, JPEG 2000 (reversible and irreversible), JPEG-LS, JPEG lossless and RLE
syntaxes, colour and palette images of 8 to 32 bits, multi-frame files, a raw dataset without file
meta, truncated and malformed files. The folder is indexed once, then every file is a test case:

* a file the index skips is skipped with the index's reason (non-empty; the set of such files and
  their reasons is pinned in ``SKIPPED_BY_INDEX``, so a newly skipped file fails a test);
* a file read_series refuses on purpose (``REJECTED``) must raise a SeriesError naming it;
* otherwise it is read -- through its own record when it is a volume of its own in the index, else
  on its own (a copy the index left out as a duplicate, or one file of a series whose files overlap
  and make the series unreadable, see ``REJECTED_VOLUMES``) -- and compared with the reference
  (tests/reference_reader.py): exact values for lossless and uncompressed data, within a tolerance
  for lossy JPEG and JPEG 2000, geometry within 1e-4 mm.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from reference_reader import LOSSY_ATOL, LOSSY_JPEG, assert_matches_reference, reference_read

from lightning_dicom.dicom.index import DicomIndex, SeriesRecord
from lightning_dicom.dicom.series import read_series
from lightning_dicom.errors import SeriesError

data_store = pytest.importorskip(
    "data_store",
    reason="pydicom-data is not installed (pip install pydicom-data, part of the dev extra): "
    "no larger DICOM test files to compare with the reference reader",
)

DATA = Path(data_store.DataStore().data_path)
FILES = sorted(str(p.relative_to(DATA)) for p in DATA.rglob("*") if p.is_file()) if DATA.is_dir() else []
if not FILES:
    pytest.skip(
        f"pydicom-data is installed but its data folder {DATA} holds no files", allow_module_level=True
    )

#: Lossy transfer syntaxes: JPEG baseline/extended, and JPEG 2000 irreversible (OpenJPEG in both
#: pylibjpeg-openjpeg and GDCM: equal today, but the 9/7 wavelet is floating point).
LOSSY = (*LOSSY_JPEG, "1.2.840.10008.1.2.4.91")
#: Per-file lossy tolerance where LOSSY_ATOL is not enough. color3d_jpeg_baseline.dcm (YBR_FULL_422,
#: 120 frames): pylibjpeg-libjpeg's chroma upsampling differs from GDCM's by up to 5 units at 120 of
#: 110.6 M values (mean 0.024); Pillow's decode equals GDCM's exactly.
LOSSY_ATOL_FOR = {"color3d_jpeg_baseline.dcm": 5}

_SPACING_ZERO = r"PixelSpacing \(0028,0030\) must be 2 positive numbers"
#: Files the index skips (regex of the reason), with why.
SKIPPED_BY_INDEX = {
    "RG1_J2KI.dcm": _SPACING_ZERO,  # CR with PixelSpacing 0\0
    "RG1_J2KR.dcm": _SPACING_ZERO,
    "RG1_UNCI.dcm": _SPACING_ZERO,
    "RG1_UNCR.dcm": _SPACING_ZERO,
    "liver.dcm": r"not an image volume \(Segmentation Storage\)",
    "liver_expb.dcm": r"not an image volume \(Segmentation Storage\)",
}

#: Files read_series refuses on purpose (regex of the SeriesError reason), with why.
REJECTED = {
    "SC_rgb_expb_32bit.dcm": "32-bit Explicit VR Big Endian",  # GDCM decodes it to wrong values
    "SC_rgb_expb_32bit_2frame.dcm": "32-bit Explicit VR Big Endian",
    # last JPEG 2000 fragment cut short (pydicom itself reads no dataset from it)
    "emri_small_jpeg_2k_lossless_too_short.dcm": "file truncated",
}

#: Volumes of several files that read_series refuses (file names -> regex of the reason). The NEMA
#: WG04 samples keep, in one series, the original (UNCR, J2KR) and the image decoded from its
#: irreversible JPEG 2000 copy (UNCI, new SOPInstanceUID) at the same position. The decoded copy says
#: ImageType DERIVED, so it is a volume of its own (an image type never shares a volume with another,
#: lightning_dicom.dicom.volumes); 693_J2KR and 693_UNCR share SOPInstanceUID, AcquisitionNumber and
#: InstanceNumber (but declare BitsStored 16 and 14, so the index does not take one for a copy of the
#: other): nothing tells them apart and the stack is refused. MR2_J2KR and MR2_UNCI (both DERIVED) differ
#: only in InstanceNumber at their one position: InstanceNumber order is not evidence of time points when
#: every instance sits at one position (lightning_dicom.dicom.volumes), so they are refused too.
REJECTED_VOLUMES = {
    ("693_J2KR.dcm", "693_UNCR.dcm"): "duplicate slice positions: 2 instances share the slice position",
    ("MR2_J2KR.dcm", "MR2_UNCI.dcm"): "all 2 slices/frames sit at one position",
}


@dataclass(frozen=True)
class DataIndex:
    skipped: dict[str, str]  # path -> reason
    volumes: list[SeriesRecord]
    duplicates: dict[str, str]  # path left out -> path kept

    def own_volume(self, path: str) -> SeriesRecord | None:
        """The record of the volume made of this one file, if there is one."""
        return next((rec for rec in self.volumes if rec.files == (path,)), None)


@pytest.fixture(scope="module")
def data_index(tmp_path_factory: pytest.TempPathFactory) -> DataIndex:
    db = tmp_path_factory.mktemp("pydicom_data_index") / "index.sqlite"
    with DicomIndex([DATA], db_path=db) as idx:
        idx.scan(workers=1)
        return DataIndex(dict(idx.skipped()), idx.series(), idx.duplicates())


def _name(path: str) -> str:
    return str(Path(path).relative_to(DATA))


def _header(path: Path) -> pydicom.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path, stop_before_pixels=True, force=True)


def _reference_or_skip(path: Path) -> dict:
    try:
        return reference_read([path])
    except (RuntimeError, NotImplementedError, ValueError) as err:
        pytest.skip(f"pydicom cannot decode {path.name} with the installed plugins: {str(err)[:120]}")


def test_data_folder_holds_the_pydicom_data_files():
    assert len(FILES) >= 60
    for name in (
        "emri_small.dcm",
        "color3d_jpeg_baseline.dcm",
        "MR2_J2KR.dcm",
        "OT-PAL-8-face.dcm",
        "gdcm-US-ALOKA-16.dcm",
    ):
        assert name in FILES


def test_data_index_accounts_for_every_file(data_index):
    """Each file is skipped with a reason, or in exactly one volume, or a copy of a file in one."""
    skipped = {_name(p): reason for p, reason in data_index.skipped.items()}
    assert sorted(skipped) == sorted(SKIPPED_BY_INDEX)
    for name, reason in skipped.items():
        assert reason.strip(), name
        assert re.search(SKIPPED_BY_INDEX[name], reason), (name, reason)
    in_volumes = [f for rec in data_index.volumes for f in rec.files]
    assert len(in_volumes) == len(set(in_volumes))
    for left_out, kept in data_index.duplicates.items():
        assert kept in in_volumes, (left_out, kept)
    assert sorted(_name(p) for p in [*data_index.skipped, *in_volumes, *data_index.duplicates]) == FILES


def test_data_multi_file_volumes_match_reference_or_are_refused(data_index):
    multi = [rec for rec in data_index.volumes if len(rec.files) > 1]
    seen = set()
    for rec in multi:
        names = tuple(sorted(_name(p) for p in rec.files))
        seen.add(names)
        if names in REJECTED_VOLUMES:
            with pytest.raises(SeriesError, match=REJECTED_VOLUMES[names]):
                read_series(rec)
            continue
        ref = reference_read(list(rec.files))
        assert_matches_reference(read_series(rec), ref, exact=rec.integer_values)
    assert set(REJECTED_VOLUMES) <= seen


@pytest.mark.parametrize("name", FILES)
def test_data_file_matches_reference(data_index, name):
    path = DATA / name
    reason = data_index.skipped.get(str(path))
    if reason is not None:
        assert reason.strip(), f"the index skips {name} without saying why"
        pytest.skip(f"the index skips {name}: {reason}")
    if name in REJECTED:
        with pytest.raises(SeriesError, match=REJECTED[name]) as info:
            read_series(path)
        assert info.value.path == str(path)
        return
    ref = _reference_or_skip(path)
    # its own volume in the index, else (a copy left out, or one of several files at one position) alone
    rec = data_index.own_volume(str(path))
    image = read_series(rec if rec is not None else path)
    header = _header(path)
    integral = bool(np.all(ref["array"] % 1 == 0))
    lossy = header.file_meta.get("TransferSyntaxUID") in LOSSY
    assert_matches_reference(
        image, ref, exact=integral, lossy=lossy, lossy_atol=LOSSY_ATOL_FOR.get(name, LOSSY_ATOL)
    )
    assert image.GetDimension() == 3
    if ref["array"].ndim == 4:  # colour: RGB vector image
        assert image.GetNumberOfComponentsPerPixel() == 3
    elif integral and ref["array"].min() >= -32768 and ref["array"].max() <= 32767:
        assert image.GetPixelID() == sitk.sitkInt16, image.GetPixelIDTypeAsString()
    elif not integral:
        assert image.GetPixelID() == sitk.sitkFloat32, image.GetPixelIDTypeAsString()
