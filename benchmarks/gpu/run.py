#!/usr/bin/env python
"""GPU feed benchmark (issue 13): loader-bound rows, fed vs resident models, the pinned-buffer reuse check.

    python benchmarks/gpu/run.py                     # an accelerator: 32 volumes of 128x240x240, ~6 min
    python benchmarks/gpu/run.py --device cpu --quick  # the logic on a CPU, seconds (CI smoke test)
    python benchmarks/gpu/run.py --only ceiling,reuse  # only the rows whose names hold these words

A row that fails is reported (its traceback printed, ``error`` in its JSON row) and the others still run;
the JSON is rewritten after every row, so a run stopped by a time limit keeps what it measured. The exit
status is 1 when a row failed or the reuse check found a mismatch.

Needs torch, pytorch-lightning and numpy, plus small wheels for the device's Python: pydantic (+
pydantic_core, annotated_types, typing_inspection, typing_extensions), pydicom, and monai for its row
(``benchmarks/gpu/README.md``). SimpleITK is not needed: the arrays are written directly as float16
``.npy`` cache entries, and when SimpleITK is missing an import stub stands in for it (nothing on the
loader path calls it; ``--stub-sitk`` forces the stub).

Rows (each run twice, each at least ``--seconds`` long after ``--warm`` steps; every loader delivers
float16 images to the step, uint8 masks):

- loader-bound ``Trainer.fit`` (the step only reads the batch on the device): lightning_dicom resident
  patches (with and without label masks), pinned-ring patches and whole volumes, MONAI's GPU-cache recipe
  (``CacheDataset`` + ``ToDeviced`` + ``RandSpatialCropSamplesd`` + ``ThreadDataLoader``), and the ceiling
  (crops sliced one by one from device-resident volumes in the step's process);
- a 3D U-Net (width 32, depth 4, bf16-mixed) on patches and a light 3D classifier (width 16) on whole
  volumes: fed by lightning_dicom (resident and pinned) vs the same batch kept on the device;
- the pinned-ring reuse check: whole volumes through a ring of 7 slots, each copy queued behind a ~2 ms
  kernel on the side stream and slow kernels on the compute stream, with no host sync until the end: every
  batch's sum must equal its volume's sum from the host (a slot overwritten while its copy is queued, a
  batch read before its copy lands, or a device buffer reused while the step still reads it would not).
"""

from __future__ import annotations

import argparse
import functools
import gc
import importlib.abc
import importlib.machinery
import json
import os
import sys
import tempfile
import time
import traceback
import types
from collections.abc import Callable
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
        self.env: dict[str, Any] = {}
        self.only = [w.strip() for w in (args.only or "").split(",") if w.strip()]

    def attempt(self, name: str, fn: Callable[..., Any], *args: Any) -> None:
        """Run the row ``name`` (``fn(*args)``). A failure is printed and recorded as that row's ``error``,
        and the next row runs; the JSON is rewritten after every row."""
        if self.only and not any(w in name for w in self.only):
            return
        try:
            fn(*args)
        except Exception as e:
            traceback.print_exc()
            self.rows.append({"name": name, "error": f"{type(e).__name__}: {e}"[:800]})
            print(f"{name}: FAILED ({type(e).__name__}: {e})", flush=True)
        finally:
            gc.collect()  # a failed fit leaves cycles holding device memory
            if self.cuda:
                torch.cuda.empty_cache()
            self.save()

    def save(self) -> None:
        result = {"env": self.env, "rows": self.rows, "summary": summary(self.rows, self.args.batch)}
        self.args.out.write_text(json.dumps(result, indent=1))

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
        self, patches: bool, masks: bool, batch: int, ahead: int = 2, threads: int = 0, transfer: Any = None
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
            transfer=transfer or (CudaTransfer(self.device) if self.cuda else HostTransfer()),
            ahead=ahead,
        )

    def monai(self, batch: int) -> Any:
        from monai.data import CacheDataset, ThreadDataLoader
        from monai.transforms import Compose, Lambdad, RandSpatialCropSamplesd, ToDeviced

        det = Compose(
            [Lambdad("image", lambda p: torch.from_numpy(np.load(p))), ToDeviced("image", device=self.device)]
        )
        crop = RandSpatialCropSamplesd("image", roi_size=self.patch, num_samples=batch, random_size=False)
        ds = CacheDataset(  # copy_cache=False as MONAI's fast-training recipe: the crops only read the cache
            [{"image": str(p)} for p in self.data["paths"]],
            Compose([det, crop]),
            cache_rate=1.0,
            progress=False,
            copy_cache=False,
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
    def fit(
        self,
        name: str,
        make: Callable[[], Any],
        model: Callable[[], Any] | None = None,
        precision: str = "32-true",
    ) -> None:
        """``Trainer.fit`` of ``model()`` (default: a step that only reads the batch) on the loader ``make()``."""
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
            precision=precision,
        )
        t = time.perf_counter()
        trainer.fit(model() if model is not None else Sink(), datamodule=Wrap())
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

    def resident_step(self, name: str, model: Callable[[], Any], make: Callable[[], Any]) -> None:
        """``model()``'s training step on one batch (the first of ``make()``) kept on the device (the
        GPU-bound reference)."""
        batch = next(iter(make()))
        module = model().to(self.device)
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
        """Whole volumes through a small pinned ring: sums (kept on the device until the end) must match."""
        transfer = None
        if self.cuda:
            from lightning_dicom.data.device_feed import CudaTransfer

            class QueuedCopies(CudaTransfer):
                """Each copy queued behind a ~2 ms kernel on the side stream: loader threads come back to a
                slot while its copy has not read it yet (the event guard must hold them)."""

                def copy(
                    self, tensors: dict[str, torch.Tensor], slot: int
                ) -> tuple[dict[str, torch.Tensor], Any]:
                    with torch.cuda.stream(self.stream):
                        torch.cuda._sleep(4_000_000)  # clock cycles, ~2 ms at 2 GHz
                    return super().copy(tensors, slot)

            transfer = QueuedCopies(self.device)
        loader = self.pinned(patches=False, masks=False, batch=1, ahead=2, threads=4, transfer=transfer)
        loader.prefetch = 1
        slow = torch.randn(2048 if self.cuda else 64, 2048 if self.cuda else 64, device=self.device)
        sums, want = [], []
        for _ in range(3):
            for batch in loader:  # no host sync in the loop: the host runs ahead of both streams
                for _ in range(20):
                    slow = torch.tanh(slow @ slow * 1e-3)  # the compute stream stays busy
                sums.append(batch["image"].double().sum())
                want.append(self.data["sums"][int(batch["meta"]["index"][0])])
        got = torch.stack(sums).tolist() if sums else []
        bad = sum(abs(g - w) > 1e-6 * max(1.0, abs(w)) for g, w in zip(got, want, strict=True))
        row = {"name": "pinned ring reuse check (ring 7, 3 epochs)", "batches": len(got), "mismatches": bad}
        if bad:
            row["error"] = (
                f"{bad} batches differ from their volumes: a slot or device buffer reused in flight"
            )
        self.rows.append(row)
        print(
            f"reuse check: {bad} mismatches in {len(got)} batches (ring of {loader.ring_size()})", flush=True
        )

    def wiring_check(self) -> None:
        """feed_loader as the DataModule calls it on this device: a training set that fits is resident
        (cache.device auto), validation takes the pinned ring; batches on the device, float16 and uint8."""
        from lightning_dicom.config import CacheConfig
        from lightning_dicom.data.dataset import PatchDataset
        from lightning_dicom.data.device_cache import ResidentBatches
        from lightning_dicom.data.device_feed import DeviceFeedLoader
        from lightning_dicom.data.feeding import feed_loader

        vols, host = self.volumes(masks=True), None if self.cuda else HostTransfer()
        kw: dict[str, Any] = dict(cache=CacheConfig(), device=self.device, batch_size=2, threads=2, world=1)
        kw.update(rank=0, shuffle=True, seed=0, transfer=host, free_bytes=None if self.cuda else 2**40)
        train = feed_loader(PatchDataset(vols, self.patch, 2, 0.5), train=True, **kw)
        val = feed_loader(vols, train=False, **kw)
        assert isinstance(train.dataset, ResidentBatches) and isinstance(val, DeviceFeedLoader), (train, val)
        for b in (next(iter(train)), next(iter(val))):
            got = [(k, b[k].device.type, b[k].dtype) for k in ("image", "mask")]
            assert got == [
                ("image", self.device.type, torch.float16),
                ("mask", self.device.type, torch.uint8),
            ]
        self.rows.append({"name": "feed_loader wiring check (resident train, pinned-ring val)", "ok": True})

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
            self.attempt("host->device 256 MB", self.h2d)
            self.attempt("pinned ring reuse check", self.reuse_check)  # first: the correctness gates
            self.attempt("feed_loader wiring check", self.wiring_check)
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
                    self.attempt(f"{name} (run {rnd})", self.fit, f"{name} (run {rnd})", make)
            try:
                self.models()
            except Exception as e:  # its imports: each model row is an attempt of its own
                traceback.print_exc()
                self.rows.append({"name": "model rows", "error": f"{type(e).__name__}: {e}"[:800]})
                self.save()

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
        cls = {"width": a.classifier_width}
        b, bv = a.batch, a.classifier_batch
        seg, vol = f"U-Net w{a.unet_width} patches b{b}", f"classifier w{a.classifier_width} volumes b{bv}"
        cases = [  # (row name, patches (else whole volumes), batch size, model)
            (seg, True, b, lambda: Seg(**unet)),
            (vol, False, bv, lambda: Cls(**cls)),
        ]
        for title, is_patch, size, model in cases:
            resident = functools.partial(self.resident, is_patch, False, size)
            pinned = functools.partial(self.pinned, is_patch, False, size)
            for name, loader in ((f"{title} fed: resident", resident), (f"{title} fed: pinned ring", pinned)):
                self.attempt(name, self.fit, name, loader, model, prec)
            name = f"{title}: batch resident"
            self.attempt(name, self.resident_step, name, model, resident)


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
        note = (
            r.get("dtype", "")
            or (f"{r['mismatches']} mismatches / {r['batches']} batches" if "batches" in r else "")
            or ("ok" if r.get("ok") else "")
        )
        if "error" in r:
            note = f"FAILED: {r['error'][:160]}".replace("|", "/").replace("\n", " ")
        lines.append(f"| {r['name']} | {sps} | {gbs} | {ts} | {note} |")
    return "\n".join(lines)


def summary(rows: list[dict[str, Any]], b: int) -> dict[str, float]:
    """The ratios of the issue's targets, from the rows that ran."""
    by = {r["name"]: r.get("samples_per_s", 0.0) for r in rows}

    def best(prefix: str) -> float:
        return max((v for k, v in by.items() if k.startswith(prefix)), default=0.0)

    out = {}
    res, ceil, monai = best(f"lightning_dicom resident patches b{b}"), best("ceiling"), best("MONAI")
    if ceil:
        out["resident / ceiling"] = res / ceil
    if monai:
        out["resident / MONAI"] = res / monai
    if res:
        out["with masks / without"] = best("lightning_dicom resident patches + label masks") / res
    return out


# --quick fills only what the command line leaves unset
FULL = {"volumes": 32, "shape": [128, 240, 240], "patch": [128, 128, 128], "seconds": 10.0, "warm": 10}
FULL |= {"unet_width": 32, "unet_depth": 4, "classifier_width": 16, "threads": 8}
QUICK = {"volumes": 4, "shape": [24, 40, 40], "patch": [16, 16, 16], "seconds": 0.5, "warm": 2}
QUICK |= {"unet_width": 4, "unet_depth": 2, "classifier_width": 4, "threads": 2}


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    p.add_argument("--quick", action="store_true", help="tiny data and 0.5 s rows: exercises the logic")
    p.add_argument("--volumes", type=int, help="default 32")
    p.add_argument("--shape", type=int, nargs=3, help="z y x, default 128 240 240")
    p.add_argument("--patch", type=int, nargs=3, help="z y x, default 128 128 128")
    p.add_argument("--per-volume", type=int, default=8)
    p.add_argument("--batch", type=int, default=8, help="patches per batch")
    p.add_argument("--volume-batch", type=int, default=2, help="whole volumes per batch (loader-bound row)")
    p.add_argument("--classifier-batch", type=int, default=4)
    p.add_argument("--classifier-width", type=int, help="default 16")
    p.add_argument("--unet-width", type=int, help="default 32")
    p.add_argument("--unet-depth", type=int, help="default 4")
    p.add_argument("--threads", type=int, help="threads of the pinned ring's loader, default 8")
    p.add_argument("--seconds", type=float, help="timed length of each row, default 10")
    p.add_argument("--warm", type=int, help="steps before the clock starts, default 10")
    p.add_argument("--only", default=None, help="comma-separated words: run only rows whose names hold one")
    p.add_argument("--stub-sitk", action="store_true", help="use the SimpleITK stub even if it is installed")
    p.add_argument(
        "--out", type=Path, default=None, help="JSON results (default benchmarks/gpu/results-<device>.json)"
    )
    a = p.parse_args(argv)
    for k, v in (QUICK if a.quick else FULL).items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    if a.out is None:
        a.out = Path(__file__).resolve().parent / f"results-{a.device}.json"
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
    if bench.cuda and not torch.cuda.is_available():
        print(f"--device {args.device}: torch {torch.__version__} sees no CUDA device", file=sys.stderr)
        return 2
    bench.env = {
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(bench.device) if bench.cuda else "cpu",
        "cpus": os.cpu_count(),
        "simpleitk_stub": stubbed,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }
    print(bench.env, flush=True)
    bench.run()
    bench.save()
    print(table(bench.rows))
    print("\n" + "\n".join(f"- {k}: {v:.2f}x" for k, v in summary(bench.rows, args.batch).items()))
    failed = [r["name"] for r in bench.rows if "error" in r]
    print(f"wrote {args.out}" + (f"; {len(failed)} rows FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
