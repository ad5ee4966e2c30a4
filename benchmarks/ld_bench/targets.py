"""The issues' targets (3: loader speed, cache size, memory growth; 5: masks' cost), judged and written up."""

from __future__ import annotations

from typing import Any

from .common import LABELS, LD_METHODS, MASK_BYTES_MAX, MASK_COST_MAX, MASK_HU, fmt, mb, pct, ratio

Results = dict[str, dict[str, Any]]


def growth(mem: list[list[dict[str, int]]], key: str, upto: int) -> float | None:
    """Largest per-worker growth of ``key`` from after epoch 1 to after epoch ``upto`` (fraction)."""
    if len(mem) < 2:
        return None
    last = mem[min(upto, len(mem)) - 1]
    first = {w["pid"]: w[key] for w in mem[0]}
    g = [(w[key] - first[w["pid"]]) / first[w["pid"]] for w in last if first.get(w["pid"])]
    return max(g) if g else None


def mask_cost(res: Results, key: str = "warm_per_s") -> float | None:
    """Share of lightning_dicom's warm patch rate that the masks take: 1 - with / without."""
    r = ratio(res.get("ld_patches_masks", {}).get(key), res.get("ld_patches", {}).get(key))
    return None if r is None else 1.0 - r


def targets(res: Results, rss_epochs: int) -> list[tuple[str, str, str, bool | None]]:
    """The issue's targets as (target, measured, threshold, met) rows (met is None when not measured)."""

    def get(m: str, k: str) -> Any:
        return res.get(m, {}).get(k)

    ld_v, ld_p = "ld_volumes", "ld_patches"
    checks = [
        (
            "warm whole-volume vs MONAI PersistentDataset",
            ratio(get(ld_v, "warm_per_s"), get("monai_persistent", "warm_per_s")),
            2.0,
            True,
        ),
        (
            "warm whole-volume vs naive",
            ratio(get(ld_v, "warm_per_s"), get("naive", "warm_per_s")),
            10.0,
            True,
        ),
        (
            "warm patches vs TorchIO Queue",
            ratio(get(ld_p, "warm_per_s"), get("torchio_queue", "warm_per_s")),
            30.0,
            True,
        ),
        (
            "cold first epoch vs MONAI PersistentDataset first epoch",
            ratio(get("monai_persistent", "cold_s"), get(ld_v, "cold_s")),
            5.0,
            True,
        ),
        (
            "cache on disk vs PersistentDataset's",
            ratio(get(ld_v, "cache_bytes"), get("monai_persistent", "cache_bytes")),
            0.6,
            False,
        ),
    ]
    rows = []
    for name, v, thr, at_least in checks:
        ok = None if v is None else (v >= thr if at_least else v <= thr)
        rows.append((name, "n/a" if v is None else f"{v:.2f}x", f"{'>=' if at_least else '<='} {thr:g}x", ok))
    g = growth(get(ld_v, "worker_mem") or [], "rss", rss_epochs)
    rows.append(
        (
            f"loader-process RSS growth over {rss_epochs} epochs (volumes)",
            pct(g),
            "< 5%",
            None if g is None else g < 0.05,
        )
    )
    cost = mask_cost(res)
    rows.append(
        (
            "issue 5: masks' cost in warm patch throughput (1 - with / without masks)",
            "n/a" if cost is None else f"{cost * 100:.1f}%",
            f"<= {MASK_COST_MAX * 100:g}%",
            None if cost is None else cost <= MASK_COST_MAX,
        )
    )
    mr = ratio(get("ld_patches_masks", "mask_payload"), get("ld_patches_masks", "image_payload"))
    fr = ratio(get("ld_patches_masks", "mask_bytes"), get("ld_patches_masks", "image_bytes"))
    rows.append(
        (
            "issue 5: cached mask bytes vs image bytes (.mask.npy arrays / image .npy arrays)",
            "n/a" if mr is None else f"{mr:.3f}x (files incl. .npy headers {fr:.5f}x)",
            f"<= {MASK_BYTES_MAX:g}x",
            None if mr is None else mr <= MASK_BYTES_MAX,
        )
    )
    return rows


def targets_table(res: Results, rss_epochs: int) -> list[str]:
    """The targets table, the masks paragraph and lightning_dicom's per-epoch loader memory, as Markdown."""
    out = [
        "## Targets (issues 3 and 5)\n",
        "| target | measured | threshold | status |",
        "|---|---:|---:|---|",
    ]
    for name, measured, thr, ok in targets(res, rss_epochs):
        out.append(
            f"| {name} | {measured} | {thr} | {'n/a' if ok is None else 'met' if ok else '**not met**'} |"
        )
    out.append("")
    out += masks_notes(res)
    for m in LD_METHODS:
        mem = res.get(m, {}).get("worker_mem")
        if not mem:
            continue
        per_epoch = " · ".join(
            f"e{e + 1}: "
            + ", ".join(f"{x['rss'] / 2**20:.0f}/{x['uss'] / 2**20:.0f}/{x['pss'] / 2**20:.0f}" for x in ws)
            for e, ws in enumerate(mem)
        )
        last = min(rss_epochs, len(mem))
        out.append(
            f"Loader process memory (DataLoader workers, or the main process for the threads backend) after each epoch, {LABELS[m]} (MB per process, RSS/USS/PSS): {per_epoch}. "
            f"Growth e1 -> e{last}: RSS {pct(growth(mem, 'rss', rss_epochs))}, "
            f"USS {pct(growth(mem, 'uss', rss_epochs))}.\n"
        )
    return out


def masks_notes(res: Results) -> list[str]:
    """The masks row against the image-only patches row, in words (issue 5)."""
    m, p, v = res.get("ld_patches_masks", {}), res.get("ld_patches", {}), res.get("ld_volumes", {})
    if not m or "error" in m or "skipped" in m:
        return []
    out = [_masks_throughput(res, m, p)]
    b = m.get("breakdown", {})
    ref = (v.get("breakdown") or {}).get("cache_build_s") or (p.get("breakdown") or {}).get("cache_build_s")
    build = b.get("cache_build_s")
    if build is not None:
        extra = (
            (
                f"; the image-only cache build of this run took {ref:.1f} s, so masks add {build - ref:.1f} s "
                f"({fmt(build / ref, 2)}x)"
            )
            if ref
            else ""
        )
        out.append(
            f"Mask cache, cold: index scan {b.get('index_scan_s', 0):.1f} s + cache build (images and masks) "
            f"{build:.1f} s + setup {b.get('setup_s', 0):.1f} s{extra}."
        )
    if m.get("image_bytes"):
        ib, mb_, fb = m["image_bytes"], m["mask_bytes"], m["fg_bytes"]
        out.append(
            f"Mask cache on disk: images {mb(ib)} (.npy), masks {mb(mb_)} (.mask.npy, "
            f"{mb_ / ib:.5f}x the image files, {m['mask_payload'] / m['image_payload']:.3f}x their arrays), "
            f"foreground lists {mb(fb)} (.fg.npy, {fb / ib * 100:.2f}% of the image files; with them the mask "
            f"side is {(mb_ + fb) / ib:.3f}x)."
        )
    st = m.get("mask_stats")
    if st:
        out.append(
            f"{st['with_foreground']} of {st['samples']} patches had foreground in their mask "
            f"({st['dtype']} in the batch)."
        )
    if m.get("mask_agreement") is not None:
        out.append(
            f"Check: the first cached mask agrees with its image thresholded at {MASK_HU:g} HU on "
            f"{m['mask_agreement']:.2%} of the voxels."
        )
    return [" ".join(out) + "\n"]


def _masks_throughput(res: Results, m: dict[str, Any], p: dict[str, Any]) -> str:
    cost, cost_nc = mask_cost(res), mask_cost(res, "warm_nocast_per_s")
    if cost is None:
        return (
            "Masks (issue 5): the image-only patches row did not run, so the throughput cost is not measured."
        )
    return (
        f"Masks (issue 5): warm {fmt(m.get('warm_per_s'), 1)} patches/s with masks vs "
        f"{fmt(p.get('warm_per_s'), 1)} without, so masks cost {cost * 100:.1f}% of warm patch throughput "
        f"(uint8 mask cropped beside the image in the loader threads, cast to int64 by "
        f"on_after_batch_transfer in the main process, then read whole); with the batches left uncast (on a GPU "
        f"the int64 cast happens on the device) {fmt(m.get('warm_nocast_per_s'), 1)} vs "
        f"{fmt(p.get('warm_nocast_per_s'), 1)} patches/s, a cost of "
        f"{'n/a' if cost_nc is None else f'{cost_nc * 100:.1f}%'}. Rows measured one after the other in "
        "one process: compare with the load average in mind."
    )
