"""The fast header reader gives exactly what the pydicom reader gives, or hands the file over.

:func:`lightning_dicom.dicom.header.read_header` parses plainly well-formed Part-10 files itself and
falls back to pydicom for anything else. These tests compare both readers (``_FAST`` on and off)
on pydicom's test files, on hand-built files that exercise every element the reader decodes with
plain and odd values, on undefined-length sequences and on random corruptions; and check that
ordinary generated series do take the fast path and that ``pixel_offset`` points at the pixels.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lightning_dicom.demo.synthetic import make_phantom, write_series
from lightning_dicom.dicom import header as H
from lightning_dicom.errors import NotDicomError

EXPLICIT, IMPLICIT = "1.2.840.10008.1.2.1", "1.2.840.10008.1.2"
_LONG = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}


def _outcome(path: Path, fast: bool) -> tuple:
    old = H._FAST
    H._FAST = fast
    try:
        h = H.read_header(path)
        return ("ok", {k: repr(v) for k, v in h.items()})
    except NotDicomError as err:
        return ("skipped", str(err))
    except OSError as err:
        return ("oserror", type(err).__name__)
    finally:
        H._FAST = old


def _took_fast_path(path: Path) -> bool:
    with open(path, "rb") as fh:
        return H._fast_header(fh, str(path)) is not None


def _assert_same(path: Path) -> bool:
    """Both readers agree on ``path``; returns whether the fast reader accepted it."""
    fast, slow = _outcome(path, True), _outcome(path, False)
    assert fast == slow, path
    return _took_fast_path(path)


# -- a tiny writer of Part-10 files, byte by byte --------------------------------------------------
def _el(tag: int, vr: bytes, value: bytes, implicit: bool = False, length: int | None = None) -> bytes:
    n = len(value) if length is None else length
    g, e = tag >> 16, tag & 0xFFFF
    if implicit:
        return struct.pack("<HHI", g, e, n) + value
    if vr in _LONG:
        return struct.pack("<HH2sHI", g, e, vr, 0, n) + value
    return struct.pack("<HH2sH", g, e, vr, n) + value


def _pad(value: bytes, vr: bytes) -> bytes:
    return value + (b"\0" if vr == b"UI" else b" ") if len(value) % 2 else value


def _item(body: bytes, defined: bool) -> bytes:
    if defined:
        return struct.pack("<HHI", 0xFFFE, 0xE000, len(body)) + body
    return struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF) + body + struct.pack("<HHI", 0xFFFE, 0xE00D, 0)


def _sequence(tag: int, items: list[bytes], implicit: bool, defined: bool = False) -> bytes:
    body = b"".join(items)
    if defined:
        return _el(tag, b"SQ", body, implicit)
    return _el(tag, b"SQ", body + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0), implicit, length=0xFFFFFFFF)


BASE = {
    0x00080005: (b"CS", b"ISO_IR 100"),
    0x00080016: (b"UI", b"1.2.840.10008.5.1.4.1.1.2"),
    0x00080018: (b"UI", b"1.2.3.4.5.6"),
    0x00080060: (b"CS", b"CT"),
    0x0008103E: (b"LO", b"CHEST 1.0 B30f"),
    0x00100020: (b"LO", b"PID-0001"),
    0x00180050: (b"DS", b"1.25"),
    0x00180088: (b"DS", b"1.25"),
    0x0020000D: (b"UI", b"1.2.3.4"),
    0x0020000E: (b"UI", b"1.2.3.4.5"),
    0x00200011: (b"IS", b"3"),
    0x00200013: (b"IS", b"17"),
    0x00200032: (b"DS", b"-125.5\\-130.25\\42"),
    0x00200037: (b"DS", b"1\\0\\0\\0\\1\\0"),
    0x00200052: (b"UI", b"1.2.3.4.9"),
    0x00280002: (b"US", struct.pack("<H", 1)),
    0x00280004: (b"CS", b"MONOCHROME2"),
    0x00280010: (b"US", struct.pack("<H", 4)),
    0x00280011: (b"US", struct.pack("<H", 6)),
    0x00280030: (b"DS", b"0.75\\0.8"),
    0x00280100: (b"US", struct.pack("<H", 16)),
    0x00280101: (b"US", struct.pack("<H", 12)),
    0x00280102: (b"US", struct.pack("<H", 11)),
    0x00280103: (b"US", struct.pack("<H", 0)),
    0x00281052: (b"DS", b"-1024"),
    0x00281053: (b"DS", b"1"),
}


def _blob(
    elements: dict[int, tuple[bytes, bytes]] | None = None,
    *,
    syntax: str = EXPLICIT,
    extra: bytes = b"",
    pixels: bytes | None = None,
) -> bytes:
    """A Part-10 file of ``elements`` (tag -> (VR, value)); ``extra`` is inserted before (0018,0050)."""
    implicit = syntax == IMPLICIT
    elements = BASE if elements is None else elements
    ts = _pad(syntax.encode(), b"UI")
    meta = (
        _el(0x00020001, b"OB", b"\0\1")
        + _el(0x00020002, b"UI", _pad(elements.get(0x00080016, BASE[0x00080016])[1], b"UI"))
        + _el(0x00020003, b"UI", b"1.2.3.4.5.6\0")
        + _el(0x00020010, b"UI", ts)
    )
    out = bytes(128) + b"DICM" + _el(0x00020000, b"UL", struct.pack("<I", len(meta))) + meta
    for tag in sorted(elements):
        if tag == 0x00180050:
            out += extra
        vr, value = elements[tag]
        out += _el(tag, vr, _pad(value, vr) if vr not in (b"US", b"SQ") else value, implicit)
    if pixels is None:
        pixels = np.arange(24, dtype="<u2").tobytes()
    return out + _el(0x7FE00010, b"OW", pixels, implicit)


def _write(tmp_path: Path, name: str, blob: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(blob)
    return p


# -- tests ----------------------------------------------------------------------------------------
def test_every_pydicom_test_file_reads_the_same(pydicom_files):
    files = [p for p in sorted(pydicom_files.rglob("*")) if p.is_file()]
    assert len(files) > 150
    fast = sum(_assert_same(p) for p in files)
    assert fast >= 60  # the fast reader takes most well-formed images


def test_generated_series_take_the_fast_path_and_pixel_offset_points_at_the_pixels(tmp_path):
    s = write_series(tmp_path, make_phantom((3, 10, 12), seed=1), seed=2, bits_stored=12)
    for f in s.files:
        assert _assert_same(f)
        h = H.read_header(f)
        ds = pydicom.dcmread(f)
        with open(f, "rb") as fh:
            fh.seek(h["pixel_offset"])
            assert fh.read(len(ds.PixelData)) == ds.PixelData
        assert h["high_bit"] == 11 and h["problem"] is None


@pytest.mark.parametrize("syntax", [EXPLICIT, IMPLICIT])
def test_hand_built_file_takes_the_fast_path(tmp_path, syntax):
    p = _write(tmp_path, "a.dcm", _blob(syntax=syntax))
    assert _assert_same(p)
    h = H.read_header(p)
    assert h["rows"] == 4 and h["cols"] == 6 and h["bits_stored"] == 12 and h["rescale_intercept"] == -1024
    assert h["ipp"] == "[-125.5, -130.25, 42.0]" and h["transfer_syntax"] == syntax
    assert h["pixel_offset"] == p.stat().st_size - 48


ODD_VALUES = {
    b"UI": [b"", b" ", b"1.2.3 ", b"1.2.3\0", b"1.2\\3.4", b"1.2.\xe93", b" 1.2"],
    b"CS": [b"", b"  ", b"ct", b"CT\\MR", b" CT", b"CT\0", b"C\xc9"],
    b"LO": [b"", b"  ", b"a\\b", b"caf\xe9", b"x\x1b$B", b" lead", b"tr\0"],
    b"DS": [
        b"",
        b" ",
        b"1",
        b" 1.5 ",
        b"1e2",
        b"-.5",
        b"1.",
        b"nan",
        b"inf",
        b"1e400",
        b"abc",
        b"1\\2",
        b"1\\\\2",
        b"1_0",
        b"0x10",
        b"1\0",
        b"\t1",
        b"1\\2\\3",
        b"1\\0\\0\\0\\1\\0",
        b"0\\0",
        b"-1\\-1",
        b"+1.5E-3",
    ],
    b"IS": [
        b"",
        b" ",
        b"1",
        b" 12 ",
        b"-3",
        b"1.0",
        b"1.5",
        b"1A",
        b"99999999999",
        b"1\\2",
        b"\t1",
        b"007",
        b"+4",
    ],
    b"US": [b"", struct.pack("<H", 0), struct.pack("<H", 65535), struct.pack("<HH", 1, 2), b"\x01"],
}


@pytest.mark.parametrize("tag", sorted(BASE))
@pytest.mark.parametrize("syntax", [EXPLICIT, IMPLICIT])
def test_every_decoded_element_with_odd_values_reads_the_same(tmp_path, tag, syntax):
    vr = BASE[tag][0]
    for k, value in enumerate([None, *ODD_VALUES[vr]]):
        elements = dict(BASE)
        if value is None:
            del elements[tag]
        else:
            elements[tag] = (vr, value)
        _assert_same(_write(tmp_path, f"{k}.dcm", _blob(elements, syntax=syntax)))
    if syntax == EXPLICIT:  # the element with another VR than the dictionary's
        elements = dict(BASE)
        elements[tag] = (b"UN" if vr != b"UN" else b"LO", BASE[tag][1])
        assert not _assert_same(_write(tmp_path, "vr.dcm", _blob(elements)))


@pytest.mark.parametrize(
    "charset", [b"", b"ISO_IR 192", b"\\ISO 2022 IR 87", b"ISO_IR 999", b"GB18030", b"ISO_IR 100\\x"]
)
def test_character_sets_read_the_same(tmp_path, charset):
    for pid in (b"PID-0001", "Jérôme".encode("latin-1"), "山田".encode()):
        elements = dict(BASE)
        elements[0x00080005] = (b"CS", charset)
        elements[0x00100020] = (b"LO", pid)
        _assert_same(_write(tmp_path, "c.dcm", _blob(elements)))


def _sequences(implicit: bool) -> bytes:
    inner = _el(0x00081150, b"UI", b"1.2.3\0", implicit) + _el(0x00081155, b"UI", b"1.2.4\0", implicit)
    nested = _sequence(0x00082112, [_item(inner, False)], implicit)
    private = (
        _el(0x00090010, b"LO", b"ACME 1.0", implicit)
        + _sequence(0x00091001, [_item(inner, True), _item(inner, False)], implicit)
        + _el(0x00091002, b"OB", bytes(300), implicit)
    )
    return (
        _sequence(0x00081140, [_item(inner, False), _item(inner + nested, True)], implicit)
        + _sequence(0x00081250, [], implicit, defined=True)
        + private
        + _sequence(0x00089215, [_item(nested, False)], implicit)
    )


@pytest.mark.parametrize("syntax", [EXPLICIT, IMPLICIT])
def test_sequences_of_undefined_length_are_skipped_like_pydicom(tmp_path, syntax):
    blob = _blob(syntax=syntax, extra=_sequences(syntax == IMPLICIT))
    p = _write(tmp_path, "s.dcm", blob)
    assert _assert_same(p)
    assert H.read_header(p)["pixel_offset"] == len(blob) - 48


@pytest.mark.parametrize("syntax", [EXPLICIT, IMPLICIT])
def test_long_headers_cross_read_chunks(tmp_path, syntax):
    implicit = syntax == IMPLICIT
    elements = dict(BASE)
    elements[0x7FD00010] = (b"LO", b"after")  # read after the big elements
    for n in (3 * H._CHUNK + 6, H._CHUNK - 420, H._CHUNK - 200, H._CHUNK - 60):  # sequences across chunk ends
        big = _el(0x00291010, b"OB", bytes(n), implicit) + _sequences(implicit)
        p = _write(tmp_path, f"big{n}.dcm", _blob(elements, extra=big, syntax=syntax))
        assert _assert_same(p)
        assert H.read_header(p)["pixel_offset"] == p.stat().st_size - 48


def test_header_only_and_missing_or_short_pixel_data_read_the_same(tmp_path):
    blob = _blob()
    cut = blob[: -48 - 12]  # no Pixel Data element at all
    for k, b in enumerate(
        [
            cut,
            cut + b"\xe0\x7f",
            blob[:-10],
            _blob(pixels=bytes(10)),
            _blob(pixels=bytes(49)),
            blob + b"\0" * 3,
        ]
    ):
        _assert_same(_write(tmp_path, f"{k}.dcm", b))


def test_other_syntaxes_and_enhanced_files_go_to_pydicom(tmp_path, pydicom_files):
    for name in ("MR_small_bigendian.dcm", "image_dfl.dcm", "rtstruct.dcm"):
        assert not _assert_same(pydicom_files / name)
    assert not _assert_same(_write(tmp_path, "be.dcm", _blob(syntax="1.2.840.10008.1.2.2")))
    for tag in (0x52009229, 0x52009230, 0x00041220):
        elements = dict(BASE)
        elements[tag] = (b"SQ", b"")
        assert not _assert_same(_write(tmp_path, "e.dcm", _blob(elements)))


TEMPLATE = _blob(extra=_sequences(False))
TEMPLATE_IMPLICIT = _blob(extra=_sequences(True), syntax=IMPLICIT)


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data(), implicit=st.booleans())
def test_random_corruption_reads_the_same(tmp_path, data, implicit):
    blob = bytearray(TEMPLATE_IMPLICIT if implicit else TEMPLATE)
    for _ in range(data.draw(st.integers(1, 6), label="flips")):
        pos = data.draw(st.integers(128, len(blob) - 1), label="pos")
        blob[pos] = data.draw(
            st.sampled_from([0, 1, 0xFF, 0xFE, 0x5C, 0x20, 0x41, 0xE0, data.draw(st.integers(0, 255))])
        )
    cut = data.draw(st.one_of(st.none(), st.integers(130, len(blob))), label="cut")
    _assert_same(_write(tmp_path, "f.dcm", bytes(blob[:cut] if cut is not None else blob)))
