"""lightning_dicom."""
__version__ = "0.1.0"
