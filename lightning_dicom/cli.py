"""``lightning-dicom``: index, cache, schema, demo, and LightningCLI's fit/validate/test/predict.

::

    lightning-dicom index /data/ct [--json]             # series found, files skipped with why
    lightning-dicom cache --config configs/ct_classification.yaml --data.root /data/ct
    lightning-dicom fit --config configs/ct_classification.yaml --data.root /data/ct \\
        --data.labels /data/labels.csv --data.preprocessing.spacing "[1.5,1.5,1.5]"
    lightning-dicom schema > data-config.schema.json    # JSON Schema of the data config
    lightning-dicom plan --data.root /data/ct           # fingerprint -> proposed preprocessing (YAML)
    lightning-dicom demo                                # synthetic CT, small 3D CNN, val metrics
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main"]

_OWN = ("index", "cache", "schema", "demo", "plan", "preview")


def _index(argv: Sequence[str]) -> int:
    from lightning_dicom.config import DataConfig
    from lightning_dicom.dicom.index import DicomIndex

    p = argparse.ArgumentParser(
        prog="lightning-dicom index", description="Index DICOM folders (headers only)."
    )
    p.add_argument(
        "roots", nargs="*", type=Path, help="folders to scan recursively (default: the config's data.root)"
    )
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        help="a YAML config: its roots and work dir, and with data.subjects the studies that form complete subjects",
    )
    p.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="where index.sqlite lives (default: the DataModule's default for these roots)",
    )
    p.add_argument("--workers", type=int, default=None, help="header-reading processes (default: CPUs)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    cfg = DataConfig.from_yaml(a.config) if a.config is not None else None
    if not a.roots and cfg is None:
        p.error("give folders to scan, or --config with data.root")
    roots = a.roots or (cfg.root if cfg is not None else [])
    from lightning_dicom.errors import ConfigError

    for root in roots:
        if not Path(root).is_dir():
            raise ConfigError(f"{root} does not exist or is not a folder (expected a folder of DICOM files)")
    work = a.work_dir or (
        cfg.resolved_work_dir()
        if cfg is not None and not a.roots
        else DataConfig(root=roots).resolved_work_dir()
    )
    from lightning_dicom.masks.association import find_mask_objects, link_masks

    with DicomIndex(roots, work / "index.sqlite") as idx:
        scan = idx.scan(workers=a.workers, progress=not a.quiet and not a.json)
        report = idx.report()
        objects = find_mask_objects(idx)
        linked, orphans = link_masks(idx.series(), objects)
        if cfg is not None and cfg.subjects is not None:
            report["subjects"] = _subjects_report(idx, cfg)
    kinds = {o.path: o.kind for o in objects}
    for s in report["series"]:
        s["masks"] = [{"kind": kinds[p], "path": p} for p in linked.get(s["series_id"], [])]
    report["mask_objects_unlinked"] = orphans
    report["scan"] = {
        "files": scan.n_files,
        "headers_read": scan.n_read,
        "removed": scan.n_removed,
        "seconds": round(scan.seconds, 3),
        "index": str(work / "index.sqlite"),
    }
    if a.json:
        print(json.dumps(report, indent=1))
        return 0
    _print_index(report, scan, objects, orphans)
    if "subjects" in report:
        _print_subjects(report["subjects"])
    return 0


def _print_index(report: dict[str, Any], scan: Any, objects: list[Any], orphans: list[str]) -> None:
    """The index report as a table, then skipped files, duplicates, problems and refusals."""
    rows = [
        (
            "series",
            "modality",
            "plane",
            "slices",
            "rows x cols",
            "spacing x-y-z mm",
            "patient*",
            "masks",
            "description",
        )
    ]
    for s, n in _collapse(report["series"]):
        masks = ",".join(sorted({m["kind"] for m in s["masks"]})) or "-"
        slices = f"{s['n_slices']} slice{'s' if s['n_slices'] != 1 else ''}"
        many = f"{n} volumes of {slices}, by {s['split_by'] or 'file'}"
        rows.append(
            (
                s["series_id"]
                if n == 1
                else f"{s['series_uid']} (#1..#{n})"
                if "#" in s["series_id"]
                else "",
                s["modality"],
                s["plane"],
                str(s["n_slices"]) if n == 1 else many,
                f"{s['rows']} x {s['cols']}",
                "x".join(f"{v:.3g}" for v in s["spacing"]),
                s["patient_key"] or "-",
                masks,
                s["description"][:32],
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    n_skip = sum(len(v) for v in report["skipped"].values())
    print(
        f"\n{len(report['series'])} volumes; {n_skip} files skipped; {scan.n_files} files "
        f"({scan.n_read} headers read) in {scan.seconds:.2f} s. *patient: keyed pseudonym of PatientID (- : none)"
    )
    linked_files = {m["path"] for s in report["series"] for m in s["masks"]}
    if objects:
        print(
            f"  {len(linked_files)} SEG/RTSTRUCT objects linked to their series; "
            f"{len(orphans)} reference no indexed series{': ' + ', '.join(orphans[:3]) if orphans else ''}"
        )
    for reason, paths in sorted(report["skipped"].items(), key=lambda kv: -len(kv[1])):
        more = f" (+{len(paths) - 3} more)" if len(paths) > 3 else ""
        print(f"  skipped {len(paths):5d}: {reason}: {', '.join(paths[:3])}{more}")
    for left, kept in sorted(report["duplicates"].items()):
        print(f"  duplicate: {left} repeats {kept} (left out)")
    for reason, paths in sorted(report["problems"].items()):
        print(f"  problem {len(paths):5d}: {reason}: {', '.join(paths[:3])}")
    for r in report["refusals"]:
        print(f"  refused: {r['series_id']}: {r['reason']}")
    for r in report.get("irregular", []):
        how = "data.preprocessing.irregular_stacks: resample reads it" if r["resample"] else "not readable"
        reason = r["reason"].split("; read with")[0]  # a few bounded clauses: printed whole, never cut
        print(f"  irregular: {r['series_id']}: {reason} ({how})")


def _subjects_report(idx: Any, cfg: Any) -> dict[str, Any]:
    """Which studies (or patients) form complete subjects under ``cfg.subjects``, and what each lacks."""
    from lightning_dicom.dicom.index import select_series
    from lightning_dicom.subjects.resolve import resolve_subjects

    selected, _ = select_series(idx.series(), cfg.selection)
    subjects, report = resolve_subjects(selected, cfg.subjects)
    report["used"] = [s.series_id for s in subjects]
    report["inputs_of"] = {
        s.series_id: {
            n: (r.series_id if r is not None else None) for n, r in zip(s.input_names, s.inputs, strict=True)
        }
        for s in subjects
    }
    report["missing_rule"] = cfg.subjects.missing
    return report


def _print_subjects(rep: dict[str, Any]) -> None:
    n_groups = rep["complete"] + len(rep["incomplete"])
    print(
        f"\nsubjects: {rep['complete']} of {n_groups} complete; {len(rep['used'])} used, "
        f"{len(rep['left_out'])} left out (missing: {rep['missing_rule']}); inputs found: "
        + ", ".join(f"{k} {v}" for k, v in rep["inputs"].items())
    )
    for gid, missing in sorted(rep["incomplete"].items()):
        fate = "left out" if gid in rep["left_out"] else "zero channel"
        print(f"  {gid}: no {', '.join(missing)} ({fate})")


def _collapse(series: list[dict]) -> list[tuple[dict, int]]:
    """Report rows, the volumes of one split series (same UID and slice count) folded into one row
    whose ``split_by`` names every attribute that separated them."""
    out: list[tuple[dict, int]] = []
    for s in series:
        last = out[-1][0] if out else None
        if (
            last is not None
            and s["n_volumes"] > 1
            and (last["series_uid"], last["n_slices"])
            == (
                s["series_uid"],
                s["n_slices"],
            )
        ):
            names = [x.strip() for x in f"{last['split_by']}, {s['split_by']}".split(",") if x.strip()]
            out[-1] = ({**last, "split_by": ", ".join(dict.fromkeys(names))}, out[-1][1] + 1)
        else:
            out.append((s, 1))
    return out


def _data_parser(prog: str) -> Any:
    from jsonargparse import ActionConfigFile, ArgumentParser

    from lightning_dicom.datamodule import DicomDataModule

    parser = ArgumentParser(prog=prog, description="Options are the `data:` section of a fit config.")
    parser.add_argument(
        "--config", action=ActionConfigFile, help="a LightningCLI YAML (its data: section is used)"
    )
    parser.add_class_arguments(DicomDataModule, "data")
    for other in ("model", "trainer", "optimizer", "lr_scheduler", "ckpt_path"):
        parser.add_argument(f"--{other}", type=Any, default=None, help="ignored here (read by fit)")
    parser.add_argument("--seed_everything", type=Any, default=None, help="ignored here")
    return parser


def _cache(argv: Sequence[str]) -> int:
    from lightning_dicom.datamodule import DicomDataModule

    parser = _data_parser("lightning-dicom cache")
    cfg = parser.parse_args(list(argv))
    init = parser.instantiate_classes(cfg)
    dm: DicomDataModule = init.data
    t0 = time.perf_counter()
    dm.prepare_data()
    dm.setup()
    cache = dm.volume_cache()
    size = cache.size_bytes()
    print(
        f"cache {cache.dir}: {len(dm.series) - len(dm.report['series_failed'])} series ready, "
        f"{len(dm.report['series_failed'])} failed, {size / 1e6:.1f} MB, {time.perf_counter() - t0:.1f} s"
    )
    for sid, reason in dm.report["series_failed"]:
        print(f"  failed {sid}: {reason}")
    return 0


def _plan(argv: Sequence[str]) -> int:
    from lightning_dicom.planning import FingerprintSettings, PlanSettings, plan_dataset

    parser = _data_parser("lightning-dicom plan")
    parser.description = (
        "Fingerprint the selected series (spacing, size, orientation, foreground intensities per "
        "modality) and propose preprocessing and a patch size (nnU-Net's rules; see "
        "lightning_dicom/planning/plan.py). Writes plan_<MODALITY>.yaml (use with --config), plan.txt "
        "and plan_<MODALITY>.png."
    )
    parser.add_argument(
        "--plan.out", type=Path | None, default=None, help="output folder (default <work_dir>/plan)"
    )
    parser.add_argument("--plan.memory_gb", type=float, default=8.0, help="training memory budget, GB")
    parser.add_argument("--plan.batch_size", type=int, default=2, help="patches per batch for the budget")
    parser.add_argument("--plan.bytes_per_voxel", type=float, default=2000.0, help="network memory per voxel")
    parser.add_argument(
        "--plan.series_per_modality", type=int, default=30, help="series read for intensities"
    )
    parser.add_argument("--plan.no_figures", type=bool, default=False, help="skip the PNG histograms")
    parser.add_argument("--plan.no_patches", type=bool, default=False, help="leave patches out of the YAML")
    cfg = parser.parse_args(list(argv))
    pc = cfg.plan
    instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes  # jsonargparse >= 4.49
    dm = instantiate(cfg).data  # the DataModule validates the data section
    result = plan_dataset(
        dm.config,
        pc.out,
        fingerprint_settings=FingerprintSettings(series_per_modality=pc.series_per_modality),
        plan_settings=PlanSettings(
            memory_gb=pc.memory_gb, batch_size=pc.batch_size, bytes_per_voxel=pc.bytes_per_voxel
        ),
        figures=not pc.no_figures,
        with_patches=not pc.no_patches,
        progress=dm.progress,
    )
    print(result.report)
    how = "loaded (unchanged index and settings)" if result.fingerprint["cached"] else "computed"
    print(f"fingerprint {how}: {result.fingerprint_path} ({result.seconds:.2f} s)")
    for files in result.files.values():
        for f in files:
            print(f"wrote {f}")
    return 0


def _schema(argv: Sequence[str]) -> int:
    from lightning_dicom.config import DataConfig

    argparse.ArgumentParser(
        prog="lightning-dicom schema", description="Print the data config's JSON Schema."
    ).parse_args(argv)
    print(json.dumps(DataConfig.model_json_schema(), indent=1))
    return 0


def _fixed_demo_key(work_dir: Path) -> None:
    """Synthetic data only: a fixed pseudonym key in the demo's work dir, so that the split (ordered by
    keyed pseudonyms) and the figures the demo prints are the same on every run and machine. A real
    project's key is random (:func:`lightning_dicom.dicom.pseudonym.project_key`)."""
    import hashlib

    from lightning_dicom.dicom.pseudonym import KEY_FILE, private_dir, private_file

    path = private_dir(work_dir) / KEY_FILE
    if not path.exists():
        path.write_text(hashlib.sha256(b"lightning_dicom synthetic demo").hexdigest(), encoding="ascii")
        private_file(path)


def _demo(argv: Sequence[str]) -> int:
    import pytorch_lightning as pl

    from lightning_dicom.datamodule import DicomDataModule
    from lightning_dicom.demo.models import Classifier3D
    from lightning_dicom.demo.synthetic import write_dataset

    p = argparse.ArgumentParser(
        prog="lightning-dicom demo",
        description="Write a synthetic CT dataset and train a small 3D CNN on it (CPU).",
    )
    p.add_argument("--out", type=Path, default=Path("demo_data"), help="where data, index and cache go")
    p.add_argument("--patients", type=int, default=48)
    p.add_argument("--epochs", type=int, default=25)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--task", choices=["classification", "segmentation"], default="classification")
    p.add_argument(
        "--new-scans", type=int, default=6, help="segmentation: new scans predicted after training"
    )
    a = p.parse_args(argv)
    if a.task == "segmentation":
        return _demo_segmentation(a)
    t0 = time.perf_counter()
    root = a.out / "ct"
    if not (root / "labels.csv").exists():
        write_dataset(root, n_patients=a.patients, shape_zyx=(32, 64, 64), spacing=(0.8, 0.8, 1.6), seed=0)
        print(f"wrote {a.patients} synthetic CT series to {root} in {time.perf_counter() - t0:.1f} s")
    pl.seed_everything(0, verbose=False)
    _fixed_demo_key(a.out / "work")
    dm = DicomDataModule(
        root=root,
        labels=root / "labels.csv",
        work_dir=a.out / "work",
        preprocessing={"spacing": [1.6, 1.6, 2.5], "window": [-200, 400], "size": [32, 32, 32]},
        split={"val": 0.25},
        loader={"batch_size": 4, "num_workers": a.workers},
    )
    trainer = pl.Trainer(
        max_epochs=a.epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        default_root_dir=a.out,
    )
    model = Classifier3D()
    trainer.fit(model, datamodule=dm)
    metrics = trainer.validate(model, datamodule=dm, verbose=False)[0]
    n_val = len(dm.datasets["val"])  # type: ignore[arg-type]
    print(
        f"\ndemo: {dm.report['split']} series (train/val/test), {a.epochs} epochs, "
        f"{time.perf_counter() - t0:.0f} s total"
    )
    print(
        f"demo: val_acc = {metrics['val_acc']:.3f} on {n_val} held-out series (chance 0.5), "
        f"val_loss = {metrics['val_loss']:.3f}"
    )
    print("same run from YAML: lightning-dicom fit --config configs/demo.yaml")
    return 0


def _demo_segmentation(a: argparse.Namespace) -> int:
    import pytorch_lightning as pl

    from lightning_dicom import io
    from lightning_dicom.datamodule import DicomDataModule
    from lightning_dicom.demo.segmentation_models import UNet3D
    from lightning_dicom.demo.synthetic_masks import write_segmentation_dataset
    from lightning_dicom.writer import PredictionWriter

    t0 = time.perf_counter()
    root = a.out / "seg"
    if not (root / "masks.csv").exists():
        write_segmentation_dataset(
            root, n_patients=min(a.patients, 24), shape_zyx=(24, 48, 48), spacing=(1.0, 1.0, 2.0)
        )
    pl.seed_everything(0, verbose=False)
    _fixed_demo_key(a.out / "seg_work")
    settings: dict[str, Any] = dict(
        preprocessing={
            "orientation": "RAS",
            "spacing": [1.5, 1.5, 2.0],
            "window": [-200, 400],
            "size": [16, 32, 32],
        },
        masks={"structures": {"lesion": "(?i)lesion"}, "sources": ["seg", "rtstruct"]},
        patches={"size": [16, 24, 24], "per_volume": 2},
        augment={"flip_axes": [2]},
        split={"val": 0.25},
        loader={"batch_size": 4, "num_workers": a.workers},
    )
    dm = DicomDataModule(root=root, work_dir=a.out / "seg_work", **settings)
    writer = PredictionWriter(a.out / "seg_predictions", formats=["nifti", "seg"], structure_names=["lesion"])
    trainer = pl.Trainer(
        max_epochs=min(a.epochs, 15),
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        default_root_dir=a.out,
        callbacks=[writer],
    )
    model = UNet3D(width=8, lr=3e-3)
    trainer.fit(model, datamodule=dm)
    metrics = trainer.validate(model, datamodule=dm, verbose=False)[0]
    trainer.predict(model, datamodule=dm, return_predictions=False)
    first = next(iter(writer.written.values()))["nifti"]
    img = io.read_image(first)
    print(
        f"\ndemo: val_dice = {metrics['val_dice']:.3f} (lesion; an empty prediction scores 0), "
        f"{time.perf_counter() - t0:.0f} s total"
    )
    print(
        f"demo: {len(writer.written)} predictions written to {writer.output_dir} as NIfTI + DICOM SEG on the "
        f"source grids (e.g. {img.GetSize()} voxels at {tuple(round(x, 2) for x in img.GetSpacing())} mm)"
    )
    ckpt = a.out / "seg_model.ckpt"
    trainer.save_checkpoint(ckpt)
    return _demo_new_scans(a, settings, ckpt)


def _demo_new_scans(a: argparse.Namespace, settings: dict[str, Any], ckpt: Path) -> int:
    """Predict on new synthetic scans as ``lightning-dicom predict --data.root NEW --ckpt_path CKPT`` does
    and print the Dice of the written SEGs against the truth (:mod:`lightning_dicom.demo.new_scans`)."""
    from lightning_dicom.demo.new_scans import predict_new_scans

    t0 = time.perf_counter()
    scores, root, out = predict_new_scans(a.out, settings, ckpt, n_scans=a.new_scans)
    values = list(scores.values())
    print(
        f"demo: new scans: {len(scores)} series never seen in training ({root}), predicted by sliding "
        f"window from {ckpt.name}, SEGs in {out}: Dice against the truth "
        f"{sum(values) / len(values):.3f} (min {min(values):.3f}), {time.perf_counter() - t0:.0f} s"
    )
    return 0


COMMANDS = {
    "fit": "train a model (LightningCLI: --config, --data.*, --model.*, --trainer.*)",
    "validate": "validate a checkpoint (--ckpt_path best|last|FILE; best/last: the latest fit's files)",
    "test": "test a checkpoint on the test split (--ckpt_path best|last|FILE)",
    "predict": "predict (classification: a CSV per run; segmentation: NIfTI + DICOM SEG via the writer)",
    "index": "index DICOM folders: series found, files skipped with why",
    "cache": "build the preprocessed cache ahead of training (same options as fit's data:)",
    "schema": "print the JSON Schema of the data config (for editors)",
    "demo": "write a synthetic CT dataset and train a small 3D CNN on CPU",
    "plan": "fingerprint the series and propose preprocessing and a patch size (nnU-Net's rules)",
    "preview": "PNGs of a series (three planes, mask overlay), a batch and the split",
}
DEBUG_ENV = "LIGHTNING_DICOM_DEBUG"


def _usage() -> str:
    lines = [
        "usage: lightning-dicom [--debug] <command> [options]   (lightning-dicom <command> --help: its options)",
        "",
        "commands:",
    ]
    lines += [f"  {name:<9} {text}" for name, text in COMMANDS.items()]
    lines += [
        "",
        f"--debug (or {DEBUG_ENV}=1): show the full traceback of an error instead of its one-line message.",
    ]
    return "\n".join(lines)


def _chain(err: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    cur: BaseException | None = err
    while cur is not None and all(cur is not e for e in out):
        out.append(cur)
        cur = cur.__cause__ or cur.__context__
    return out


def _field_paths() -> dict[str, str]:
    """pydantic model name -> its key in the CLI (``PreprocessingConfig`` -> ``data.preprocessing``)."""
    import typing

    from lightning_dicom.config import DataConfig

    out = {}
    for name, field in DataConfig.model_fields.items():
        for t in (field.annotation, *typing.get_args(field.annotation)):
            if isinstance(t, type) and t.__module__ == DataConfig.__module__:
                out[t.__name__] = f"data.{name}"
    return out


def friendly_error(err: BaseException, command: str = "") -> str | None:
    """One message for a mistake of the user's (bad key, value, path, labels CSV), None for anything else.

    The chain of causes is searched for a :class:`~lightning_dicom.errors.LightningDicomError` (its
    message), a pydantic ``ValidationError`` (each key and what is expected, e.g. ``data.preprocessing.
    window: window must be [low, high] with low < high``), Lightning's ``MisconfigurationException`` (a
    Trainer option this machine cannot honour, e.g. ``--trainer.accelerator gpu`` without a GPU), then an
    argument error of the parser (an unknown key, a value of the wrong type).
    """
    from pydantic import ValidationError

    from lightning_dicom.config import validation_message
    from lightning_dicom.errors import LightningDicomError

    chain = _chain(err)
    for e in chain:
        if isinstance(e, LightningDicomError):
            return str(e)
    for e in chain:
        if isinstance(e, ValidationError):
            prefix = _field_paths().get(e.title, "data")
            text = validation_message(e, prefix=prefix + ".")
            lines = text.splitlines()
            return " ".join(ln.strip() for ln in lines) if len(lines) == 2 else text  # one mistake, one line
    for e in chain:  # Lightning's: a Trainer option this machine cannot honour (accelerator gpu, no GPU)
        if type(e).__name__ == "MisconfigurationException":
            text = " ".join(ln.strip() for ln in str(e).splitlines() if ln.strip())
            hint = (
                " (--trainer.accelerator auto uses what this machine has)"
                if "accelerator" in text or "backend" in text
                else ""
            )
            return f"trainer: {text}{hint}"
    for e in chain:
        if isinstance(e, argparse.ArgumentError) or type(e).__name__ == "ArgumentError":
            lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()] or [type(e).__name__]
            first = " ".join(lines[:2]) if lines[0].endswith(":") else lines[0]
            return f"{first} (`lightning-dicom {command or '<command>'} --help` lists the options)"
    return None


def _dispatch(args: list[str]) -> int:
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0 if args else 2
    if args[0] in _OWN:
        commands = {
            "index": _index,
            "cache": _cache,
            "schema": _schema,
            "demo": _demo,
            "plan": _plan,
            "preview": _preview,
        }
        return commands[args[0]](args[1:])
    if args[0] not in COMMANDS:
        print(f"lightning-dicom: error: unknown command {args[0]!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    from lightning_dicom.commands.lightning_cli import run

    run(args)
    return 0


def _preview(argv: Sequence[str]) -> int:
    from lightning_dicom.commands.preview import preview

    return preview(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lightning-dicom`` console script.

    Errors of the project's own kind (:class:`~lightning_dicom.errors.LightningDicomError`: a bad key or
    value, a missing root, a malformed labels CSV) print one line, ``lightning-dicom: error: ...``, and
    exit with status 2; ``--debug`` or ``LIGHTNING_DICOM_DEBUG=1`` shows the traceback instead.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get(DEBUG_ENV, "") not in ("", "0")
    if "--debug" in args:
        args.remove("--debug")
        debug = True
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("lightning_dicom.dicom.index").setLevel(logging.WARNING)
    logging.getLogger("pydicom").setLevel(logging.ERROR)
    logging.getLogger("highdicom").setLevel(logging.WARNING)  # header quirks are reported per file
    try:
        return _dispatch(args)
    except Exception as err:
        message = friendly_error(err, args[0] if args else "")
        if message is None or debug:
            raise
        print(f"lightning-dicom: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
