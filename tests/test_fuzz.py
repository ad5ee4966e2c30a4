"""Property tests: mutated headers of a valid generated series.

Whatever the mutation (bad PixelSpacing / ImageOrientationPatient / ImagePositionPatient, Rows and
Columns that do not match the pixel data, missing mandatory tags, huge values, random bytes),
indexing never raises, and read_series either returns an image with finite geometry of the size the
index announced, or raises a LightningDicomError whose message names the file.
"""

from __future__ import annotations

import struct
import tempfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lightning_dicom.demo.synthetic import make_phantom, write_series
from lightning_dicom.dicom.index import DicomIndex
from lightning_dicom.dicom.series import read_series
from lightning_dicom.errors import LightningDicomError

FUZZ = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)


def _template() -> list[bytes]:
    with tempfile.TemporaryDirectory() as d:
        s = write_series(d, make_phantom((2, 8, 8), seed=1), shuffle=False, spacing=(0.5, 0.5, 2.0))
        for f in s.files:  # add NumberOfFrames so that it can be mutated too
            ds = pydicom.dcmread(f)
            ds.NumberOfFrames = 1
            ds.save_as(f)
        return [f.read_bytes() for f in s.files]


TEMPLATE = _template()


def _find(blob: bytes, group: int, elem: int) -> int:
    """Offset of a top-level explicit VR little endian element of the dataset (after the file meta)."""
    key = struct.pack("<HH", group, elem)
    start = blob.index(b"DICM") + 4
    pos = blob.find(key, start)
    while pos >= 0 and group != 0x7FE0 and not blob[pos + 4 : pos + 6].isalpha():
        pos = blob.find(key, pos + 1)
    return pos


def _patch(blob: bytes, group: int, elem: int, value: bytes | None) -> bytes:
    """Replace the value of an element with 2-byte length (or drop the element when value is None)."""
    pos = _find(blob, group, elem)
    assert pos >= 0, f"({group:04X},{elem:04X}) not in template"
    if group == 0x7FE0:  # OW: 4-byte length after 2 reserved bytes
        (length,) = struct.unpack("<I", blob[pos + 8 : pos + 12])
        end = pos + 12 + length
        if value is None:
            return blob[:pos] + blob[end:]
        return blob[: pos + 8] + struct.pack("<I", len(value)) + value + blob[end:]
    (length,) = struct.unpack("<H", blob[pos + 6 : pos + 8])
    end = pos + 8 + length
    if value is None:
        return blob[:pos] + blob[end:]
    if len(value) % 2:
        value += b"\0" if blob[pos + 4 : pos + 6] in (b"UI", b"OB") else b" "
    return blob[: pos + 6] + struct.pack("<H", len(value)) + value + blob[end:]


def _check(folder: Path) -> str:
    """Index and read everything in folder; return 'read', 'refused' or 'empty' (for statistics)."""
    with DicomIndex([folder]) as idx:
        idx.scan(workers=1)  # must never raise
        volumes = idx.series()
        skipped = idx.skipped()
    assert all(reason for _, reason in skipped)
    outcome = "empty"
    for rec in volumes:
        image, err = _read(rec)
        if err is not None:
            assert err.path
            assert err.path in str(err)
            assert Path(err.path).parent == folder
            outcome = "refused"
            continue
        assert image.GetSize() == (rec.cols, rec.rows, rec.n_slices)
        for values in (image.GetOrigin(), image.GetSpacing(), image.GetDirection()):
            assert np.all(np.isfinite(values))
        assert min(image.GetSpacing()) > 0
        d = np.asarray(image.GetDirection()).reshape(3, 3)
        np.testing.assert_allclose(d.T @ d, np.eye(3), atol=1e-6)
        outcome = "read"
    _, err = _read(folder)  # the path form too: same promise
    if err is not None:
        assert err.path
        assert err.path in str(err)
    return outcome


def _read(source):
    """(image, None) or (None, the LightningDicomError); any other exception propagates (a failure)."""
    try:
        return read_series(source), None
    except LightningDicomError as err:
        return None, err


def _run(blobs: list[bytes]) -> str:
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        for k, blob in enumerate(blobs):
            (folder / f"IM{k}.dcm").write_bytes(blob)
        return _check(folder)


DS_ATOMS = [
    "0",
    "-1",
    "-0.5",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "1e308",
    "1e-300",
    "1e400",
    "abc",
    "",
    " ",
    "0.5",
    "1",
    "2.0",
    "1e6",
    "99999999999999",
]
ds_value = st.lists(st.sampled_from(DS_ATOMS), min_size=0, max_size=7).map(lambda v: "\\".join(v).encode())
iop_value = st.one_of(
    ds_value,
    st.sampled_from(
        [
            b"1\\0\\0\\1\\0\\0",
            b"2\\0\\0\\0\\2\\0",
            b"0.7\\0.7\\0\\0\\1\\0",
            b"0\\0\\0\\0\\0\\0",
            b"1\\0\\0\\0\\0.999\\0.01",
            b"1\\0\\0\\0\\1\\0\\0",
            b"1\\0\\0",
        ]
    ),
    st.lists(st.floats(-2, 2, allow_nan=False), min_size=6, max_size=6).map(
        lambda v: "\\".join(f"{x:.6g}" for x in v).encode()
    ),
)
us_value = st.integers(0, 65535).map(lambda v: struct.pack("<H", v))
is_value = st.sampled_from([b"0", b"-1", b"2", b"2147483647", b"99999999999", b"1A", b"", b"3"])
cs_value = st.sampled_from([b"MONOCHROME1", b"RGB", b"PALETTE COLOR", b"YBR_FULL_422", b"", b"XYZ"])

GEOMETRY = {
    (0x0028, 0x0030): ds_value,
    (0x0020, 0x0037): iop_value,
    (0x0020, 0x0032): ds_value,
    (0x0018, 0x0050): ds_value,
    (0x0028, 0x1053): ds_value,
    (0x0028, 0x1052): ds_value,
}
PIXEL_MODULE = {
    (0x0028, 0x0010): us_value,
    (0x0028, 0x0011): us_value,
    (0x0028, 0x0100): us_value,
    (0x0028, 0x0101): us_value,
    (0x0028, 0x0103): us_value,
    (0x0028, 0x0002): us_value,
    (0x0028, 0x0008): is_value,
    (0x0028, 0x0004): cs_value,
}
MANDATORY = [
    (0x0028, 0x0010),
    (0x0028, 0x0011),
    (0x0028, 0x0100),
    (0x0028, 0x0101),
    (0x0028, 0x0103),
    (0x0028, 0x0002),
    (0x0028, 0x0004),
    (0x0020, 0x0032),
    (0x0020, 0x0037),
    (0x0028, 0x0030),
    (0x0020, 0x000E),
    (0x0008, 0x0018),
    (0x0028, 0x1053),
    (0x7FE0, 0x0010),
]


def _mutations(table: dict) -> st.SearchStrategy:
    return st.lists(
        st.sampled_from(sorted(table)).flatmap(lambda t: st.tuples(st.just(t), table[t])),
        min_size=1,
        max_size=4,
    )


def _apply(blob: bytes, mutations) -> bytes:
    for (group, elem), value in mutations:
        blob = _patch(blob, group, elem, value)
    return blob


def test_template_is_valid():
    assert _run(TEMPLATE) == "read"
    patched = _patch(TEMPLATE[0], 0x0028, 0x0030, b"0.5\\0.5")  # a no-op patch keeps it valid
    assert patched == TEMPLATE[0]


@FUZZ
@given(mutations=_mutations(GEOMETRY), both=st.booleans())
def test_fuzz_geometry_tags(mutations, both):
    blobs = [_apply(b, mutations) if (k == 0 or both) else b for k, b in enumerate(TEMPLATE)]
    _run(blobs)


@FUZZ
@given(mutations=_mutations(PIXEL_MODULE), both=st.booleans())
def test_fuzz_pixel_module(mutations, both):
    blobs = [_apply(b, mutations) if (k == 0 or both) else b for k, b in enumerate(TEMPLATE)]
    _run(blobs)


@FUZZ
@given(missing=st.lists(st.sampled_from(MANDATORY), min_size=1, max_size=3, unique=True))
def test_fuzz_missing_mandatory_tags(missing):
    blob = TEMPLATE[0]
    for group, elem in missing:
        blob = _patch(blob, group, elem, None)
    _run([blob, TEMPLATE[1]])


@FUZZ
@given(data=st.data())
def test_fuzz_random_bytes_and_truncation(data):
    blob = bytearray(TEMPLATE[0])
    n = data.draw(st.integers(1, 8), label="flips")
    for _ in range(n):
        pos = data.draw(st.integers(132, len(blob) - 1), label="pos")
        blob[pos] = data.draw(st.integers(0, 255), label="byte")
    cut = data.draw(st.one_of(st.none(), st.integers(0, len(blob))), label="cut")
    _run([bytes(blob[:cut] if cut is not None else blob), TEMPLATE[1]])


@pytest.mark.parametrize(
    ("tag", "value", "expect"),
    [
        ((0x0028, 0x0030), b"0\\0", "PixelSpacing .* must be 2 positive numbers"),
        ((0x0028, 0x0030), b"nan\\1", "PixelSpacing .* must be 2 positive numbers"),
        ((0x0028, 0x0030), b"-1\\-1", "PixelSpacing .* must be 2 positive numbers"),
        (
            (0x0020, 0x0037),
            b"0.7\\0.7\\0\\0\\1\\0",
            "ImageOrientationPatient .* not two orthogonal unit vectors",
        ),
        ((0x0020, 0x0032), b"1e300\\0\\0", "ImagePositionPatient .* must be 3 finite numbers"),
        ((0x0028, 0x1053), b"0", "RescaleSlope .* finite non-zero"),
    ],
)
def test_invalid_geometry_is_skipped_with_a_precise_reason(tmp_path, tag, value, expect):
    (tmp_path / "x.dcm").write_bytes(_patch(TEMPLATE[0], *tag, value))
    with DicomIndex([tmp_path]) as idx:
        idx.scan(workers=1)
        ((path, reason),) = idx.skipped()
    assert path == str(tmp_path / "x.dcm")
    import re

    assert re.search(expect, reason), reason


def test_rows_larger_than_pixel_data_is_refused_naming_the_file(tmp_path):
    (tmp_path / "x.dcm").write_bytes(_patch(TEMPLATE[0], 0x0028, 0x0010, struct.pack("<H", 65535)))
    with pytest.raises(LightningDicomError, match="Pixel Data holds 128 bytes but .* need 1048560") as info:
        read_series(tmp_path / "x.dcm")
    assert info.value.path == str(tmp_path / "x.dcm")
