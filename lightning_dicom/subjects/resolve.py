"""Subjects resolved from the header index: which series of each study (or patient) is which input.

A subject is one study (``group_by: study``, id ``study:<StudyInstanceUID>``) or one patient
(``group_by: patient``, id ``patient:<keyed pseudonym>``: never a PatientID). Each input's rule is
matched against the study's series (or sub-volumes: 4D time points, echoes and b-values are volumes
of their own in the index); several matches are resolved by the rule's ``tie_break``. A subject is
*complete* when every input is found; an incomplete one is left out (``missing: skip``) or filled with
zero channels (``missing: zeros``); without its reference input it is always left out.

A :class:`SubjectRecord` is a :class:`~lightning_dicom.dicom.index.SeriesRecord` of the reference
series (geometry, UIDs, modality: predictions go back onto the reference series) whose
``series_id`` is the subject id and whose ``fingerprint`` hashes every input's identity and the rules,
so the cache rebuilds a subject exactly when one of its inputs or the rules change.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lightning_dicom.dicom.index import SeriesRecord
from lightning_dicom.subjects.config import InputRule, SubjectsConfig

__all__ = ["SubjectRecord", "matches", "resolve_subjects"]


@dataclass(frozen=True)
class SubjectRecord(SeriesRecord):
    """A multi-series sample: the reference series' record plus its inputs.

    Attributes:
        input_names: the inputs in channel order.
        inputs: the series record of each input (None: missing, only with ``missing: zeros``).
        reference_index: position of the reference input in ``inputs``.
        channel_settings: per input, ``(window or None, normalize or None)`` overrides.
    """

    input_names: tuple[str, ...] = ()
    inputs: tuple[SeriesRecord | None, ...] = ()
    reference_index: int = 0
    channel_settings: tuple[tuple[tuple[float, float] | None, str | None], ...] = ()

    @property
    def missing_inputs(self) -> tuple[str, ...]:
        """Names of the inputs this subject lacks (zero channels)."""
        return tuple(n for n, r in zip(self.input_names, self.inputs, strict=True) if r is None)


def _image_type(rec: SeriesRecord) -> tuple[str, ...]:
    value: Any = getattr(rec, "image_type", ()) or ()
    if isinstance(value, str):
        value = value.replace("/", "\\").split("\\")
    return tuple(str(v).strip().upper() for v in value)


def matches(rec: SeriesRecord, rule: InputRule) -> bool:
    """Whether a series (volume) satisfies every rule that is set.

    Attributes read: Modality, SeriesDescription, ImageType, ContrastBolusAgent, and the acquisition
    attributes of multi-volume series (``echo_number``, ``b_value``, ``temporal_index``) when the index
    records them; a rule on an attribute the record does not carry does not match.
    """
    if rule.modality is not None and rec.modality.upper() != rule.modality.upper():
        return False
    if rule.description is not None and not re.search(rule.description, rec.description or "", re.IGNORECASE):
        return False
    if rule.exclude_description is not None and re.search(
        rule.exclude_description, rec.description or "", re.IGNORECASE
    ):
        return False
    if rule.image_type is not None and rule.image_type.upper() not in _image_type(rec):
        return False
    if rule.contrast is not None:
        agent = str(getattr(rec, "contrast_agent", "") or "").strip()
        if (rule.contrast == "present") != bool(agent):
            return False
    for name in ("echo_number", "b_value", "temporal_index"):
        wanted = getattr(rule, name)
        if wanted is not None:
            have = getattr(rec, name, None)
            if have is None or float(have) != float(wanted):
                return False
    return True


def _choose(candidates: list[SeriesRecord], rule: InputRule) -> SeriesRecord:
    if rule.tie_break == "most_slices":
        key = lambda r: (-r.n_slices, r.series_id)  # noqa: E731
    elif rule.tie_break == "latest":
        key = lambda r: (-r.series_number, r.series_id)  # noqa: E731
    else:
        key = lambda r: (r.series_number, r.series_id)  # noqa: E731
    return min(candidates, key=key)


def _group(rec: SeriesRecord, cfg: SubjectsConfig) -> str:
    """The subject a series belongs to; without a PatientID, its study (as the split falls back)."""
    if cfg.group_by == "patient" and rec.patient_key:
        return f"patient:{rec.patient_key}"
    return f"study:{rec.study_uid}"


def resolve_subjects(
    records: Sequence[SeriesRecord], cfg: SubjectsConfig
) -> tuple[list[SubjectRecord], dict[str, Any]]:
    """Assemble subjects from indexed series.

    Args:
        records: the selected series (volumes) of the index.
        cfg: the subject rules.

    Returns:
        (subjects, report): subjects in id order; the report has ``complete`` (count), ``incomplete``
        (subject id -> missing input names, whatever ``missing`` says), ``left_out`` (subject ids not
        used) and ``inputs`` (input name -> number of subjects that have it). No PatientID appears.
    """
    groups: dict[str, list[SeriesRecord]] = {}
    for rec in records:
        groups.setdefault(_group(rec, cfg), []).append(rec)
    names = list(cfg.inputs)
    ref_name = cfg.reference_name
    subjects: list[SubjectRecord] = []
    incomplete: dict[str, list[str]] = {}
    left_out: list[str] = []
    have = dict.fromkeys(names, 0)
    for gid in sorted(groups):
        found: dict[str, SeriesRecord | None] = {}
        for name, rule in cfg.inputs.items():
            candidates = [r for r in groups[gid] if matches(r, rule)]
            found[name] = _choose(candidates, rule) if candidates else None
            have[name] += found[name] is not None
        missing = [n for n in names if found[n] is None]
        if missing:
            incomplete[gid] = missing
        if found[ref_name] is None or (missing and cfg.missing == "skip"):
            left_out.append(gid)
            continue
        subjects.append(_record(gid, found, cfg))
    report = {"complete": len(groups) - len(incomplete), "incomplete": incomplete, "left_out": left_out,
              "inputs": have}  # fmt: skip
    return subjects, report


def _record(gid: str, found: dict[str, SeriesRecord | None], cfg: SubjectsConfig) -> SubjectRecord:
    ref = found[cfg.reference_name]
    assert ref is not None
    ident = [cfg.digest()] + [
        f"{n}={r.series_id}:{r.fingerprint}" if r is not None else f"{n}=<missing>" for n, r in found.items()
    ]
    base = {f.name: getattr(ref, f.name) for f in dataclasses.fields(SeriesRecord)}
    base.update(series_id=gid, fingerprint=hashlib.sha256("|".join(ident).encode()).hexdigest())
    return SubjectRecord(
        **base,
        input_names=tuple(found),
        inputs=tuple(found.values()),
        reference_index=list(found).index(cfg.reference_name),
        channel_settings=tuple((rule.window, rule.normalize) for rule in cfg.inputs.values()),
    )
