"""The pieces of the ``lightning-dicom`` console script: LightningCLI (fit/validate/test/predict),
checkpoint resolution (``--ckpt_path best|last``) and ``preview``. Entry point: :mod:`lightning_dicom.cli`."""
