"""``lightning-dicom preview``: look at what the model will see, as PNGs.

::

    lightning-dicom preview --config configs/ct_classification.yaml --data.root /data/ct --out preview

writes, into ``--out``:

* ``series-<last 8 characters of the series id>.png`` for the first ``--series`` series (or the ones
  named): axial, coronal and sagittal mid-slices of the preprocessed volume (from the cache), with its
  mask drawn over it when the config has masks (:func:`lightning_dicom.render.save_volume_png`);
* ``batch.png``: the first training batch, one mid axial slice per sample, titled with its label
  (:func:`~lightning_dicom.render.save_batch_png`);
* ``split.png``: series (and patients) per part of the split (:func:`~lightning_dicom.render.save_split_png`).

Titles carry series ids and shapes only, never patient data. Needs matplotlib (the ``viz`` extra).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning_dicom.errors import ConfigError

__all__ = ["preview"]


def _parser() -> Any:
    from jsonargparse import ActionConfigFile, ArgumentParser

    from lightning_dicom.datamodule import DicomDataModule

    parser = ArgumentParser(
        prog="lightning-dicom preview",
        description="PNGs of series (three planes, mask overlay), a training batch and the split.",
        exit_on_error=False,
    )
    parser.add_argument(
        "--config", action=ActionConfigFile, help="a LightningCLI YAML (its data: section is used)"
    )
    parser.add_class_arguments(DicomDataModule, "data")
    parser.add_argument("--out", type=Path, default=Path("preview"), help="folder of the PNGs")
    parser.add_argument(
        "--series",
        type=str,
        nargs="*",
        default=[],
        help="series ids to draw, as `index` prints them (a UID of several volumes draws each uid#k); "
        "default: the first ones",
    )
    parser.add_argument("--n_series", type=int, default=3, help="how many series when --series is not given")
    for other in ("model", "trainer", "optimizer", "lr_scheduler", "ckpt_path", "seed_everything"):
        parser.add_argument(f"--{other}", type=Any, default=None, help="ignored here (read by fit)")
    return parser


def _short(series_id: str, n: int) -> str:
    """The last ``n`` characters of the UID part, plus a ``_k`` sub-volume suffix (file-name safe)."""
    uid, _, k = series_id.partition("#")
    return uid[-n:] + (f"_{k}" if k else "")


def preview(argv: Sequence[str]) -> int:
    """Run ``lightning-dicom preview`` (see the module docstring); prints the paths written."""
    from lightning_dicom import render
    from lightning_dicom.data.dataset import collate

    parser = _parser()
    cfg = parser.parse_args(list(argv))
    dm = parser.instantiate_classes(cfg).data
    dm.prepare_data()
    dm.setup()
    out: Path = cfg.out
    volumes = dm.datasets["predict"]
    ids = [volumes.meta.get(i)["series_id"] for i in range(len(volumes))]
    wanted = []
    for sid in list(cfg.series) or ids[: max(0, cfg.n_series)]:  # a plain UID: every volume uid#k of it
        wanted += [sid] if sid in ids else [i for i in ids if i.partition("#")[0] == sid] or [sid]
    unknown = [s for s in wanted if s not in ids]
    if unknown:
        raise ConfigError(f"--series {unknown[0]} is not a usable series of data.root ({len(ids)} are)")
    written = []
    for sid in wanted:
        i = ids.index(sid)
        meta = volumes.meta.get(i)
        written.append(
            render.save_volume_png(
                volumes.volume(i),
                out / f"series-{_short(sid, 8)}.png",
                spacing=[float(x) for x in meta["spacing"]],
                title=f"series ...{_short(sid, 16)} (preprocessed, as the model sees it)",
                mask=volumes.mask(i),
            )
        )
    if len(dm.datasets["train"]):
        try:
            batch = next(iter(dm.train_dataloader()))
        except ConfigError as err:  # volumes of different shapes (no preprocessing.size): one sample
            print(f"batch.png: one sample drawn ({err.reason.split(':')[0]})")
            batch = collate([dm.datasets["train"][0]])
        written.append(render.save_batch_png(batch, out / "batch.png"))
    written.append(render.save_split_png(dm.work_dir / "split.json", out / "split.png"))
    for path in written:
        print(path)
    return 0
