"""Type aliases that make signatures state axis order and units.

Conventions used across lightning_dicom:

* numpy arrays and tensors are **z-y-x** (slice, row, column), channels first: ``[C, D, H, W]``;
* spacing, origin and sizes given to SimpleITK are **x-y-z**, in **mm**;
* world coordinates are DICOM patient coordinates, **LPS** (x to the patient's left,
  y to posterior, z to head);
* a direction is 9 floats, row-major, whose *columns* are the world directions of the x, y, z
  index axes (SimpleITK's convention);
* CT intensities are **HU** = stored value x RescaleSlope (0028,1053) + RescaleIntercept (0028,1052).
"""

from __future__ import annotations

ShapeZYX = tuple[int, int, int]
"""Array shape (slices, rows, columns)."""
SizeXYZ = tuple[int, int, int]
"""Image size in SimpleITK order (columns, rows, slices)."""
SpacingXYZ = tuple[float, float, float]
"""Voxel spacing in mm, x-y-z."""
PointLPS = tuple[float, float, float]
"""A world position in mm, DICOM LPS."""
Direction = tuple[float, float, float, float, float, float, float, float, float]
"""Row-major 3x3 direction cosines, columns = world directions of the x, y, z index axes."""
