"""Export a BYOG dataset as a LeRobot v3.0 dataset (``python -m collect.export lerobot``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import tyro

from collect.errors import ExportError, UsageError
from collect.lerobot.layout import (
    CAMERA_KEY,
    CHUNKS_SIZE,
    CODEBASE_VERSION,
    DATA_PATH,
    EPISODES_PATH,
    QUANTILES,
    VIDEO_PATH,
    language_events,
)
from collect.lerobot.video import (
    DEFAULT_VCODEC,
    NO_ERRORS,
    VideoSettings,
    encode_video,
    fidelity,
    merge_errors,
    video_errors,
    video_settings,
)


# ============================================================================ export
@dataclass
class ExportSummary:
    """What :func:`export_lerobot` wrote and how close its video is to the source frames."""

    out: Path
    """The LeRobot dataset root."""
    video: VideoSettings
    """The encoder settings used."""
    frames: int
    """Frames written (and decoded back)."""
    mae: float
    """Mean absolute error per channel value (0..255) of the decoded video against the source."""
    max_error: float
    """Largest absolute error of any channel value."""
    psnr: float
    """Peak signal-to-noise ratio in dB (inf when exact)."""
    video_bytes: int
    """Bytes of the video files."""
    total_bytes: int
    """Bytes of the whole export on disk."""
    source_bytes: int
    """Bytes of the source dataset's files."""

    def __fspath__(self) -> str:
        # export_lerobot returned the dataset root before it measured fidelity: callers that
        # pass its result on as a path (shutil, open, Path(...)) keep working
        return str(self.out)

    def describe(self) -> str:
        """Two lines for the command line."""
        psnr = "inf dB (exact)" if self.psnr == float("inf") else f"{self.psnr:.1f} dB"
        return (f"video {self.video.describe()}: MAE {self.mae:.3f} per channel (max {self.max_error:.0f}), "
                f"PSNR {psnr} against the source over {self.frames} frames (decoded with PyAV)\n"
                f"on disk: {_mb(self.total_bytes)} ({_mb(self.video_bytes)} video; source dataset "
                f"{_mb(self.source_bytes)})")


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB"


def _tree_bytes(root: Path) -> int:
    return sum(f.stat().st_size for f in root.rglob("*") if f.is_file() and not f.is_symlink())


def export_lerobot(src: str | Path, out: str | Path, *, language: bool = False, vcodec: str = DEFAULT_VCODEC,
                   episodes_per_file: int = 100, crf: int | None = None, lossless: bool = False) -> ExportSummary:
    """Writes the BYOG dataset ``src`` as a LeRobot v3.0 dataset at ``out`` (see the module doc),
    then decodes its videos to measure them against the source frames.

    Args:
        src: BYOG dataset directory.
        out: New directory (must not hold files).
        language: Also write ``language_events`` (annotations, and narrations when present).
        vcodec: A :data:`VIDEO_CODECS` name: ``h264`` (default: 4:4:4, near-lossless at the
            default crf) or ``av1`` (SVT-AV1, LeRobot's default; 4:2:0, smaller, blurs small tiles).
        episodes_per_file: Episodes per data/video file (LeRobot packs many episodes per file).
        crf: Encoder quality (default 0 for h264, 30 for av1; lower is better and bigger).
        lossless: Exact pixels (H.264 in RGB); an error together with ``crf``.

    Returns:
        Where it went, the settings, MAE/max/PSNR against the source and the bytes on disk.
    """
    from collect.dataset import open_dataset

    ds = open_dataset(src)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ExportError(f"{out} already exists and is not empty; choose another --out.")
    settings = video_settings(vcodec, crf, lossless)
    fps = round(float(ds.info.get("fps") or 10))
    errors = dict(NO_ERRORS)
    tasks: dict[str, int] = {}
    episodes, stats = [], _Stats()
    positions = list(range(ds.num_episodes))
    for file_index, start in enumerate(range(0, len(positions), episodes_per_file)):
        group = [ds.episode(p) for p in positions[start:start + episodes_per_file]]
        offset = episodes[-1]["dataset_to_index"] if episodes else 0
        tables, metas = _episode_tables(ds.info, group, tasks, fps, language, offset)
        where = {"chunk_index": file_index // CHUNKS_SIZE, "file_index": file_index % CHUNKS_SIZE}
        data = pa.concat_tables(tables)
        _write_parquet(data, out / DATA_PATH.format(**where))
        video = out / VIDEO_PATH.format(video_key=CAMERA_KEY, **where)
        frames = [f for ep in group for f in ep.frames]
        encode_video(video, iter(frames), fps, settings)
        errors = merge_errors(errors, video_errors(video, frames))
        stats.add(data, [ep.frames for ep in group])
        _locate_episodes(metas, group, where, fps)
        episodes += metas
    if not episodes:
        raise ExportError(f"{src} has no episodes to export.")
    _write_parquet(pa.Table.from_pylist(episodes), out / EPISODES_PATH.format(chunk_index=0, file_index=0))
    _write_tasks(out, tasks)
    features = _features(ds.info, language, fps, settings)
    (out / "meta" / "stats.json").write_text(json.dumps(stats.finish(features), indent=2))
    info = _info(fps, episodes, tasks, features)
    (out / "meta" / "info.json").write_text(json.dumps(info, indent=4))
    quality = fidelity(errors)
    return ExportSummary(out, settings, frames=info["total_frames"], mae=quality["mae"], max_error=quality["max"],
                         psnr=quality["psnr"], video_bytes=_tree_bytes(out / "videos"),
                         total_bytes=_tree_bytes(out), source_bytes=_tree_bytes(Path(src)))


def _locate_episodes(metas: list[dict[str, Any]], group: list[Any], where: dict[str, int], fps: int) -> None:
    """Adds to each episode's metadata row where its rows and frames sit: the data/video file it
    shares with the rest of ``group``, and its time span inside that video, because LeRobot
    finds an episode's frames by seeking to ``from_timestamp`` in a file of many episodes."""
    clock = 0.0
    for meta, ep in zip(metas, group):
        length = len(ep.frames) / fps
        meta.update({"data/chunk_index": where["chunk_index"], "data/file_index": where["file_index"],
                     f"videos/{CAMERA_KEY}/chunk_index": where["chunk_index"],
                     f"videos/{CAMERA_KEY}/file_index": where["file_index"],
                     f"videos/{CAMERA_KEY}/from_timestamp": clock,
                     f"videos/{CAMERA_KEY}/to_timestamp": clock + length,
                     "meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0})
        clock += length


def _info(fps: int, episodes: list[dict[str, Any]], tasks: dict[str, int],
          features: dict[str, Any]) -> dict[str, Any]:
    """``meta/info.json``: the totals, path templates and features LeRobot reads first to load
    the dataset (the file size limits are LeRobot's defaults, recorded, not enforced here)."""
    return {
        "codebase_version": CODEBASE_VERSION, "robot_type": None, "fps": fps,
        "total_episodes": len(episodes), "total_frames": episodes[-1]["dataset_to_index"],
        "total_tasks": len(tasks), "chunks_size": CHUNKS_SIZE, "data_files_size_in_mb": 100,
        "video_files_size_in_mb": 200, "data_path": DATA_PATH, "video_path": VIDEO_PATH,
        "splits": {"train": f"0:{len(episodes)}"}, "features": features,
    }


def _episode_tables(info: dict[str, Any], group: list[Any], tasks: dict[str, int], fps: int,
                    language: bool, offset: int) -> tuple[list[pa.Table], list[dict[str, Any]]]:
    tables, metas = [], []
    for ep in group:
        n = len(ep.frames)
        task = str(ep.record.get("mission") or info.get("env") or "unknown")
        task_index = tasks.setdefault(task, len(tasks))
        idx = int(ep.record.get("episode_index", ep.index))
        cols: dict[str, Any] = {
            "action": _actions(ep.actions, n),
            "next.reward": pa.array(np.r_[np.asarray(ep.rewards, np.float32)[1:], np.float32(0)], pa.float32()),
            "next.done": pa.array(np.r_[np.asarray(ep.terminated, bool)[1:], bool(ep.terminated[-1])]),
            "timestamp": pa.array(np.arange(n, dtype=np.float32) / np.float32(fps), pa.float32()),
            "frame_index": pa.array(np.arange(n, dtype=np.int64)),
            "episode_index": pa.array(np.full(n, idx, np.int64)),
            "index": pa.array(np.arange(offset, offset + n, dtype=np.int64)),
            "task_index": pa.array(np.full(n, task_index, np.int64)),
        }
        if language:
            narr = (ep.extra or {}).get("narration")
            cols["language_events"] = language_events(ep.annotations, None if narr is None else [list(x) for x in narr])
        tables.append(pa.table(cols))
        metas.append({"episode_index": idx, "tasks": [task], "length": n,
                      "dataset_from_index": offset, "dataset_to_index": offset + n})
        offset += n
    return tables, metas


def _actions(actions: np.ndarray, n: int) -> pa.Array:
    """Our actions with the last row's "no action" replaced by the previous action (LeRobot
    has an action on every row; the importer drops it again)."""
    acts = np.array(actions, copy=True)
    if n > 1:
        acts[-1] = acts[-2]
    elif acts.ndim == 1:
        acts[-1] = 0
    else:
        acts[-1] = 0.0
    if acts.ndim == 1:
        return pa.array(acts.astype(np.int64))
    return pa.FixedSizeListArray.from_arrays(pa.array(acts.astype(np.float32).ravel()), acts.shape[1])


def _features(info: dict[str, Any], language: bool, fps: int, video: VideoSettings) -> dict[str, Any]:
    h, w, c = info["frame_shape"]
    space = info.get("action_space") or {}
    if space.get("type") == "Discrete":
        action = {"dtype": "int64", "shape": [1], "names": None}
        if info.get("action_names"):
            action["names"] = {"discrete": list(info["action_names"])}
    else:
        layout = space.get("layout") or []
        names = [f"{e.get('key') or 'action'}.{i}" if e["size"] > 1 else (e.get("key") or "action")
                 for e in layout for i in range(e["size"])]
        if len(info.get("action_names") or []) == len(names):  # e.g. joint names of an import
            names = list(info["action_names"])
        action = {"dtype": "float32", "shape": [len(names)], "names": names}
    scalar = {"shape": [1], "names": None}
    feats: dict[str, Any] = {
        CAMERA_KEY: {"dtype": "video", "shape": [h, w, c], "names": ["height", "width", "channels"],
                     "info": {"video.height": h, "video.width": w, "video.codec": video.vcodec,
                              "video.pix_fmt": video.stream_pix_fmt, "video.g": 2, "video.crf": video.crf,
                              "video.is_depth_map": False,
                              "video.fps": fps, "video.channels": c, "has_audio": False}},
        "action": action,
        "next.reward": {"dtype": "float32", **scalar}, "next.done": {"dtype": "bool", **scalar},
        "timestamp": {"dtype": "float32", **scalar}, "frame_index": {"dtype": "int64", **scalar},
        "episode_index": {"dtype": "int64", **scalar}, "index": {"dtype": "int64", **scalar},
        "task_index": {"dtype": "int64", **scalar},
    }
    if language:
        feats["language_events"] = {"dtype": "language", "shape": [1], "names": None}
    return feats


class _Stats:
    """meta/stats.json: per numeric feature min/max/mean/std/count/quantiles; per-channel image
    statistics in [0, 1] with shape [3, 1, 1], as LeRobot computes them."""

    def __init__(self) -> None:
        self.columns: dict[str, list[np.ndarray]] = {}
        self.pixels: list[np.ndarray] = []

    def add(self, table: pa.Table, frames: list[np.ndarray]) -> None:
        """One data file's rows and its episodes' frames (pixels subsampled: ~16 frames each)."""
        for f in frames:
            self.pixels.append(f[:: max(1, len(f) // 16)].reshape(-1, f.shape[-1]))
        for name in table.column_names:
            if name == "language_events":
                continue
            col = table.column(name).combine_chunks()
            if isinstance(col.type, pa.FixedSizeListType):
                arr = col.flatten().to_numpy().reshape(len(col), -1)
            else:
                arr = col.to_numpy(zero_copy_only=False).reshape(-1, 1)
            self.columns.setdefault(name, []).append(arr.astype(np.float64))

    def finish(self, features: dict[str, Any]) -> dict[str, Any]:
        out = {name: _summary(np.concatenate(parts)) for name, parts in self.columns.items()}
        px = np.concatenate(self.pixels).astype(np.float64) / 255.0
        out[CAMERA_KEY] = {k: np.asarray(v).reshape(-1, 1, 1).tolist() if k != "count" else v
                           for k, v in _summary(px).items()}
        return {k: v for k, v in out.items() if k in features}


def _summary(x: np.ndarray) -> dict[str, Any]:
    s = {"min": x.min(0), "max": x.max(0), "mean": x.mean(0), "std": x.std(0)}
    s.update({f"q{int(q * 100):02d}": np.quantile(x, q, axis=0) for q in QUANTILES})
    return {**{k: np.asarray(v).tolist() for k, v in s.items()}, "count": [len(x)]}


def _write_parquet(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="snappy")


def _write_tasks(out: Path, tasks: dict[str, int]) -> None:
    """meta/tasks.parquet as pandas writes it (LeRobot reads it with ``pd.read_parquet`` and
    looks tasks up in the index)."""
    try:
        import pandas as pd
    except ImportError:
        raise ExportError('Writing meta/tasks.parquet needs pandas: pip install "byog[lerobot]".') from None
    frame = pd.DataFrame({"task_index": list(tasks.values())}, index=pd.Index(list(tasks), name="task"))
    frame.to_parquet(out / "meta" / "tasks.parquet")


# ============================================================================ CLI configs
@dataclass
class LeRobotExport:
    """A LeRobot v3.0 dataset (video per camera key, actions, tasks, stats, language events)."""

    src: tyro.conf.Positional[Path]
    """BYOG dataset directory."""
    out: Path
    """LeRobot dataset root to create."""
    language: bool = False
    """Also write annotations (role user) and narrations (role assistant) as language_events."""
    vcodec: str = DEFAULT_VCODEC
    """Video codec: h264 (4:4:4; near-lossless by default) or av1 (SVT-AV1, LeRobot's default: 4:2:0,
    smaller, blurs small tiles)."""
    crf: int | None = None
    """Encoder quality (default 0 for h264: MAE ~0.3 on Crafter; 30 for av1; lower is better and bigger)."""
    lossless: bool = False
    """Exact pixels (H.264 in RGB, ~1.3x the default's bytes); an error together with --crf."""
    episodes_per_file: int = 100
    """Episodes per data/video file."""

    def __post_init__(self) -> None:
        video_settings(self.vcodec, self.crf, self.lossless)
        if self.episodes_per_file < 1:
            raise UsageError(f"--episodes-per-file must be >= 1, got {self.episodes_per_file}.")

    def run(self) -> None:
        summary = export_lerobot(self.src, self.out, language=self.language, vcodec=self.vcodec, crf=self.crf,
                                 lossless=self.lossless, episodes_per_file=self.episodes_per_file)
        print(f"wrote LeRobot {CODEBASE_VERSION} dataset {self.out}\n{summary.describe()}")
