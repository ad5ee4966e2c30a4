#!/usr/bin/env python
"""GPU feed benchmark (issue 13): loader-bound rows, fed vs resident models, the pinned-buffer reuse check.

    python benchmarks/gpu/run.py                     # an accelerator: 32 volumes of 128x240x240, ~6 min
    python benchmarks/gpu/run.py --device cpu --quick  # the logic on a CPU, seconds (CI smoke test)

Needs torch, pytorch-lightning and numpy, plus small wheels: pydantic (+ pydantic_core, annotated_types,
typing_inspection), pydicom, and monai for its row (``benchmarks/gpu/README.md``). SimpleITK is not
needed: the arrays are written directly as float16 ``.npy`` cache entries, and when SimpleITK is missing an
import stub stands in for it (nothing on the loader path calls it; ``--stub-sitk`` forces the stub).

Rows (each run twice, each at least ``--seconds`` long after ``--warm`` steps; every loader delivers
float16 images to the step, uint8 masks):

- loader-bound ``Trainer.fit`` (the step only reads the batch on the device): lightning_dicom resident
  patches (with and without label masks), pinned-ring patches and whole volumes, MONAI's GPU-cache recipe
  (``CacheDataset`` + ``ToDeviced`` + ``RandSpatialCropSamplesd`` + ``ThreadDataLoader``), and the ceiling
  (crops sliced one by one from device-resident volumes in the step's process);
- a 3D U-Net (width 32, depth 4, bf16-mixed) on patches and a light 3D classifier (width 16) on whole
  volumes: fed by lightning_dicom (resident and pinned) vs the same batch kept on the device;
- the pinned-ring reuse check: whole volumes through a ring of 7 slots while the step runs slow kernels;
  every batch's sum must equal its volume's sum from the host (a slot overwritten in flight would not).
"""

from __future__ import annotations

import argparse
import importlib.abc
import importlib.machinery
import json
import os
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]


def stub_simpleitk(force: bool = False) -> bool:
    """Install an import stub for SimpleITK when it is missing (or ``force``); True if installed."""
    if not force:
        try:
            import SimpleITK  # noqa: F401

            return False
        except ImportError:
            pass

    def missing(*a: Any, **k: Any) -> None:
        raise RuntimeError("SimpleITK is not installed (benchmark stub)")

    class Stub(types.ModuleType):
        def __getattr__(self, name: str) -> Any:
            if name.startswith("__"):
                raise AttributeError(name)
            return type(name, (), {"__init__": missing})

    class Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
            if fullname.split(".")[0] == "SimpleITK":
                return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
            return None

        def create_module(self, spec: Any) -> types.ModuleType:
            m = Stub(spec.name)
            m.__path__ = []
            return m

        def exec_module(self, module: types.ModuleType) -> None:
            return None

    for k in [k for k in sys.modules if k.split(".")[0] == "SimpleITK"]:
        del sys.modules[k]
    sys.meta_path.insert(0, Finder())
    return True


def make_data(folder: Path, n: int, shape: tuple[int, int, int]) -> dict[str, Any]:
    """n float16 volumes (smooth noise + a bright ball), uint8 masks (> 0.55), foreground lists, metadata."""
    rng = np.random.default_rng(0)
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    out: dict[str, Any] = {"paths": [], "masks": [], "fg": [], "metas": [], "sums": []}
    base = rng.random(shape, dtype=np.float32) * 0.5
    for i in range(n):
        c = rng.uniform(0.3, 0.7, 3) * np.array(shape)
        r = min(shape) * rng.uniform(0.1, 0.25)
        ball = ((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2) < r * r
        img = (np.roll(base, i, axis=1) + 0.5 * ball).astype(np.float16)[None]
        mask = (img > 0.55).astype(np.uint8)
        np.save(folder / f"v{i}.npy", img)
        np.save(folder / f"m{i}.npy", mask)
        fg = np.argwhere(mask[0]).astype(np.int32)
        out["paths"].append(folder / f"v{i}.npy")
        out["masks"].append(folder / f"m{i}.npy")
        out["fg"].append(fg[rng.permutation(len(fg))[:1000]] if len(fg) else fg)
        out["sums"].append(float(img.astype(np.float64).sum()))
        out["metas"].append(
            {
                "series_id": f"s{i}",
                "spacing": [1.5, 1.5, 1.5],
                "origin": [0.0, 0.0, 0.0],
                "direction": [1, 0, 0, 0, 1, 0, 0, 0, 1],
                "shape": [1, *shape],
            }
        )
    out["labels"] = [np.int64(i % 2) for i in range(n)]
    return out


class HostTransfer:
    """The pinned ring's transfer on a CPU: a copy, done at once."""

    pin = False

    def copy(self, tensors: dict[str, torch.Tensor], slot: int) -> tuple[dict[str, torch.Tensor], Any]:
        class Done:
            def synchronize(self) -> None:
                return None

        return {k: v.clone() for k, v in tensors.items()}, Done()

    def ready(self, tensors: dict[str, torch.Tensor], event: Any) -> None:
        return None


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        import pytorch_lightning as pl

        self.pl, self.args = pl, args
        self.device = torch.device(args.device)
        self.cuda = self.device.type == "cuda"
        self.rows: list[dict[str, Any]] = []

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    # -- loaders ----------------------------------------------------------------------------------
    def volumes(self, masks: bool) -> Any:
        from lightning_dicom.data.dataset import CachedVolumeDataset

        d = self.data
        return CachedVolumeDataset(
            d["paths"],
            d["metas"],
            d["labels"],
            None,
            d["masks"] if masks else None,
            d["fg"] if masks else None,
        )

    def resident(self, patches: bool, masks: bool, batch: int) -> Any:
        from lightning_dicom.config import CacheConfig
        from lightning_dicom.data.dataset import PatchDataset
        from lightning_dicom.data.feeding import _resident

        vols = self.volumes(masks)
        p = PatchDataset(vols, self.patch, self.args.per_volume, 0.5 if masks else 0.0) if patches else None
        free = None if self.cuda else 2**40
        loader = _resident(vols, p, CacheConfig(device="cuda"), self.device, batch, 1, 0, True, 0, free)
        assert loader is not None
        return loader

    def pinned(
        self, patches: bool, masks: bool, batch: int, ahead: int = 2, threads: int | None = None
    ) -> Any:
        from lightning_dicom.data.assemble import AssembledBatches, BatchAssembler
        from lightning_dicom.data.dataset import PatchDataset
        from lightning_dicom.data.device_feed import CudaTransfer, DeviceFeedLoader
        from lightning_dicom.data.sampler import ShardBatchSampler

        vols = self.volumes(masks)
        p = PatchDataset(vols, self.patch, self.args.per_volume, 0.5 if masks else 0.0) if patches else None
        ds = AssembledBatches(BatchAssembler(vols, p))
        return DeviceFeedLoader(
            ds,
            sampler=ShardBatchSampler(len(ds), batch, shuffle=True),
            batch_size=None,
            threads=threads or self.args.threads,
            prefetch=2,
            transfer=CudaTransfer(self.device) if self.cuda else HostTransfer(),
            ahead=ahead,
        )

    def monai(self, batch: int) -> Any:
        from monai.data import CacheDataset, ThreadDataLoader
        from monai.transforms import Compose, Lambdad, RandSpatialCropSamplesd, ToDeviced

        det = Compose(
            [Lambdad("image", lambda p: torch.from_numpy(np.load(p))), ToDeviced("image", device=self.device)]
        )
        crop = RandSpatialCropSamplesd("image", roi_size=self.patch, num_samples=batch, random_size=False)
        ds = CacheDataset(
            [{"image": str(p)} for p in self.data["paths"]],
            Compose([det, crop]),
            cache_rate=1.0,
            progress=False,
        )
        return ThreadDataLoader(ds, num_workers=0, batch_size=1, shuffle=True)

    def ceiling(self, batch: int) -> Any:
        vols = torch.stack([torch.from_numpy(np.load(p)) for p in self.data["paths"]]).to(self.device)
        size, n, per = self.patch, len(self.data["paths"]), self.args.per_volume

        class Crops:
            def __len__(self) -> int:
                return n * per // batch

            def __iter__(self) -> Any:
                rng = np.random.default_rng()
                for _ in range(len(self)):
                    out = []
                    for v in rng.integers(0, n, batch):
                        s = [
                            int(rng.integers(0, d - k + 1)) for d, k in zip(vols.shape[2:], size, strict=True)
                        ]
                        out.append(
                            vols[v, :, s[0] : s[0] + size[0], s[1] : s[1] + size[1], s[2] : s[2] + size[2]]
                        )
                    yield {"image": torch.stack(out)}

        return Crops()

    # -- running ----------------------------------------------------------------------------------
    def fit(self, name: str, make: Any, module: Any = None, precision: str | None = None) -> None:
        pl, bench = self.pl, self
        warm = self.args.warm

        class Timer(pl.Callback):
            samples, t0, t1, step, nbytes, dtype = 0, 0.0, 0.0, 0, 0, ""

            def on_train_batch_end(self, trainer: Any, module: Any, outputs: Any, batch: Any, i: int) -> None:
                self.step += 1
                x = _plain(batch["image"] if isinstance(batch, dict) else batch[0]["image"])
                if self.step == warm:
                    bench.sync()
                    self.t0 = time.perf_counter()
                elif self.step > warm:
                    self.samples += x.shape[0]
                    self.nbytes, self.dtype = x[0].numel() * x.element_size(), str(x.dtype)
                    if time.perf_counter() - self.t0 >= bench.args.seconds:
                        trainer.should_stop = True

            def on_train_end(self, trainer: Any, module: Any) -> None:
                bench.sync()
                self.t1 = time.perf_counter()

        class Sink(pl.LightningModule):  # the step only reads the batch on the device
            def __init__(self) -> None:
                super().__init__()
                self.automatic_optimization = False
                self.acc = torch.zeros(())

            def training_step(self, batch: Any, i: int) -> None:
                if isinstance(batch, list):  # MONAI: a list of dicts per volume's samples
                    batch = batch[0]
                x = _plain(batch["image"])
                assert x.device.type == bench.device.type and x.dtype == torch.float16, (x.device, x.dtype)
                self.acc = self.acc.to(x.device) + x.view(-1)[-1].float()
                if "mask" in batch:
                    assert batch["mask"].dtype == torch.uint8
                    self.acc = self.acc + batch["mask"].view(-1)[-1].float()

            def configure_optimizers(self) -> None:
                return None

        loader = make()  # built (MONAI: cached, uploaded) before the clock

        class Wrap(pl.LightningDataModule):
            def train_dataloader(self) -> Any:
                return loader

        timer = Timer()
        trainer = pl.Trainer(
            accelerator="gpu" if self.cuda else "cpu",
            devices=1,
            max_epochs=10**6,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            callbacks=[timer],
            precision=precision or "32-true",
        )
        t = time.perf_counter()
        trainer.fit(module or Sink(), datamodule=Wrap())
        dt = timer.t1 - timer.t0
        row = {
            "name": name,
            "samples_per_s": timer.samples / dt if dt > 0 else 0.0,
            "GB_per_s": timer.samples * timer.nbytes / dt / 1e9 if dt > 0 else 0.0,
            "timed_s": dt,
            "wall_s": time.perf_counter() - t,
            "dtype": timer.dtype,
        }
        self.rows.append(row)
        print(
            f"{name}: {row['samples_per_s']:,.1f}/s, {row['GB_per_s']:.2f} GB/s over {dt:.1f} s", flush=True
        )

    def resident_step(self, name: str, module: Any, batch: dict[str, Any]) -> None:
        """The model's training step on one batch kept on the device (the GPU-bound reference)."""
        module = module.to(self.device)
        opt = module.configure_optimizers()
        batch = {k: v for k, v in batch.items() if isinstance(v, torch.Tensor)}
        ctx = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cuda)
        steps, t = 0, 0.0
        while True:
            if steps == self.args.warm:
                self.sync()
                t = time.perf_counter()
            with ctx:
                loss = module.training_step(batch, steps)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps += 1
            if steps > self.args.warm and time.perf_counter() - t >= self.args.seconds:
                break
        self.sync()
        dt = time.perf_counter() - t
        n = (steps - self.args.warm) * batch["image"].shape[0]
        self.rows.append({"name": name, "samples_per_s": n / dt, "timed_s": dt})
        print(f"{name}: {n / dt:,.1f}/s over {dt:.1f} s", flush=True)

    def reuse_check(self) -> None:
        """Whole volumes through a small pinned ring while slow kernels run: sums must match the host's."""
        loader = self.pinned(patches=False, masks=False, batch=1, ahead=2, threads=4)
        loader.prefetch = 1
        slow = torch.randn(2048 if self.cuda else 64, 2048 if self.cuda else 64, device=self.device)
        bad = n = 0
        for _ in range(3):
            for batch in loader:
                for _ in range(20):
                    slow = torch.tanh(slow @ slow * 1e-3)  # the compute stream stays busy
                got = float(batch["image"].double().sum())
                want = self.data["sums"][int(batch["meta"]["index"][0])]
                bad += abs(got - want) > 1e-6 * max(1.0, abs(want))
                n += 1
        self.rows.append(
            {"name": "pinned ring reuse check (ring 7, 3 epochs)", "batches": n, "mismatches": bad}
        )
        print(f"reuse check: {bad} mismatches in {n} batches (ring of {loader.ring_size()})", flush=True)
        if bad:
            raise AssertionError(
                f"{bad} batches differ from their volumes: a pinned slot was overwritten in flight"
            )

    def h2d(self) -> None:
        if not self.cuda:
            return
        for pin in (True, False):
            x = torch.empty(256 * 2**20, dtype=torch.uint8, pin_memory=pin)
            y = torch.empty_like(x, device=self.device)
            y.copy_(x, non_blocking=pin)
            self.sync()
            t = time.perf_counter()
            for _ in range(10):
                y.copy_(x, non_blocking=pin)
            self.sync()
            gbs = 10 * x.numel() / (time.perf_counter() - t) / 1e9
            self.rows.append(
                {"name": f"host->device 256 MB, {'pinned' if pin else 'pageable'}", "GB_per_s": gbs}
            )

    def run(self) -> None:
        a = self.args
        self.patch = tuple(a.patch)
        with tempfile.TemporaryDirectory() as tmp:
            self.data = make_data(Path(tmp), a.volumes, tuple(a.shape))
            self.h2d()
            b, bv = a.batch, a.volume_batch
            loader_rows = [
                (f"lightning_dicom resident patches b{b}", lambda: self.resident(True, False, b)),
                (
                    f"lightning_dicom resident patches + label masks b{b}",
                    lambda: self.resident(True, True, b),
                ),
                (f"lightning_dicom pinned ring patches b{b}", lambda: self.pinned(True, False, b)),
                (f"lightning_dicom pinned ring volumes b{bv}", lambda: self.pinned(False, False, bv)),
                (f"MONAI CacheDataset + ToDeviced + ThreadDataLoader patches b{b}", lambda: self.monai(b)),
                (f"ceiling: crops sliced from device-resident volumes b{b}", lambda: self.ceiling(b)),
            ]
            for rnd in (1, 2):
                for name, make in loader_rows:
                    if "MONAI" in name and not _has("monai"):
                        continue
                    self.fit(f"{name} (run {rnd})", make)
            self.reuse_check()
            self.models()

    def models(self) -> None:
        from lightning_dicom.demo.models import Classifier3D
        from lightning_dicom.demo.segmentation_models import UNet3D

        a = self.args
        prec = "bf16-mixed" if self.cuda else "32-true"

        class Seg(UNet3D):  # target: the image thresholded (a real loss, a real backward)
            def training_step(self, batch: Any, i: int) -> torch.Tensor:
                x = batch["image"].float()
                return torch.nn.functional.cross_entropy(self(x), (x > 0.55).long()[:, 0])

        class Cls(Classifier3D):
            def training_step(self, batch: Any, i: int) -> torch.Tensor:
                return torch.nn.functional.cross_entropy(self(batch["image"].float()), batch["label"])

        unet = {"width": a.unet_width, "depth": a.unet_depth}
        b, bv = a.batch, a.classifier_batch
        self.fit(
            f"U-Net w{a.unet_width} patches b{b} fed: resident",
            lambda: self.resident(True, False, b),
            Seg(**unet),
            prec,
        )
        self.fit(
            f"U-Net w{a.unet_width} patches b{b} fed: pinned ring",
            lambda: self.pinned(True, False, b),
            Seg(**unet),
            prec,
        )
        one = next(iter(self.resident(True, False, b)))
        self.resident_step(f"U-Net w{a.unet_width} patches b{b}: batch resident", Seg(**unet), one)
        cls = {"width": a.classifier_width}
        self.fit(
            f"classifier w{a.classifier_width} volumes b{bv} fed: resident",
            lambda: self.resident(False, False, bv),
            Cls(**cls),
            prec,
        )
        self.fit(
            f"classifier w{a.classifier_width} volumes b{bv} fed: pinned ring",
            lambda: self.pinned(False, False, bv),
            Cls(**cls),
            prec,
        )
        one = next(iter(self.resident(False, False, bv)))
        self.resident_step(f"classifier w{a.classifier_width} volumes b{bv}: batch resident", Cls(**cls), one)


def _plain(x: torch.Tensor) -> torch.Tensor:
    """MONAI's MetaTensor as the plain tensor it wraps: indexing a MetaTensor runs MONAI's metadata
    bookkeeping (measured ~0.6 s per batch on a CPU), which is the step's cost, not the loader's."""
    return x.as_tensor() if hasattr(x, "as_tensor") else x


def _has(name: str) -> bool:
    try:
        __import__(name)
        return True
    except ImportError:
        return False


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| row | samples/s | GB/s | timed s | note |", "|---|---:|---:|---:|---|"]
    for r in rows:
        sps = f"{r['samples_per_s']:,.1f}" if "samples_per_s" in r else ""
        gbs = f"{r['GB_per_s']:.2f}" if "GB_per_s" in r else ""
        ts = f"{r['timed_s']:.1f}" if "timed_s" in r else ""
        note = r.get("dtype", "") or (
            f"{r['mismatches']} mismatches / {r['batches']} batches" if "batches" in r else ""
        )
        lines.append(f"| {r['name']} | {sps} | {gbs} | {ts} | {note} |")
    return "\n".join(lines)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    p.add_argument("--quick", action="store_true", help="tiny data and 1 s rows: exercises the logic")
    p.add_argument("--volumes", type=int, default=32)
    p.add_argument("--shape", type=int, nargs=3, default=[128, 240, 240], help="z y x")
    p.add_argument("--patch", type=int, nargs=3, default=[128, 128, 128], help="z y x")
    p.add_argument("--per-volume", type=int, default=8)
    p.add_argument("--batch", type=int, default=8, help="patches per batch")
    p.add_argument("--volume-batch", type=int, default=2, help="whole volumes per batch (loader-bound row)")
    p.add_argument("--classifier-batch", type=int, default=4)
    p.add_argument("--classifier-width", type=int, default=16)
    p.add_argument("--unet-width", type=int, default=32)
    p.add_argument("--unet-depth", type=int, default=4)
    p.add_argument("--threads", type=int, default=8, help="threads of the pinned ring's loader")
    p.add_argument("--seconds", type=float, default=10.0, help="timed length of each row")
    p.add_argument("--warm", type=int, default=10, help="steps before the clock starts")
    p.add_argument("--stub-sitk", action="store_true", help="use the SimpleITK stub even if it is installed")
    p.add_argument(
        "--out", type=Path, default=None, help="JSON results (default benchmarks/gpu/results-<device>.json)"
    )
    a = p.parse_args(argv)
    if a.quick:
        a.volumes, a.shape, a.patch, a.seconds, a.warm = 4, [24, 40, 40], [16, 16, 16], 0.5, 2
        a.unet_width, a.unet_depth, a.classifier_width, a.threads = 4, 2, 4, 2
    return a


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    stubbed = stub_simpleitk(args.stub_sitk)
    sys.path.insert(0, str(ROOT))
    import warnings

    warnings.filterwarnings("ignore")
    import logging

    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    bench = Bench(args)
    env = {
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(bench.device) if bench.cuda else "cpu",
        "cpus": os.cpu_count(),
        "simpleitk_stub": stubbed,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }
    print(env, flush=True)
    bench.run()
    print(table(bench.rows))
    summary = {}
    by = {r["name"]: r.get("samples_per_s", 0.0) for r in bench.rows}

    def best(prefix: str) -> float:
        return max((v for k, v in by.items() if k.startswith(prefix)), default=0.0)

    b = args.batch
    res, ceil, monai = (
        best(f"lightning_dicom resident patches b{b}"),
        best("ceiling"),
        best("MONAI"),
    )
    if ceil:
        summary["resident / ceiling"] = res / ceil
    if monai:
        summary["resident / MONAI"] = res / monai
    if res:
        summary["with masks / without"] = best("lightning_dicom resident patches + label masks") / res
    print("\n" + "\n".join(f"- {k}: {v:.2f}x" for k, v in summary.items()))
    out = args.out or Path(__file__).resolve().parent / f"results-{args.device}.json"
    out.write_text(json.dumps({"env": env, "rows": bench.rows, "summary": summary}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
