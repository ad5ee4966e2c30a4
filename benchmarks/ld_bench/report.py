"""The Markdown report: header, results table, ratios to each peer, targets, hand-off variants, versions."""

from __future__ import annotations

import argparse
from typing import Any

from .common import LABELS, LD_METHODS, MASK_HU, METHODS, fmt, mb, ratio
from .targets import Results, targets_table

Peaks = dict[str, dict[str, int]]


def report(
    args: argparse.Namespace,
    spec: dict[str, Any],
    results: list[dict[str, Any]],
    peaks: Peaks,
    info: dict[str, Any],
) -> str:
    """The whole report; each row's numbers are merged with its memory peaks first."""
    res = {r["method"]: {**r, **peaks.get(r["method"], {})} for r in results}
    lines = [
        *_header(args, spec, info),
        *_results_table(res),
        *_ratio_table(res),
        *targets_table(res, args.rss_epochs),
        *_variants_table(res.get("variants"), peaks),
        "## Versions\n",
        ", ".join(f"{k} {v}" for k, v in info["versions"].items()) + "\n",
        f"Command: `{' '.join(info['argv'])}`\n",
    ]
    return "\n".join(lines)


def _header(args: argparse.Namespace, spec: dict[str, Any], info: dict[str, Any]) -> list[str]:
    made = "reused" if info["data_reused"] else f"written in {info['data_s']:.0f} s"
    x = "x".join
    return [
        "# lightning_dicom loader benchmark\n",
        f"{info['date']} · {info['cpus']} CPUs ({info['cpu']}) · load average {info['load_start']} at start, "
        f"{info['load_end']} at end (other processes share these cores) · total {info['total_s']:.0f} s\n",
        f"Dataset: {spec['n_series']} synthetic CT series of {x(map(str, args.shape))} (z-y-x) int16 slices, spacing "
        f"{x(map(str, args.spacing))} mm (x-y-z), {mb(info['dicom_bytes'])} of DICOM ({made}). Preprocessing for "
        f"every loader: reorient, linear resample to {args.target_spacing:g} mm isotropic "
        f"(-> {x(map(str, spec['resampled_zyx']))} z-y-x), clip [{args.window[0]:g}, {args.window[1]:g}], scale to "
        f"[0, 1]. DataLoader: batch 1, {args.workers} persistent workers, every batch cast to float32 and summed in "
        f"the main process. Patches: {x(map(str, spec['patch_zyx']))} (z-y-x; {args.patch}^3 capped at the volume), "
        f"{args.per_volume} per volume per epoch. Epochs: {args.epochs} (lightning_dicom: "
        f"{max(args.epochs, args.rss_epochs)}; loaders without a cache, which redo everything each epoch: naive and "
        f"TorchIO Queue {min(args.epochs, args.uncached_epochs)}, MONAI Dataset and TorchIO whole volumes "
        f"{min(args.epochs, args.uncached_epochs, args.reference_epochs)}); warm = median over the epochs after the "
        "first.\n",
        *_masks_header(info.get("masks")),
        "All files are in the page cache (dropping it needs root): cold = first epoch of a fresh loader with "
        "nothing preprocessed, not a cold disk. Imports and lazy library loading happen before timing. Peak "
        "memory: sum over the loader's process tree (main + workers + build pools); RSS counts shared pages once "
        "per process, PSS splits them (sampled every 1 s, so short peaks can be missed).\n",
    ]


def _masks_header(m: dict[str, Any] | None) -> list[str]:
    if not m:
        return []
    made = "reused" if m["reused"] else f"written in {m['seconds']:.0f} s"
    return [
        f"Masks (the patches + masks row): one NIfTI label image per series on the series' own grid, 1 where "
        f"HU > {MASK_HU:g} (the spine-like disc, and the lesion in every other series), "
        f"{m['foreground_fraction'] * 100:.2f}% of the voxels, {mb(m['nifti_bytes'])} of .nii.gz ({made}); "
        f"`masks.csv` at the data root lists them by SeriesInstanceUID.\n"
    ]


def _notes(r: dict[str, Any]) -> str:
    notes = [r.get("cache_note", "")] if r.get("cache_bytes") else []
    if r.get("cache_ram_bytes"):
        notes.append(f"{mb(r['cache_ram_bytes'])} cached in RAM")
    if r.get("warm_nocast_per_s"):
        notes.append(
            f"{r['warm_nocast_per_s']:.1f} {r['kind']}/s with the float16 batches left uncast (in a GPU run "
            "the cast happens on the device)"
        )
    if r.get("breakdown"):
        notes.append(
            "cold = " + " + ".join(f"{k.removesuffix('_s')} {v:.1f} s" for k, v in r["breakdown"].items())
        )
    return "; ".join(n for n in [*notes, *r.get("notes", [])] if n)


def _results_table(res: Results) -> list[str]:
    out = [
        "## Results\n",
        "| loader | cold first epoch (s) | warm volumes/s | warm patches/s | cache on disk | peak RSS (tree) | "
        "peak PSS (tree) | notes |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for m in METHODS[:-1]:
        r = res.get(m)
        if r is None:
            continue
        if "error" in r or "skipped" in r:
            what = f"error: {r['error'][:160]}" if "error" in r else f"skipped: {r['skipped']}"
            out.append(f"| {LABELS[m]} | | | | | | | {what} |")
            continue
        vol = fmt(r.get("warm_per_s"), 2) if r["kind"] == "volumes" else ""
        pat = fmt(r.get("warm_per_s"), 1) if r["kind"] == "patches" else ""
        cache = mb(r["cache_bytes"]) if r.get("cache_bytes") else "none"
        out.append(
            f"| {LABELS[m]} | {fmt(r.get('cold_s'), 1)} | {vol} | {pat} | {cache} | {mb(r.get('peak_rss'))} | "
            f"{mb(r.get('peak_pss'))} | {_notes(r)} |"
        )
    return [*out, ""]


def _ratio_table(res: Results) -> list[str]:
    ld_v, ld_p = res.get("ld_volumes", {}), res.get("ld_patches", {})
    out = [
        "## lightning_dicom relative to each peer\n",
        "| peer | warm samples/s: lightning_dicom / peer | cold first epoch: peer / lightning_dicom |",
        "|---|---:|---:|",
    ]
    for m in METHODS:
        r = res.get(m, {})
        if m in LD_METHODS or m == "variants":
            continue
        if not r or "error" in r or "skipped" in r:
            continue
        patches = r.get("kind") == "patches"
        wr = ratio((ld_p if patches else ld_v).get("warm_per_s"), r.get("warm_per_s"))
        cr = ratio(r.get("cold_s"), ld_v.get("cold_s"))
        x = "n/a" if wr is None else f"{fmt(wr, 2)}x"
        out.append(
            f"| {LABELS[m]} | {x} ({'patches' if patches else 'volumes'}) | "
            f"{'n/a' if cr is None else fmt(cr, 2) + 'x'} |"
        )
    return [*out, ""]


def _variant_rows(rows: list[dict[str, Any]], peaks: Peaks, unit: str) -> list[str]:
    out = [f"| variant | {unit}/s | peak PSS (tree) | worker RSS after (MB) |", "|---|---:|---:|---|"]
    for row in rows:
        pk = peaks.get(f"variants:{row['key']}", {})
        wm = ", ".join(f"{x['rss'] / 2**20:.0f}" for x in row["worker_mem"]) or "no workers"
        out.append(f"| {row['label']} | {fmt(row['per_s'], 1)} | {mb(pk.get('peak_pss'))} | {wm} |")
    return [*out, ""]


def _variants_table(var: dict[str, Any] | None, peaks: Peaks) -> list[str]:
    if not var:
        return []
    if "error" in var or "skipped" in var:
        return ["## DataLoader hand-off variants\n", f"{var.get('error') or var.get('skipped')}\n"]
    out = [
        f"## Patch hand-off variants (same cache, batch {var['batch_size']}, {var['patches_per_pass']} patches "
        f"per pass, median of {var['passes']} passes after a warm-up pass)\n",
        *_variant_rows(var["rows"], peaks, "patches"),
    ]
    if var.get("volume_rows"):
        out += [
            f"## Whole-volume hand-off variants (same cache, batch 1, {var['volumes_per_pass']} volumes per pass, "
            f"median of {var['passes']} passes after a warm-up pass)\n",
            *_variant_rows(var["volume_rows"], peaks, "volumes"),
        ]
    f = var.get("floor")
    if f:
        out.append(
            f"Single-thread costs in the main process: opening a .npy memmap {f['memmap_open_ms']:.3f} ms; "
            f"copying one {f['patch_mb_f16']:.1f} MB float16 patch out of it {f['crop_f16_ms']:.2f} ms, "
            f"copying it to float32 (torch cast) {f['crop_to_f32_ms']:.2f} ms; torch float16 -> float32 cast "
            f"of one patch already in memory {f['torch_cast_ms']:.2f} ms.\n"
        )
    return out
