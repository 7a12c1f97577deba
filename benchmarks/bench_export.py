"""Fidelity and size of the LeRobot export's candidate video settings on Crafter frames.

    python benchmarks/bench_export.py [--src DIR] [--episodes 4] [--max-episode-steps 200]

Encodes the same frames (a BYOG dataset, by default a fresh random-policy Crafter collection)
with each candidate exactly as ``python -m collect.export lerobot`` writes them (one mp4, a
keyframe every 2 frames), decodes with PyAV the way LeRobot's pyav backend does, and prints MAE
and max error per channel value (0..255), PSNR and bytes; the last line is one JSON object.
The default (``h264``: 4:4:4 at crf 0) and ``--lossless`` in :mod:`collect.lerobot` were chosen
from this table. 4:2:0 chroma subsampling (AV1 through SVT-AV1, LeRobot's default, and H.264
yuv420p) blurs colour across Crafter's 7-pixel tiles whatever the crf; 4:4:4 does not.

One run on 2 shared cores (other agents' jobs running), 4 episodes / 420 frames of 64x64 Crafter
(random policy, seed 0, --max-episode-steps 400; source dataset 0.22 MB on disk, raw 5.2 MB).
torchcodec 0.13 (LeRobot's default backend, FFmpeg 5.1) decoded each of these settings to the same
bytes as PyAV (checked outside this script: on a 435-frame set, and on the exports through
LeRobot 0.4.4's ``LeRobotDataset``):

| setting | MAE | max | PSNR dB | video bytes | note |
|---|---|---|---|---|---|
| av1 yuv420p crf 30 | 6.81 | 224 | 26.2 | 267 k | the former default |
| av1 yuv420p crf 10 | 6.28 | 176 | 26.6 | 431 k | 4:2:0: the crf hardly matters |
| h264 yuv420p crf 18 | 6.49 | 190 | 26.5 | 482 k | |
| h264 yuv444p crf 18 | 2.41 | 76 | 36.9 | 658 k | over the MAE 2 bound |
| h264 yuv444p crf 12 | 1.27 | 42 | 42.3 | 946 k | smaller, but tile edges visibly off |
| **h264 yuv444p crf 0** | 0.31 | 2 | 53.2 | 1112 k | **default**: YUV-lossless, only RGB<->YUV rounding |
| h264 gbrp crf 18 (libx264rgb) | 1.04 | 67 | 44.2 | 1035 k | |
| **h264 gbrp lossless** | 0 | 0 | inf | 1488 k | **--lossless** (libx264rgb crf 0) |

Encoding took 0.15-0.46 s per setting (wall, niced, load average ~6).
The default costs 4x AV1's bytes for 22x less error, and its largest error is 2 of 255 (no pixel
visibly changes), where every lossy setting of similar size leaves some tile edges 42+ off.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


@dataclass
class BenchConfig:
    """Settings of the export codec benchmark."""

    src: Path | None = None
    """BYOG dataset to encode (default: collect a random-policy Crafter dataset in a temp dir)."""
    episodes: int = 4
    """Episodes to collect when no --src is given."""
    max_episode_steps: int = 200
    """Episode length cap when collecting."""
    fps: int = 10
    """Frame rate written into the videos."""


def candidates() -> list:
    """The settings compared: every codec's default and exact mode, and lower/higher crf."""
    from collect.lerobot import VideoSettings, video_settings

    return [
        video_settings("av1"), video_settings("av1", crf=10),
        VideoSettings("h264", "libx264", "yuv420p", "yuv420p", 18),
        video_settings("h264", crf=18), video_settings("h264", crf=12), video_settings("h264"),
        VideoSettings("h264", "libx264rgb", "rgb24", "gbrp", 18), video_settings("h264", lossless=True),
    ]


def measure(frames, settings, path: Path, fps: int) -> dict[str, float]:
    """Encodes ``frames`` with ``settings`` and returns MAE/max/PSNR, bytes and encode seconds."""
    from collect.lerobot import encode_video, fidelity, video_errors

    t0 = time.perf_counter()
    encode_video(path, iter(frames), fps, settings)
    seconds = time.perf_counter() - t0
    return {**fidelity(video_errors(path, frames)), "bytes": path.stat().st_size, "encode_s": seconds}


def main(cfg: BenchConfig) -> list[dict]:
    """Prints one table row per candidate and the rows as JSON."""
    import numpy as np

    from collect.dataset import open_dataset

    with tempfile.TemporaryDirectory() as tmp:
        src = cfg.src
        if src is None:
            from collect.rollout import CollectConfig, collect_dataset

            src = Path(tmp) / "crafter"
            collect_dataset(CollectConfig(env="crafter", out=src, episodes=cfg.episodes,
                                  max_episode_steps=cfg.max_episode_steps, progress=False))
        ds = open_dataset(src)
        frames = list(np.concatenate([ds.episode(i).frames for i in range(ds.num_episodes)]))
        source = sum(f.stat().st_size for f in Path(src).rglob("*") if f.is_file())
        print(f"{len(frames)} frames {frames[0].shape}, source dataset {source} bytes, raw {sum(f.nbytes for f in frames)}")
        print(f"| {'setting':30s} | {'MAE':>6s} | {'max':>4s} | {'PSNR dB':>7s} | {'bytes':>9s} | {'encode s':>8s} |")
        rows = []
        for i, s in enumerate(candidates()):
            label = s.describe() + (f" ({s.encoder})" if s.encoder == "libx264rgb" and not s.exact else "")
            m = measure(frames, s, Path(tmp) / f"c{i}.mp4", cfg.fps)
            rows.append({"setting": label, **{k: round(v, 3) for k, v in m.items()}})
            print(f"| {label:30s} | {m['mae']:6.3f} | {m['max']:4.0f} | {m['psnr']:7.2f} | {m['bytes']:9d} "
                  f"| {m['encode_s']:8.2f} |")
    print(json.dumps(rows))
    return rows


if __name__ == "__main__":
    import tyro

    main(tyro.cli(BenchConfig))
