"""Demo and example code, kept apart from the library: synthetic DICOM writers and example models.

Modules: :mod:`~lightning_dicom.demo.synthetic` (CT series with realistic headers),
:mod:`~lightning_dicom.demo.synthetic_masks` (SEG / RTSTRUCT / NIfTI masks for them),
:mod:`~lightning_dicom.demo.models` (a 3D classifier), :mod:`~lightning_dicom.demo.segmentation_models`
(a small 3D U-Net).
"""
