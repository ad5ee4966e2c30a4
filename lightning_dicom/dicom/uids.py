"""One vocabulary of DICOM UIDs: the SOP classes and transfer syntaxes the package acts on.

Values are from PS3.4 Annex B (Storage SOP classes) and PS3.5 / PS3.6 Annex A (transfer syntaxes).
Every module that compares a SOPClassUID (0008,0016) or TransferSyntaxUID (0002,0010) with a value
imports it from here, so a class added here (e.g. Label Map Segmentation Storage) is known to the
index, the mask reader and the association of masks with series at once.
"""

from __future__ import annotations

__all__ = [
    "DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN",
    "EXPLICIT_VR_BIG_ENDIAN",
    "EXPLICIT_VR_LITTLE_ENDIAN",
    "IMPLICIT_VR_LITTLE_ENDIAN",
    "LOSSLESS_SYNTAXES",
    "MEDIA_STORAGE_DIRECTORY",
    "NAMES",
    "NATIVE_LITTLE_ENDIAN",
    "RLE_LOSSLESS",
    "RTSTRUCT_STORAGE",
    "SEG_STORAGE_CLASSES",
    "SECONDARY_CAPTURE_STORAGE",
    "SEGMENTATION_STORAGE",
    "LABEL_MAP_SEGMENTATION_STORAGE",
    "UNCOMPRESSED_SYNTAXES",
    "mask_kind",
]

# -- SOP classes (PS3.4 B.5) ---------------------------------------------------------------------------
#: Segmentation Storage (binary / fractional SEG).
SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
#: Label Map Segmentation Storage (DICOM 2024c, Sup 243): one labelled frame per slice.
LABEL_MAP_SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.7"
#: Every SOP class read as a DICOM SEG.
SEG_STORAGE_CLASSES = frozenset({SEGMENTATION_STORAGE, LABEL_MAP_SEGMENTATION_STORAGE})
#: Secondary Capture Image Storage; the multi-frame SC classes extend it (``.1`` to ``.4``): screenshots
#: and scanned pages, never slices of a volume.
SECONDARY_CAPTURE_STORAGE = "1.2.840.10008.5.1.4.1.1.7"
#: RT Structure Set Storage.
RTSTRUCT_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"
#: Names of the non-image classes above, as PS3.6 Annex A spells them (reports and skip reasons).
NAMES = {
    SEGMENTATION_STORAGE: "Segmentation Storage",
    LABEL_MAP_SEGMENTATION_STORAGE: "Label Map Segmentation Storage",
    RTSTRUCT_STORAGE: "RT Structure Set Storage",
}
#: Media Storage Directory Storage (DICOMDIR, PS3.10).
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"

# -- transfer syntaxes (PS3.5 A, PS3.6 A) --------------------------------------------------------------
IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1.99"
EXPLICIT_VR_BIG_ENDIAN = "1.2.840.10008.1.2.2"
RLE_LOSSLESS = "1.2.840.10008.1.2.5"
#: Pixel data stored as plain values (possibly deflated as a whole dataset).
UNCOMPRESSED_SYNTAXES = frozenset(
    {
        IMPLICIT_VR_LITTLE_ENDIAN,
        EXPLICIT_VR_LITTLE_ENDIAN,
        EXPLICIT_VR_BIG_ENDIAN,
        DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN,
    }
)
#: Native little-endian pixel data that can be read straight from the file at its offset.
NATIVE_LITTLE_ENDIAN = (IMPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN)
#: Compressed but lossless: RLE, JPEG lossless (process 14 and its SV1 selection), JPEG-LS lossless,
#: JPEG 2000 lossless, HTJ2K lossless and lossless RPCL.
LOSSLESS_SYNTAXES = frozenset(
    {
        RLE_LOSSLESS,
        "1.2.840.10008.1.2.4.57",
        "1.2.840.10008.1.2.4.70",
        "1.2.840.10008.1.2.4.80",
        "1.2.840.10008.1.2.4.90",
        "1.2.840.10008.1.2.4.201",
        "1.2.840.10008.1.2.4.202",
    }
)


def mask_kind(sop_class_uid: str) -> str | None:
    """``'seg'``, ``'rtstruct'`` or None for a SOPClassUID (0008,0016)."""
    if sop_class_uid in SEG_STORAGE_CLASSES:
        return "seg"
    if sop_class_uid == RTSTRUCT_STORAGE:
        return "rtstruct"
    return None
