"""Inference on whole volumes: sliding-window prediction with a window-sized model.

::

    from lightning_dicom.inference import SlidingWindowInferer
    inferer = SlidingWindowInferer(roi_size=(96, 96, 96), overlap=0.5, output="labels")
    labels = inferer(volume, model)  # volume [B, C, D, H, W] (z-y-x) -> int64 [B, 1, D, H, W]
"""

from .sliding_window import SlidingWindowInferer, gaussian_importance_map, sliding_window_inference

__all__ = ["SlidingWindowInferer", "gaussian_importance_map", "sliding_window_inference"]
