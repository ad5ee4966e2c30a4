"""Configuration of multi-series subjects: named inputs chosen by rules within a study (or patient).

Kept apart from :mod:`lightning_dicom.config` (which embeds :class:`SubjectsConfig` as ``data.subjects``)
because the rules are a vocabulary of their own: DICOM attributes of a series that tell a T1 from a
FLAIR, an arterial phase from a venous one, a PET from its CT.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lightning_dicom._validators import ordered_window

__all__ = ["InputRule", "SubjectsConfig"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class InputRule(_Model):
    """Which series of a study is one named input (channel), and its intensity settings.

    Every rule that is set must hold; among several matching series ``tie_break`` chooses one.
    """

    modality: str | None = Field(default=None, description="Modality (0008,0060), e.g. 'MR', 'CT', 'PT'.")
    description: str | None = Field(
        default=None,
        description="Regular expression searched (case-insensitive) in SeriesDescription (0008,103E).",
    )
    exclude_description: str | None = Field(
        default=None,
        description="Regular expression; series whose SeriesDescription matches are not this input.",
    )
    image_type: str | None = Field(
        default=None,
        description="A value that ImageType (0008,0008) must contain, e.g. 'ORIGINAL', 'M' (magnitude), 'ADC'.",
    )
    contrast: Literal["present", "absent"] | None = Field(
        default=None,
        description="ContrastBolusAgent (0018,0010) present (post-contrast) or absent (native); null: either.",
    )
    echo_number: int | None = Field(default=None, description="EchoNumbers (0018,0086) of the volume.")
    b_value: float | None = Field(default=None, description="Diffusion b-value (s/mm^2) of the volume.")
    temporal_index: int | None = Field(
        default=None, description="Time point of a 4D series: 0-based index along dcm2niix's 4th dimension."
    )
    tie_break: Literal["most_slices", "latest", "first"] = Field(
        default="most_slices",
        description="Several series match: the one with the most slices, the highest SeriesNumber (0020,0011) "
        "('latest'), or the lowest ('first'); ties then go to the smallest series id.",
    )
    window: tuple[float, float] | None = Field(
        default=None,
        description="This channel's clip window in modality units; null: data.preprocessing.window.",
    )
    normalize: Literal["minmax", "zscore", "none"] | None = Field(
        default=None, description="This channel's normalisation; null: data.preprocessing.normalize."
    )

    @field_validator("description", "exclude_description")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as err:
                raise ValueError(f"not a valid regular expression ({err}): {v!r}") from None
        return v

    @field_validator("window")
    @classmethod
    def _window_ordered(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        return ordered_window(v)


class SubjectsConfig(_Model):
    """Samples made of several series of one study (or patient), stacked as channels ``[C, D, H, W]``.

    Example (YAML)::

        subjects:
          group_by: study
          inputs: {t1: {description: "(?i)t1"}, t2: {description: "(?i)t2"}}
          reference: t1
          missing: skip
    """

    group_by: Literal["study", "patient"] = Field(
        default="study",
        description="Where inputs are looked for: one StudyInstanceUID, or all studies of a patient.",
    )
    inputs: dict[str, InputRule] = Field(description="Input name -> rule, in channel order.")
    reference: str | None = Field(
        default=None, description="The input whose grid the others are resampled onto; null: the first input."
    )
    missing: Literal["skip", "zeros"] = Field(
        default="skip",
        description="A subject without some input: 'skip' (reported, left out) or 'zeros' (a zero channel, "
        "flagged in meta['missing_inputs']). The reference input is never optional.",
    )

    @model_validator(mode="after")
    def _reference_known(self) -> SubjectsConfig:
        if not self.inputs:
            raise ValueError("subjects.inputs needs at least one input")
        if self.reference is not None and self.reference not in self.inputs:
            raise ValueError(
                f"subjects.reference {self.reference!r} is not one of the inputs {list(self.inputs)}"
            )
        return self

    @property
    def reference_name(self) -> str:
        """The reference input's name (``reference`` or the first input)."""
        return self.reference or next(iter(self.inputs))

    def digest(self) -> str:
        """Stable hash of the rules (part of each subject's cache key)."""
        return hashlib.sha256(json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()
