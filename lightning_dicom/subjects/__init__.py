"""Subjects made of several series of one study: multi-channel inputs resolved from the header index.

Modules: :mod:`~lightning_dicom.subjects.config` (the rules, embedded in ``DataConfig`` as
``subjects``), :mod:`~lightning_dicom.subjects.resolve` (which series is which input, per study or
patient), :mod:`~lightning_dicom.subjects.pipeline` (channels resampled onto the reference grid and
stacked). Nothing is imported here eagerly: :mod:`lightning_dicom.config` imports the rules module
alone.
"""
