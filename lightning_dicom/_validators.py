"""Value checks shared by the pydantic config models (kept below both config modules)."""

from __future__ import annotations

__all__ = ["ordered_window"]


def ordered_window(v: tuple[float, float] | None) -> tuple[float, float] | None:
    """A ``[low, high]`` intensity window with low < high (modality units), or None."""
    if v is not None and not v[0] < v[1]:
        raise ValueError(f"window must be [low, high] with low < high, got {list(v)}")
    return v
