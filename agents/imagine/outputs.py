"""What ``python -m agents.imagine`` writes: the side-by-side video, the contact sheet, the
metrics table and the markdown report.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

METRICS, VIDEO, SHEET, REPORT = "metrics.json", "imagination.mp4", "contact_sheet.png", "report.md"


# ---------------------------------------------------------------------------------------------
# Outputs: video, contact sheet, table
# ---------------------------------------------------------------------------------------------
def side_by_side(left: np.ndarray, right: np.ndarray, gap: int = 2) -> np.ndarray:
    """Two frame sequences [L, H, W, 3] -> [L, H, 2W + gap, 3] with a white gap."""
    sep = np.full((*left.shape[:2], gap, 3), 255, np.uint8)
    return np.concatenate([left, sep, right], axis=2)


def write_outputs(out: Path, rollouts: dict[str, Any], *, clips: int = 4, fps: float = 4.0,
                  scale: int = 4, video: bool = True) -> list[str]:
    """The side-by-side video (real | imagined, both narrations as subtitles) of the first
    ``clips`` clips, and a contact sheet; returns the file names written."""
    import cv2

    from collect.video import hold_subtitles, write_video

    ctx, real, imag = (rollouts[k].numpy() for k in ("context", "real", "imagined"))
    n = min(clips, len(real))
    written = []
    if video:
        frames, subs = [], []
        for b in range(n):
            C, K = ctx.shape[1], real.shape[1]
            frames.append(side_by_side(ctx[b], ctx[b]))
            frames.append(side_by_side(real[b], imag[b]))
            real_lines = [["real: " + "; ".join(s)] if s else [] for s in rollouts["real_narration"][b]]
            imag_lines = [["imagined: " + "; ".join(s)] if s else []
                          for s in rollouts["imagined_narration"][b]]
            held_r = hold_subtitles(real_lines, hold=3, max_lines=1)
            held_i = hold_subtitles(imag_lines, hold=3, max_lines=1)
            subs += [[f"clip {b}: context {t + 1}/{C} (real | real)"] for t in range(C)]
            subs += [[f"clip {b}: t+{h + 1} (real | imagined)", *held_r[h], *held_i[h]]
                     for h in range(K)]
        write_video(out / VIDEO, np.concatenate(frames), subs, scale=scale, fps=fps, band_lines=3)
        written.append(VIDEO)
    # contact sheet: per clip a row of real frames over a row of imagined ones at chosen horizons
    K = real.shape[1]
    hs = sorted({h for h in (1, 2, 4, 8, 16, 32, K) if h <= K})
    H, W = real.shape[2:4]
    pad = 2
    rows = []
    for b in range(n):
        for seq, first in ((real[b], ctx[b, -1]), (imag[b], ctx[b, -1])):
            tiles = [first] + [seq[h - 1] for h in hs]
            row = np.full((H + pad, (W + pad) * len(tiles), 3), 255, np.uint8)
            for i, tile in enumerate(tiles):
                row[:H, i * (W + pad): i * (W + pad) + W] = tile
            rows.append(row)
    sheet = np.concatenate(rows)
    sheet = np.repeat(np.repeat(sheet, scale // 2 or 1, 0), scale // 2 or 1, 1)
    label = np.zeros((18, sheet.shape[1], 3), np.uint8)
    cv2.putText(label, "rows: real / imagined per clip; cols: last real, t+" + ", t+".join(map(str, hs)),
                (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    cv2.imwrite(str(out / SHEET), cv2.cvtColor(np.concatenate([label, sheet]), cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_PNG_COMPRESSION, 9])
    written.append(SHEET)
    return written


def table(metrics: dict[str, Any], horizons: tuple[int, ...] = (1, 4, 16)) -> str:
    """A markdown table of the per-horizon metrics at ``horizons``."""
    rows = ["| horizon | metric | imagined | best of k | copy last | ceiling (recon) |",
            "|---:|---|---:|---:|---:|---:|"]
    for r in metrics["per_horizon"]:
        if r["horizon"] not in horizons:
            continue
        for m in ("psnr", "ssim", "code_accuracy", "event_f1"):
            v = r[m]
            cells = [v.get(k) for k in ("imagined", "best_of_k", "copy_last", "ceiling")]
            rows.append(f"| {r['horizon']} | {m} | " + " | ".join(
                "–" if c is None else f"{c:.3f}" for c in cells) + " |")
    return "\n".join(rows)


def report(out: dict[str, Any], horizons: tuple[int, ...] = (1, 4, 16)) -> str:
    """The run's markdown report: metrics vs the baselines, the language ablation, the decoding
    schemes (whichever the run has)."""
    m = out["metrics"]
    hs = tuple(h for h in horizons if h <= m["horizon"]) or (m["horizon"],)
    parts = [(f"## Imagined vs baselines ({m['condition']}, {m['decoding']} decoding, {m['tokens']}"
             f" tokens; {m['clips']} clips, context {m['context']}, best of {m['samples']})"),
             table(m, hs)]
    if "language_ablation" in out:
        rows = ["| condition | horizon | psnr | ssim | code acc | event F1 | best-of-k psnr |",
                "|---|---:|---:|---:|---:|---:|---:|"]
        for cond, r in out["language_ablation"].items():
            for row in r["per_horizon"]:
                if row["horizon"] in hs:
                    cells = [row["psnr"]["imagined"], row["ssim"]["imagined"],
                             row["code_accuracy"]["imagined"], row["event_f1"]["imagined"],
                             row["psnr"].get("best_of_k")]
                    rows.append(f"| {cond} | {row['horizon']} | " + " | ".join(
                        "–" if c is None else f"{c:.3f}" for c in cells) + " |")
        parts += ["## Language ablation (imagined frames, argmax decoding)", "\n".join(rows)]
    if "decoding" in out:
        rows = ["| decoding | passes | code acc | psnr | ssim | CPU ms / frame |",
                "|---|---:|---:|---:|---:|---:|"]
        rows += [f"| {r['decoding']} | {r['passes']} | {r['code_accuracy']:.3f} | {r['psnr']:.2f} "
                 f"| {r['ssim']:.3f} | {r['cpu_ms_per_frame']:.2f} |" for r in out["decoding"]]
        parts += ["## Decoding schemes (1-step predictions from real frames)", "\n".join(rows)]
    from agents.imagine.study import report_sections

    parts += report_sections(out)
    return "\n\n".join(parts) + "\n"
