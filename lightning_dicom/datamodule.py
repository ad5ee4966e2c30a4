"""``DicomDataModule``: Lightning hooks that wire index, cache, split and datasets together."""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from lightning_dicom.config import (
    AugmentConfig,
    CacheConfig,
    DataConfig,
    InferenceConfig,
    LoaderConfig,
    MaskConfig,
    PatchConfig,
    PreprocessingConfig,
    SelectionConfig,
    SplitConfig,
    parse_config,
)
from lightning_dicom.data import split as splits
from lightning_dicom.data.augment import augment_batch
from lightning_dicom.data.balanced import BalancedBatchSampler, class_sample_weights
from lightning_dicom.data.cache import VolumeCache
from lightning_dicom.data.dataset import CachedVolumeDataset, PatchDataset, SeriesDataset, collate
from lightning_dicom.data.feeding import check_cache_device, feed_loader
from lightning_dicom.data.labels import LabelTable, coverage_message, read_labels
from lightning_dicom.data.loader import ThreadedDataLoader
from lightning_dicom.data.predict_config import DATA_CONFIG_KEY, differences, make_inferer, predict_view
from lightning_dicom.data.sampler import BatchDataset, ShardBatchSampler
from lightning_dicom.data.split import Split, assign_folds, save_split, split_groups, split_series
from lightning_dicom.data.workers import worker_init_fn
from lightning_dicom.dicom.index import DicomIndex, SeriesRecord, select_series
from lightning_dicom.dicom.pseudonym import project_key
from lightning_dicom.errors import ConfigError, LightningDicomError, warn
from lightning_dicom.subjects.config import SubjectsConfig

__all__ = ["DicomDataModule", "DicomDataModuleImpl"]

log = logging.getLogger(__name__)


def _nothing_usable(roots: list[Path], idx: DicomIndex, dropped: list[tuple[str, str]]) -> str:
    """'data.root X: N files, 0 usable series; top reasons: ...' (no patient data: reasons and counts)."""
    reasons: dict[str, int] = {}
    for _, reason in idx.skipped():
        reasons[reason] = reasons.get(reason, 0) + 1
    for _, reason in dropped:
        key = f"series dropped by data.selection: {reason}"
        reasons[key] = reasons.get(key, 0) + 1
    n_files = len(idx.files())
    top = sorted(reasons.items(), key=lambda kv: -kv[1])[:3]
    why = "; ".join(f"{n} x {r}" for r, n in top) if top else "no files"
    where = ", ".join(str(r) for r in roots)
    return f"data.root {where}: {n_files} files, 0 usable series ({why})"


def _warn_group_fallback(groups: dict[str, int], group_by: str) -> None:
    """Say when series without a PatientID were grouped by study or alone (``split_groups``)."""
    if group_by == "patient" and (groups["study"] or groups["series"]):
        log.warning(
            "%d series have no PatientID: grouped by their study (%d) or alone (%d) in the split",
            groups["study"] + groups["series"],
            groups["study"],
            groups["series"],
        )


class DicomDataModuleImpl:
    """From DICOM folders to batches: index, select, preprocess (cached), split, load.

    ``prepare_data`` (one process per node) scans the folders into a persisted SQLite index and
    builds missing cache entries in parallel processes. ``setup`` (every rank) reloads the index
    from disk, applies the selection rules and labels, and computes the same split on every rank.
    Batches are dicts: ``image`` ``[B, C, D, H, W]`` (float32 after transfer to the device),
    ``label`` when labels exist, and ``meta`` (series_id, spacing, origin, direction, index).

    Args:
        root: folder(s) scanned recursively for DICOM files.
        labels: CSV keyed by SeriesInstanceUID, StudyInstanceUID or PatientID.
        label_columns: label columns of the CSV (default: all but the key).
        work_dir: where the index, split and cache live (default
            ``$XDG_CACHE_HOME/lightning_dicom/<hash of the roots>``, the same from any working directory).
        on_error: a series that fails to read (or, in ``lightning-dicom predict``, whose predict_step raises):
            'raise', or 'skip' it and report.
        selection: which series to use (modality, min_slices, description regex, planes).
        preprocessing: reorient, spacing (x-y-z mm), window, normalize, size (z-y-x voxels).
        split: val/test fractions, seed, group_by (patient, study, series).
        loader: batch_size, num_workers, threads_per_worker, pin_memory, persistent_workers.
        cache: enabled, dir, dtype, workers, in_memory.
        patches: train on random patches (size z-y-x, per_volume); null trains on volumes.
        augment: flips, 90-degree rotations, intensity scale/shift of training batches (on the device).
        masks: segmentation structures (name -> regex), mode (labels/channels), a CSV of NIfTI masks;
            DICOM SEG and RTSTRUCT objects in the folders are linked to their series automatically.
        subjects: samples made of several series of one study (named inputs chosen by rules, resampled
            onto a reference input's grid and stacked as channels); null: one series per sample.
        inference: sliding-window prediction (roi_size default patches.size, overlap, blending,
            sw_batch_size, tta_flips, output); ``inferer()`` builds it for a model's predict_step.
        progress: show progress bars while indexing and caching.
    """

    trainer: Any  # set by the Lightning base class of the thin class (one per namespace)

    def __init__(
        self,
        root: Path | list[Path],
        labels: Path | None = None,
        label_columns: list[str] | None = None,
        work_dir: Path | None = None,
        on_error: Literal["raise", "skip"] = "skip",
        selection: SelectionConfig | dict[str, Any] | None = None,
        preprocessing: PreprocessingConfig | dict[str, Any] | None = None,
        split: SplitConfig | dict[str, Any] | None = None,
        loader: LoaderConfig | dict[str, Any] | None = None,
        cache: CacheConfig | dict[str, Any] | None = None,
        patches: PatchConfig | dict[str, Any] | None = None,
        augment: AugmentConfig | dict[str, Any] | None = None,
        masks: MaskConfig | dict[str, Any] | None = None,
        subjects: SubjectsConfig | dict[str, Any] | None = None,
        inference: InferenceConfig | dict[str, Any] | None = None,
        progress: bool = True,
    ) -> None:
        super().__init__()
        raw: dict[str, Any] = {
            "root": root,
            "labels": labels,
            "label_columns": label_columns,
            "work_dir": work_dir,
            "on_error": on_error,
            "progress": progress,
        }
        for name, value in (
            ("selection", selection),
            ("preprocessing", preprocessing),
            ("split", split),
            ("loader", loader),
            ("cache", cache),
            ("patches", patches),
            ("augment", augment),
            ("masks", masks),
            ("subjects", subjects),
            ("inference", inference),
        ):
            if value is not None:
                raw[name] = value.model_dump() if hasattr(value, "model_dump") else value
        self.config: DataConfig = parse_config(raw)
        self._base_config = self.config  # ``config`` is predict_view(this) during the predict stage
        self.progress = self.config.progress
        self.datasets: dict[str, Dataset] = {}
        self.series: dict[str, SeriesRecord] = {}
        self.split: Split | None = None
        self.prepare_data_per_node = True  # set False when all nodes share one cache directory
        self._restored_split: Split | None = None
        self._table: LabelTable | None = None
        self._supervised_ids: set[str] = set()
        self._usable_series: list[SeriesRecord] = []
        self._train_classes: np.ndarray | None = None  # class of each train-dataset index ('balanced')
        self._mask_sources: dict[str, list[str]] | None = None
        self._sidecars: dict[str, dict[str, Any]] = {}  # cache sidecars of usable series, read once in setup
        self.report: dict[str, Any] = {}

    @classmethod
    def from_config(cls, config: DataConfig | dict[str, Any] | str | Path, **kwargs: Any) -> Any:
        """Build from a :class:`DataConfig`, a mapping, or a YAML file."""
        if isinstance(config, (str, Path)):
            config = DataConfig.from_yaml(config)
        cfg = parse_config(config)
        return cls(**{k: getattr(cfg, k) for k in DataConfig.model_fields}, **kwargs)

    # -- helpers ----------------------------------------------------------------------------------
    @property
    def work_dir(self) -> Path:
        return self.config.resolved_work_dir()

    def open_index(self) -> DicomIndex:
        """The persisted index (``<work_dir>/index.sqlite``)."""
        return DicomIndex(self.config.root, self.work_dir / "index.sqlite")

    def volume_cache(self, mask_sources: dict[str, list[str]] | None = None) -> VolumeCache:
        """The cache for this config (with each series' mask files when masks are configured)."""
        if mask_sources is None and self.config.masks is not None:
            mask_sources = self._mask_sources
            if mask_sources is None:
                with self.open_index() as idx:
                    mask_sources = self._find_masks(idx, self._selected(idx)[0])[0]
        return VolumeCache(
            self.config.resolved_cache_dir(),
            self.config.preprocessing,
            self.config.cache.dtype,
            self.config.masks,
            mask_sources,
        )

    def _find_masks(
        self, idx: DicomIndex, selected: list[SeriesRecord]
    ) -> tuple[dict[str, list[str]], list[str]]:
        """Mask files per series id (CSV NIfTI paths + linked SEG/RTSTRUCT) and SEG/RTSTRUCT files linking nothing."""
        from lightning_dicom.masks.association import mask_sources
        from lightning_dicom.subjects.resolve import SubjectRecord

        assert self.config.masks is not None
        # a subject's masks are those of any of its inputs
        owner: dict[str, str] = {}
        series: list[SeriesRecord] = []
        for s in selected:
            for rec in s.inputs if isinstance(s, SubjectRecord) else (s,):
                if rec is not None and rec.series_id not in owner:
                    owner[rec.series_id] = s.series_id
                    series.append(rec)
        linked, orphans = mask_sources(idx, series, self.config.masks)
        out: dict[str, list[str]] = {}
        for series_id, paths in linked.items():
            out.setdefault(owner.get(series_id, series_id), []).extend(paths)
        return {k: sorted(set(v)) for k, v in out.items()}, orphans

    def _selected(self, idx: DicomIndex) -> tuple[list[SeriesRecord], list[tuple[str, str]]]:
        """The samples: selected series, or subjects assembled from them (``data.subjects``)."""
        series, dropped = select_series(idx.series(), self.config.selection)
        if self.config.subjects is None:
            return series, dropped
        from lightning_dicom.subjects.resolve import resolve_subjects

        subjects, report = resolve_subjects(series, self.config.subjects)
        for gid in report["left_out"]:
            missing = ", ".join(report["incomplete"].get(gid, [])) or "its reference input"
            dropped.append(
                (gid, f"subject without {missing} (subjects.missing: {self.config.subjects.missing})")
            )
        return list(subjects), dropped

    # -- Lightning hooks --------------------------------------------------------------------------
    def _check_early(self, stage: str | None) -> None:
        """Every root must exist: a typo in ``data.root`` is one clear error, not an empty epoch; and
        ``cache.device: cuda`` needs a CUDA trainer (not predict), said before any indexing or caching."""
        if self.trainer is not None and stage != "predict":
            check_cache_device(self.config.cache, self.trainer.strategy.root_device)
        for root in self.config.root:
            if not Path(root).exists():
                raise ConfigError(f"data.root {root} does not exist (expected a folder of DICOM files)")

    def _use_stage(self, stage: str | None) -> None:
        """``config`` for ``stage``: the predict stage's view (:func:`predict_view`: whole volumes under a
        sliding window, training's ``size`` without one; no masks)."""
        self.config = predict_view(self._base_config) if stage == "predict" else self._base_config

    def _trainer_stage(self) -> str | None:
        fn = None if self.trainer is None else self.trainer.state.fn  # None outside a Trainer run
        return None if fn is None else str(fn.value)

    def inferer(self) -> Any:
        """The :class:`~lightning_dicom.inference.SlidingWindowInferer` of ``data.inference`` (roi default
        ``patches.size``), or None (no roi: the model runs once on each series, cropped/padded to
        ``preprocessing.size`` as in training)."""
        return make_inferer(self._base_config)

    def use_data_config(self, config: DataConfig) -> None:
        """Replace the config before ``prepare_data``/``setup`` (the CLI: the checkpoint's preprocessing)."""
        self.config = self._base_config = parse_config(config)

    def prepare_data(self) -> None:
        """Scan the folders and build missing cache entries (one process per node; sets no state)."""
        stage = self._trainer_stage()
        self._use_stage(stage)  # the predict stage caches its own view
        self._check_early(stage)
        with self.open_index() as idx:
            idx.scan(progress=self.progress)
            selected, _ = self._selected(idx)
            sources = self._find_masks(idx, selected)[0] if self.config.masks is not None else None
        if stage != "predict" and self._restored_split is None:
            splits.check_folds(selected, self.config.split)  # before caching, not after
        if self.config.cache.enabled:  # failures are recorded, and raised in setup() on every rank alike
            self.volume_cache(sources).build(
                selected, workers=self.config.cache.workers, progress=self.progress
            )

    def setup(self, stage: str | None = None) -> None:
        """Reload the index, select and label series, split, and build datasets (every rank).

        Raises:
            ConfigError: a root does not exist, or no series is usable (the message counts the files
                found and the commonest reasons they were skipped or dropped).
        """
        self._use_stage(stage)
        self._check_early(stage)
        with self.open_index() as idx:
            if not idx.files():
                idx.scan(progress=self.progress)  # prepare_data was not called (notebook use)
            selected, dropped = self._selected(idx)
            if not selected:
                raise ConfigError(_nothing_usable(self.config.root, idx, dropped))
            n_skipped_files = len(idx.skipped())
            indexed = idx.series() if self.config.labels else []  # labels of series selection dropped
            mask_orphans: list[str] = []
            if self.config.masks is not None:
                if not self.config.cache.enabled:
                    raise ConfigError("masks need the cache (cache.enabled: true)")
                self._mask_sources, mask_orphans = self._find_masks(idx, selected)
        self.series = {s.series_id: s for s in selected}
        table = (
            read_labels(self.config.labels, self.config.label_columns, project_key(self.work_dir))
            if self.config.labels
            else None
        )
        usable, failed = self._usable(selected)
        self._table = table
        if stage == "predict":  # new scans: no new split (and split.json of training left alone)
            self.split = self.split or {"train": [], "val": [], "test": []}
        elif self._restored_split is not None:  # load_state_dict before setup; series gone since: left out
            self.split = {k: [i for i in v if i in self.series] for k, v in self._restored_split.items()}
            self._save_split()
        else:
            self.split = split_series(selected, self.config.split, self._classes(selected))
            self._save_split()
            # before Lightning's generic "zero length" warning
            splits.warn_empty_parts(selected, self.config.split, self.split)
        self.report = {
            "series_selected": len(selected),
            "series_dropped": dropped,
            "files_skipped": n_skipped_files,
            "series_failed": failed,
            "split": {k: len(v) for k, v in self.split.items()},
            "split_groups": split_groups(selected, self.config.split.group_by),
        }
        if self.config.subjects is not None:
            self.report["subjects"] = {
                "used": len(selected),
                "incomplete": {
                    s.series_id: list(getattr(s, "missing_inputs", ()))
                    for s in selected
                    if getattr(s, "missing_inputs", ())
                },
                "left_out": [sid for sid, reason in dropped if sid.startswith(("study:", "patient:"))],
            }
        if table is not None:
            _, unlabelled, orphans = table.match(selected)
            self.report.update(
                label_kind=table.kind,
                classes=table.classes,
                series_without_label=[s.series_id for s in unlabelled],
                labels_without_series=orphans,
            )
            coverage = coverage_message(len(unlabelled), orphans, table.match(indexed)[2] if orphans else [])
            if coverage:
                warn(coverage)
        _warn_group_fallback(self.report["split_groups"], self.config.split.group_by)
        usable_ids = {s.series_id for s in usable}
        supervised_ids = set(usable_ids)
        if self.config.masks is not None:
            missing = self._missing_structures(usable)
            self.report.update(mask_objects_unlinked=mask_orphans, series_missing_structures=missing)
            if missing and self.config.masks.require_all:
                warn(f"{len(missing)} series lack a required structure (left out of fit/validate/test)")
                supervised_ids -= set(missing)
        self._supervised_ids, self._usable_series = supervised_ids, usable
        self._build_datasets()
        from collections import Counter

        reasons = Counter(reason.split(" (")[0] for _, reason in dropped)
        log.info(
            "lightning_dicom: %d %s selected (%s), %d failed, %d files skipped%s",
            len(selected),
            "subjects" if self.config.subjects is not None else "series",
            ", ".join(f"{k} {len(v)}" for k, v in self.split.items()),
            len(failed),
            n_skipped_files,
            "; dropped by data.selection: " + "; ".join(f"{n} x {r}" for r, n in reasons.most_common(3))
            if reasons
            else "",
        )

    def _classes(self, series: list[SeriesRecord], required: bool = True) -> dict[str, int] | None:
        """Class index by series id when the labels are one class column (for stratify, 'balanced' and
        the class counts of split.json); raises ConfigError when stratify/'balanced' lack class labels."""
        table = self._table
        needs = self.config.split.stratify or self.config.loader.sampler == "balanced"
        if not (needs and required) and (table is None or table.kind != "class"):
            return None
        if table is None or table.kind != "class":
            what = "split.stratify" if self.config.split.stratify else "loader.sampler 'balanced'"
            got = "no labels" if table is None else f"{table.kind} labels"
            raise ConfigError(f"{what} needs one class label column (data.labels), got {got}")
        out = {}
        for s in series:
            v = table.lookup(s)
            if v is not None:
                out[s.series_id] = int(v)
        return out

    def _save_split(self) -> None:
        """Write ``<work_dir>/split.json`` (rank 0): the split, its folds, class counts per part."""
        if self.split is None or not (self.trainer is None or self.trainer.global_rank == 0):
            return
        selected = list(self.series.values())
        classes = self._classes(selected, required=False)
        folds = None
        if self.config.split.folds is not None and self._restored_split is None:
            folds = assign_folds(selected, self.config.split, classes)[1]
        save_split(self.split, self.work_dir / "split.json", selected, self.config.split, folds, classes)

    def _build_datasets(self) -> None:
        """Datasets of every part from ``self.split`` (called by setup, and again by load_state_dict)."""
        table = self._table
        assert self.split is not None
        for part in ("train", "val", "test"):
            recs = [self.series[i] for i in self.split[part] if i in self._supervised_ids]
            if table is not None:
                recs = [r for r in recs if table.lookup(r) is not None]
            self.datasets[part] = self._dataset(recs, table, train=part == "train")
            if part == "train" and self.config.loader.sampler == "balanced":
                classes = self._classes(recs) or {}
                per_volume = self.config.patches.per_volume if self.config.patches is not None else 1
                self._train_classes = np.repeat([classes[r.series_id] for r in recs], per_volume)
        self.datasets["predict"] = self._dataset(
            self._usable_series, table, train=False
        )  # labels if all have one

    def _usable(self, selected: list[SeriesRecord]) -> tuple[list[SeriesRecord], list[tuple[str, str]]]:
        if not self.config.cache.enabled:
            return selected, []
        cache = self.volume_cache()
        status = {s.series_id: cache.status(s) for s in selected}
        missing = [s for s in selected if status[s.series_id] in ("missing", "corrupt")]
        world, rank = (
            (self.trainer.world_size, self.trainer.global_rank) if self.trainer is not None else (1, 0)
        )
        if missing:  # prepare_data did not run for this config: each rank builds its shard
            cache.build(missing[rank::world], workers=self.config.cache.workers, progress=self.progress)
        if world > 1 and self.trainer is not None:
            self.trainer.strategy.barrier("lightning_dicom_cache")
        status.update({s.series_id: cache.status(s) for s in missing})  # built here or by another rank
        usable, failed = [], []
        self._sidecars = {}
        for s in selected:
            if status[s.series_id] == "ok":
                usable.append(s)
                self._sidecars[s.series_id] = cache.sidecar(s)
            else:
                failed.append((s.series_id, cache.error(s) or "cache entry missing"))
                log.warning("series %s left out: %s", s.series_id, failed[-1][1])
        if failed and self.config.on_error == "raise":  # every rank sees the same markers: all raise
            raise LightningDicomError(
                f"{len(failed)} series failed (on_error='raise'): {failed[0][1]}", series_uid=failed[0][0]
            )
        return usable, failed

    def _missing_structures(self, usable: list[SeriesRecord]) -> dict[str, list[str]]:
        out = {}
        for s in usable:
            meta = self._sidecars[s.series_id].get("mask", {})
            if meta.get("missing"):
                out[s.series_id] = meta["missing"]
        return out

    def _dataset(
        self, recs: list[SeriesRecord], table: LabelTable | None, *, train: bool, with_labels: bool = True
    ) -> Dataset:
        found = [table.lookup(r) for r in recs] if table is not None and with_labels else None
        labels = [x for x in found if x is not None] if found is not None else None
        if labels is not None and len(labels) != len(recs):
            labels = None
        if not self.config.cache.enabled:
            return SeriesDataset(recs, self.config.preprocessing, labels, self.config.on_error)
        cache = self.volume_cache()
        paths, metas, mask_paths, fgs = [], [], [], []
        for r in recs:
            paths.append(cache.array_path(r))
            metas.append(self._sidecars[r.series_id])
            if self.config.masks is not None:
                mask_paths.append(cache.mask_paths(r)[0])
                fgs.append(cache.foreground(r))
        shared = None
        if self.config.cache.in_memory:
            shared = [torch.from_numpy(np.load(p, allow_pickle=False)).share_memory_() for p in paths]
        with_masks = self.config.masks is not None
        volumes = CachedVolumeDataset(
            paths, metas, labels, shared, mask_paths if with_masks else None, fgs if with_masks else None
        )
        if train and self.config.patches is not None:
            fraction = self.config.masks.foreground_fraction if self.config.masks is not None else 0.0
            return PatchDataset(volumes, self.config.patches.size, self.config.patches.per_volume, fraction)
        return volumes

    def _loader(self, part: str, shuffle: bool) -> DataLoader:
        """Exactly-once shards per rank; batches assembled by threads (cache) or worker processes."""
        if part not in self.datasets:
            raise LightningDicomError(f"call setup() before asking for the {part} dataloader")
        lc = self.config.loader
        threads = lc.backend == "threads" or (lc.backend == "auto" and self.config.cache.enabled)
        workers = 0 if threads else lc.num_workers
        world, rank = (
            (self.trainer.world_size, self.trainer.global_rank) if self.trainer is not None else (1, 0)
        )
        common: dict[str, Any] = {
            "num_workers": workers,
            "pin_memory": lc.pin_memory and self._device_type() != "cpu",  # as torch: pin only for a device
            "persistent_workers": lc.persistent_workers and workers > 0,
            "worker_init_fn": functools.partial(worker_init_fn, threads=lc.threads_per_worker)
            if workers
            else None,
            "prefetch_factor": lc.prefetch_factor if workers else None,
        }
        n_threads = (lc.num_threads or max(2, lc.num_workers)) if threads else 1
        cast = torch.float32 if threads and self._device_type() == "cpu" else None
        base = self.datasets[part]
        volumes = getattr(base, "volumes", base)  # PatchDataset reads through its CachedVolumeDataset
        labels_mode = self.config.masks is not None and self.config.masks.mode == "labels"
        if isinstance(volumes, CachedVolumeDataset):
            volumes.image_dtype = cast  # copy + cast in one pass, in the reading thread
            volumes.mask_dtype = torch.int64 if cast is not None and labels_mode else None
        dataset = BatchDataset(base, collate, threads=n_threads, image_dtype=cast)
        if part == "train" and lc.sampler == "balanced":
            assert self._train_classes is not None
            sampler: Any = BalancedBatchSampler(
                class_sample_weights(self._train_classes, lc.class_weights),
                lc.batch_size,
                lc.samples_per_epoch or len(dataset),
                num_replicas=world,
                rank=rank,
                seed=self.config.split.seed,
            )
        elif part == "predict":  # Lightning tracks prediction indices itself: keep a plain sampler
            sampler = [
                list(range(i, min(i + lc.batch_size, len(dataset))))
                for i in range(0, len(dataset), lc.batch_size)
            ]
        else:
            sampler = ShardBatchSampler(
                len(dataset),
                lc.batch_size,
                num_replicas=world,
                rank=rank,
                shuffle=shuffle,
                seed=self.config.split.seed,
            )
        if threads and isinstance(base, (CachedVolumeDataset, PatchDataset)) and part != "predict":
            # resident on the device, the pinned ring, or host threads: data/feeding.py
            return feed_loader(  # type: ignore[no-any-return]
                base,
                cache=self.config.cache,
                device=torch.device("cpu") if self.trainer is None else self.trainer.strategy.root_device,
                train=part == "train",
                batch_size=lc.batch_size,
                threads=n_threads,
                world=world,
                rank=rank,
                shuffle=shuffle,
                seed=self.config.split.seed,
                mask_dtype=torch.int64 if cast is not None and labels_mode else None,
                sampler=sampler if isinstance(sampler, BalancedBatchSampler) else None,
                agree=self._min_over_ranks if world > 1 else None,
            )
        if threads:
            return ThreadedDataLoader(
                dataset, sampler=sampler, batch_size=None, threads=n_threads, prefetch=2, **common
            )
        return DataLoader(dataset, sampler=sampler, batch_size=None, **common)

    def _min_over_ranks(self, value: int) -> int:
        """The smallest ``value`` over the ranks (a collective: every rank calls it, from its training
        loader's residency plan, so that all of them choose the same feed path and batch count)."""
        assert self.trainer is not None
        strategy = self.trainer.strategy
        t = torch.tensor(int(value), dtype=torch.int64, device=strategy.root_device)
        return int(strategy.reduce(t, reduce_op="min"))

    def _device_type(self) -> str:
        """'cpu' without a trainer (notebooks) or on CPU: images are then cast to float32 in the loader's
        threads (measured faster than a cast in the main loop); on an accelerator they travel as float16
        (half the bytes over PCIe) and are cast on the device in ``on_after_batch_transfer``."""
        return "cpu" if self.trainer is None else self.trainer.strategy.root_device.type

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict", shuffle=False)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Cast float16 transport to float32 on the device (half the bytes cross the bus); augment in training."""
        if isinstance(batch, dict) and isinstance(batch.get("image"), torch.Tensor):
            if batch["image"].dtype == torch.float16:
                batch["image"] = batch["image"].float()
            if (
                self.config.masks is not None
                and self.config.masks.mode == "labels"
                and isinstance(batch.get("mask"), torch.Tensor)
            ):
                batch["mask"] = batch["mask"].long()  # uint8 in transport
            if self.config.augment is not None and self.trainer is not None and self.trainer.training:
                batch = augment_batch(batch, self.config.augment)
        return batch

    def state_dict(self) -> dict[str, Any]:
        """The split (series ids per part) and its config, so a resumed run trains on the same series, and
        the whole data config as plain data (``data_config``; loads with ``torch.load(weights_only=True)``)
        so that predict uses the training preprocessing (data/predict_config.py)."""
        out: dict[str, Any] = {DATA_CONFIG_KEY: self._base_config.model_dump(mode="json")}
        if self.split is not None and any(self.split.values()):
            out.update(split=self.split, split_config=self._base_config.split.model_dump(mode="json"))
        return out

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the split of the checkpoint.

        Lightning calls this *after* ``setup`` when resuming (``trainer.fit(ckpt_path=...)``: setup
        hook, then ``_restore_modules_and_callbacks``), and asks for the dataloaders only afterwards;
        so when ``setup`` has already built datasets from a freshly computed split, they are rebuilt
        here from the restored one. Series of the checkpoint's split that are no longer selected or
        usable are left out (logged); series added since are in no training/validation part.
        """
        saved = state_dict.get(DATA_CONFIG_KEY)
        diff = differences(self._base_config, saved) if isinstance(saved, dict) else []
        if diff:  # too late to change the cache here; the CLI applies the checkpoint's before setup
            warn(f"the checkpoint's data config differs from this DataModule's in {', '.join(diff)}")
        if not state_dict.get("split") or self.config is not self._base_config:  # predict: no split
            return
        restored = {k: list(v) for k, v in state_dict["split"].items()}
        self._restored_split = restored
        if self.split is None or not self.datasets:  # before setup: setup uses it
            return
        gone = [i for part in restored.values() for i in part if i not in self.series]
        if gone:
            warn(f"{len(gone)} series of the checkpoint's split are no longer selected: left out")
        restored = {k: [i for i in v if i in self.series] for k, v in restored.items()}
        if restored != self.split:
            log.info(
                "lightning_dicom: resuming on the checkpoint's split (%s)",
                {k: len(v) for k, v in restored.items()},
            )
        self.split = restored
        self.report["split"] = {k: len(v) for k, v in self.split.items()}
        self._save_split()
        self._build_datasets()


class DicomDataModule(DicomDataModuleImpl, pl.LightningDataModule):
    __doc__ = DicomDataModuleImpl.__doc__  # the implementation is shared with :mod:`lightning_dicom.unified`
