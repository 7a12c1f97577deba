"""LeRobot datasets in and out: ``python -m collect.export lerobot DIR --out DEST [--language]`` and
``python -m collect.importers lerobot SRC --out DIR``.

Written with pyarrow and PyAV against LeRobot's documented layout (``codebase_version`` v3.0),
because the ``lerobot`` package pins torch/transformers versions that clash with ours::

    meta/info.json                                   codebase_version, fps, features, path templates
    meta/stats.json                                  per feature min/max/mean/std/count/q01…q99
    meta/tasks.parquet                               task (pandas index) -> task_index
    meta/episodes/chunk-000/file-000.parquet         one row per episode: length, tasks, data and
                                                     video file indices, from/to timestamps
    data/chunk-000/file-000.parquet                  one row per frame (many episodes per file)
    videos/<camera key>/chunk-000/file-000.mp4       many episodes per file, located by timestamps

Our rows map to LeRobot rows one to one: frame ``t`` -> the camera key, ``action`` (the last row,
where we store "no action", repeats the previous action, as LeRobot needs one per row),
``next.reward`` / ``next.done`` (the reward and termination of the step *from* row ``t``),
``timestamp = t / fps``, ``frame_index``, ``episode_index``, ``index``, ``task_index`` (tasks
are BabyAI missions, else the env name). With ``--language`` the per-row sentences become
``language_events`` (a list of ``{role, content, style, camera, tool_calls}`` structs on the row
where they fire, feature dtype ``"language"``, ``style`` and ``camera`` None): annotations with
role ``"user"`` (language that reaches the agent from outside: the environment's ground truth),
narrations (a ``narration`` column, when the dataset has one) with role ``"assistant"`` (what the
agent itself says). The importer reads v3.0 and v2.1 (one file per episode) back.
"""
from __future__ import annotations

import json
import re
import string
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import tyro

from byog_core.registry import Registry
from collect.errors import CollectError, ExportError, ImporterError, UsageError
from collect.untrusted import check_parquet_sizes, contained, read_json_object

CODEBASE_VERSION = "v3.0"
CAMERA_KEY = "observation.images.frame"
ANNOTATION_ROLE = "user"
NARRATION_ROLE = "assistant"
CHUNKS_SIZE = 1000
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)


# ============================================================================ language columns
def _json_type() -> pa.DataType:
    return pa.json_() if hasattr(pa, "json_") else pa.string()


def language_event_type() -> pa.ListType:
    """Arrow type of ``language_events`` (LeRobot's ``language_events_arrow_type``)."""
    return pa.list_(pa.struct([
        pa.field("role", pa.string(), nullable=False), pa.field("content", pa.string()),
        pa.field("style", pa.string()), pa.field("camera", pa.string()),
        pa.field("tool_calls", pa.list_(_json_type())),
    ]))


def language_events(annotations: Sequence[Sequence[str]],
                    narrations: Sequence[Sequence[str]] | None = None) -> pa.Array:
    """Per-row event lists: annotations as role ``user``, narrations as role ``assistant``."""
    roles, contents, offsets = [], [], [0]
    for t, notes in enumerate(annotations):
        said = [] if narrations is None else list(narrations[t])
        roles += [ANNOTATION_ROLE] * len(notes) + [NARRATION_ROLE] * len(said)
        contents += [str(s) for s in (*notes, *said)]
        offsets.append(len(roles))
    m = len(roles)
    struct_type = language_event_type().value_type
    # Built column by column: pa.array() cannot convert Python values into the json extension type.
    fields = [pa.array(roles, pa.string()), pa.array(contents, pa.string()), pa.nulls(m, pa.string()),
              pa.nulls(m, pa.string()), pa.nulls(m, struct_type.field("tool_calls").type)]
    events = pa.StructArray.from_arrays(fields, fields=list(struct_type))
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), events, type=language_event_type())


# ============================================================================ video
@dataclass(frozen=True)
class VideoSettings:
    """One encoder configuration of the camera stream.

    ``vcodec`` and ``stream_pix_fmt`` are what LeRobot records in ``info.json`` (``video.codec``
    and ``video.pix_fmt``, read off the stream); ``encoder``/``pix_fmt``/``crf`` are what PyAV is
    given. ``exact``: decodes to the very RGB bytes that went in.
    """

    vcodec: str
    encoder: str
    pix_fmt: str
    stream_pix_fmt: str
    crf: int
    exact: bool = False

    def describe(self) -> str:
        """E.g. ``h264 yuv444p crf 0`` (``lossless`` for an exact setting)."""
        return f"{self.vcodec} {self.stream_pix_fmt} " + ("lossless" if self.exact else f"crf {self.crf}")


@dataclass(frozen=True)
class VideoCodec:
    """A ``--vcodec`` choice: its default settings and, where the codec has one, an exact mode."""

    encoder: str
    pix_fmt: str
    stream_pix_fmt: str
    default_crf: int
    crf_range: tuple[int, int]
    lossless: VideoSettings | None
    why_not_lossless: str = ""

    def settings(self, name: str, crf: int | None = None, lossless: bool = False) -> VideoSettings:
        """The settings for ``--crf`` (None: the default) or ``--lossless``."""
        if lossless:
            if crf is not None:
                raise UsageError("--lossless fixes the encoder's quality (exact pixels); drop --crf "
                                 f"{crf} or drop --lossless.")
            if self.lossless is None:
                raise UsageError(f"--vcodec {name} has no exact mode ({self.why_not_lossless}); use "
                                 f"--lossless with --vcodec {' or '.join(lossless_vcodecs())}.")
            return self.lossless
        crf = self.default_crf if crf is None else crf
        lo, hi = self.crf_range
        if not lo <= crf <= hi:
            raise UsageError(f"--crf for --vcodec {name} must be in {lo}..{hi} (lower is better and "
                             f"bigger); got {crf}.")
        return VideoSettings(name, self.encoder, self.pix_fmt, self.stream_pix_fmt, crf)


# Defaults chosen by measured fidelity on Crafter frames (benchmarks/bench_export.py, table in
# its docstring): 4:2:0 chroma subsampling smears 7-pixel tiles whatever the crf (MAE >= 6.3 per
# channel even at AV1 crf 1), so the default is H.264 4:4:4 at crf 0 -- lossless in YUV, off the
# source only by the RGB<->YUV rounding (MAE 0.31, max 2). Exact RGB is H.264's RGB mode (High
# 4:4:4 Predictive, libx264rgb, stored as gbrp), 1.3x the bytes. Both decode through FFmpeg, i.e.
# through LeRobot's torchcodec and PyAV backends. SVT-AV1 (LeRobot's own default) writes 4:2:0
# only: smaller files, kept for when size matters more than pixels.
VIDEO_CODECS: Registry[VideoCodec] = Registry.of("video codec", {
    "h264": VideoCodec("libx264", "yuv444p", "yuv444p", 0, (0, 51),
                       lossless=VideoSettings("h264", "libx264rgb", "rgb24", "gbrp", 0, exact=True)),
    "av1": VideoCodec("libsvtav1", "yuv420p", "yuv420p", 30, (1, 63), lossless=None,
                      why_not_lossless="SVT-AV1 writes 4:2:0 chroma only"),
}, error=UsageError, hint="Register one with collect.lerobot.VIDEO_CODECS.register(name, VideoCodec(...)).")
"""``--vcodec`` -> its encoder settings (LeRobot records ``video.codec`` h264 or av1)."""
DEFAULT_VCODEC = "h264"


def lossless_vcodecs() -> list[str]:
    """The ``--vcodec`` names with an exact (``--lossless``) mode."""
    return [name for name, codec in VIDEO_CODECS.items() if codec.lossless is not None]


def video_settings(vcodec: str = DEFAULT_VCODEC, crf: int | None = None, lossless: bool = False) -> VideoSettings:
    """Resolves ``--vcodec``/``--crf``/``--lossless`` (:class:`UsageError` on a bad combination)."""
    if vcodec not in VIDEO_CODECS:
        raise UsageError(f"--vcodec must be one of {sorted(VIDEO_CODECS)}; got {vcodec!r}.")
    return VIDEO_CODECS[vcodec].settings(vcodec, crf, lossless)


def encode_video(path: Path, frames: Iterator[np.ndarray], fps: int, vcodec: str | VideoSettings = DEFAULT_VCODEC,
                 crf: int | None = None, lossless: bool = False) -> int:
    """Writes RGB frames as one mp4 (a keyframe every 2 frames, as LeRobot encodes).

    Args:
        path: The mp4 to write.
        frames: ``uint8 [H, W, 3]`` RGB frames.
        fps: Frame rate.
        vcodec: A ``--vcodec`` name (with ``crf``/``lossless``), or resolved :class:`VideoSettings`.
        crf: Encoder quality (None: the codec's default).
        lossless: The codec's exact mode.

    Returns:
        The number of frames written.
    """
    import os

    import av

    settings = vcodec if isinstance(vcodec, VideoSettings) else video_settings(vcodec, crf, lossless)
    os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its whole configuration otherwise
    if settings.encoder not in av.codecs_available:
        usable = [c for c, v in VIDEO_CODECS.items() if v.encoder in av.codecs_available]
        raise ExportError(f"PyAV here cannot encode {settings.vcodec} ({settings.encoder} missing); use "
                          f"--vcodec {' or '.join(usable)}.")
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with av.open(str(path), "w") as box:
        stream = box.add_stream(settings.encoder, rate=fps)
        stream.pix_fmt = settings.pix_fmt
        stream.codec_context.gop_size = 2
        stream.options = {"crf": str(settings.crf)}
        for frame in frames:
            if n == 0:
                stream.height, stream.width = frame.shape[:2]
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            vf.pts, vf.time_base = n, Fraction(1, fps)
            box.mux(stream.encode(vf))
            n += 1
        box.mux(stream.encode(None))
    return n


def iter_video_frames(path: Path) -> Iterator[np.ndarray]:
    """Every frame of ``path`` as ``uint8 [H, W, 3]`` RGB, in order (PyAV, as LeRobot's pyav backend
    converts: ``to_ndarray(format="rgb24")``)."""
    import av

    with av.open(str(path)) as box:
        for frame in box.decode(box.streams.video[0]):
            yield frame.to_ndarray(format="rgb24")


def pixel_errors(source: np.ndarray, decoded: np.ndarray) -> dict[str, float]:
    """Error sums of decoded frames against their source, per channel value (0..255): ``abs``,
    ``sq``, ``max`` and the number of ``values``; merge with :func:`merge_errors`."""
    diff = np.abs(decoded.astype(np.int32) - source.astype(np.int32))
    return {"abs": float(diff.sum()), "sq": float((diff.astype(np.int64) ** 2).sum()),
            "max": float(diff.max(initial=0)), "values": float(diff.size)}


def merge_errors(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    """Two :func:`pixel_errors` sums as one."""
    return {k: max(a[k], b[k]) if k == "max" else a[k] + b[k] for k in ("abs", "sq", "max", "values")}


def fidelity(errors: dict[str, float]) -> dict[str, float]:
    """``mae`` and ``max`` error per channel value and ``psnr`` in dB (inf when exact) of
    :func:`pixel_errors` sums."""
    n = max(errors["values"], 1.0)
    mse = errors["sq"] / n
    return {"mae": errors["abs"] / n, "max": errors["max"],
            "psnr": float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))}


NO_ERRORS = {"abs": 0.0, "sq": 0.0, "max": 0.0, "values": 0.0}


def video_errors(path: Path, frames: Sequence[np.ndarray]) -> dict[str, float]:
    """:func:`pixel_errors` of the video at ``path``, decoded with PyAV, against the ``frames`` it
    was encoded from (an :class:`ExportError` if it holds another number of frames)."""
    total, n = dict(NO_ERRORS), 0
    for n, decoded in enumerate(iter_video_frames(path), 1):
        if n > len(frames):
            break
        total = merge_errors(total, pixel_errors(frames[n - 1], decoded))
    if n != len(frames):
        raise ExportError(f"{path} decodes to {n if n <= len(frames) else 'more than ' + str(len(frames))} "
                          f"frames but {len(frames)} were encoded; the encoder dropped or added frames.")
    return total


def decode_video(path: Path, start: float, stop: float, fps: float,
                 keep: set[int] | None = None) -> dict[int, np.ndarray]:
    """Frames of ``path`` whose time lies in ``[start, stop)``, keyed by ``round((t - start) * fps)``.

    Seeks to the keyframe before ``start`` (multi-episode files), then decodes forward. With
    ``keep``, only those keys are kept and decoding stops once all are found; frames larger
    than :data:`MAX_SIDE` or more decoded bytes than the file can plausibly hold are refused
    (the file may come from anyone).
    """
    import av

    out: dict[int, np.ndarray] = {}
    budget = _decoded_budget(path)
    try:
        with av.open(str(path)) as box:
            stream = box.streams.video[0]
            if start > 0:
                box.seek(int(start / stream.time_base), stream=stream, backward=True)
            for frame in box.decode(stream):
                t = float(frame.pts * stream.time_base) if frame.pts is not None else float(frame.time)
                if t >= stop - 0.5 / fps:
                    break
                key = round((t - start) * fps)
                if t < start - 0.5 / fps or (keep is not None and key not in keep):
                    continue
                if max(frame.width, frame.height) > MAX_SIDE:
                    raise ImporterError(f"Video {path} has {frame.width}x{frame.height} frames, larger than "
                                        f"{MAX_SIDE} pixels a side; resize the dataset before importing.")
                budget -= frame.width * frame.height * 3
                if budget < 0:
                    raise ImporterError(f"Video {path} decodes to more than {MAX_RATIO} times its size; "
                                        "refusing a decompression bomb.")
                out[key] = frame.to_ndarray(format="rgb24")
                if keep is not None and len(out) == len(keep):
                    break
    except (OSError, av.error.FFmpegError) as err:
        raise ImporterError(f"Cannot decode video {path} ({err}); PyAV decodes H.264 and AV1 (libdav1d).") from None
    return out


MAX_SIDE = 4096
"""Largest frame side an import accepts (decoded buffers are sized by it)."""
MAX_RATIO = 1000
"""Decoded bytes a video or image may expand to per stored byte, beyond a floor of 256 MiB."""


def _decoded_budget(path: Path) -> int:
    try:
        return max(256 << 20, MAX_RATIO * path.stat().st_size)
    except OSError:
        return 256 << 20


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
        episodes += metas
    if not episodes:
        raise ExportError(f"{src} has no episodes to export.")
    _write_parquet(pa.Table.from_pylist(episodes), out / EPISODES_PATH.format(chunk_index=0, file_index=0))
    _write_tasks(out, tasks)
    features = _features(ds.info, language, fps, settings)
    (out / "meta" / "stats.json").write_text(json.dumps(stats.finish(features), indent=2))
    info = {
        "codebase_version": CODEBASE_VERSION, "robot_type": None, "fps": fps,
        "total_episodes": len(episodes), "total_frames": episodes[-1]["dataset_to_index"],
        "total_tasks": len(tasks), "chunks_size": CHUNKS_SIZE, "data_files_size_in_mb": 100,
        "video_files_size_in_mb": 200, "data_path": DATA_PATH, "video_path": VIDEO_PATH,
        "splits": {"train": f"0:{len(episodes)}"}, "features": features,
    }
    (out / "meta" / "info.json").write_text(json.dumps(info, indent=4))
    quality = fidelity(errors)
    return ExportSummary(out, settings, frames=info["total_frames"], mae=quality["mae"], max_error=quality["max"],
                         psnr=quality["psnr"], video_bytes=_tree_bytes(out / "videos"),
                         total_bytes=_tree_bytes(out), source_bytes=_tree_bytes(Path(src)))


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


# ============================================================================ import
def read_lerobot_meta(src: Path) -> dict[str, Any]:
    """info.json, the episode rows and the tasks of a v3.0 or v2.1 LeRobot dataset."""
    if not src.is_dir():
        raise ImporterError(f"{src} is not a directory; pass the root of a LeRobot dataset (with meta/info.json).")
    f = _inside(src, "meta/info.json", "LeRobot metadata")
    if not f.is_file():
        raise ImporterError(f"{src} is not a LeRobot dataset: {f} is missing.")
    info = _json(f)
    version = str(info.get("codebase_version", ""))
    if version.startswith("v3"):
        files = sorted((src / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
        episodes = [r for p in files for r in _read_parquet(src, p.relative_to(src).as_posix(), "LeRobot episode index",
                                                            columns=_episode_columns).to_pylist()]
        tasks = _read_tasks_v3(src)
    elif version.startswith("v2"):
        episodes = _jsonl(src, "meta/episodes.jsonl")
        tasks = {_int(r, "task_index", "meta/tasks.jsonl"): r.get("task") for r in _jsonl(src, "meta/tasks.jsonl")}
    else:
        raise ImporterError(f"{f} has codebase_version {version!r}; this importer reads v3.0 and v2.1.")
    _check_info(info, version, f)
    for ep in episodes:
        _int(ep, "episode_index", "the episode index")
    return {"info": info, "version": version, "episodes": sorted(episodes, key=lambda r: r["episode_index"]),
            "tasks": tasks}


TEMPLATE_FIELDS = {"v3": {"data_path": {"chunk_index", "file_index"},
                          "video_path": {"video_key", "chunk_index", "file_index"}},
                   "v2": {"data_path": {"episode_chunk", "episode_index"},
                          "video_path": {"video_key", "episode_chunk", "episode_index"}}}
"""The fields LeRobot documents for its path templates, by major version."""
_SPEC_RE = re.compile(r"0?[1-9]?d")
MAX_TEMPLATE = 256


def _check_info(info: dict[str, Any], version: str, f: Path) -> None:
    """The parts of info.json the importer relies on, checked before use: fps, features, and
    path templates limited to their documented fields with at most a zero-padded width
    (``{chunk_index:03d}``), so a template cannot ask ``format`` for a gigabyte of padding."""
    fps = info.get("fps")
    if not isinstance(fps, (int, float)) or isinstance(fps, bool) or not 0 < fps < 1e6:
        raise ImporterError(f"{f} has fps {str(fps)[:40]}; it must be a positive number.")
    feats = info.get("features")
    if not isinstance(feats, dict) or not all(isinstance(v, dict) for v in feats.values()):
        raise ImporterError(f"{f} has no valid features mapping (feature name -> {{dtype, shape, ...}}).")
    for key, allowed in TEMPLATE_FIELDS[version[:2]].items():
        template = info.get(key)
        if template is None and key == "video_path":
            continue
        if not isinstance(template, str) or len(template) > MAX_TEMPLATE:
            raise ImporterError(f"{f}: {key} must be a path template string of at most {MAX_TEMPLATE} characters.")
        try:
            parts = list(string.Formatter().parse(template))
        except ValueError as e:
            raise ImporterError(f"{f}: {key} {template!r} is not a valid template ({e}).") from None
        for _, field, spec, conv in parts:
            if field is None:
                continue
            if field not in allowed or conv or (spec and not _SPEC_RE.fullmatch(spec)):
                raise ImporterError(f"{f}: {key} {template!r} uses {{{field}{'!' + conv if conv else ''}"
                                    f"{':' + spec if spec else ''}}}; LeRobot {version} templates use only "
                                    f"{sorted(allowed)}, optionally zero-padded like {{chunk_index:03d}}.")


def _inside(src: Path, name: Any, what: str) -> Path:
    return contained(src, name, what=what, error=ImporterError,
                     fix="The importer reads only files inside the LeRobot dataset it is given.")


def _json(f: Path) -> dict[str, Any]:
    return read_json_object(f, what="LeRobot dataset", error=ImporterError)


def _int(row: Any, key: str, where: str) -> int:
    value = row.get(key) if isinstance(row, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ImporterError(f"{where}: {key!r} is {str(value)[:40]}, not a non-negative integer; the LeRobot "
                            "dataset is damaged.")
    return int(value)


def _time(row: dict[str, Any], key: str) -> float:
    value = row.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1e9:
        raise ImporterError(f"Episode {row.get('episode_index')}: {key!r} is {str(value)[:40]}, not a time "
                            "in seconds; the LeRobot episode index is damaged.")
    return float(value)


def _read_parquet(src: Path, name: str, what: str, columns: Any = None, row_bytes: dict[str, int] | None = None,
                  **read: Any) -> pa.Table:
    """A Parquet file inside ``src``, its declared sizes checked before anything is decoded."""
    f = _inside(src, name, what)
    if not f.is_file():
        raise ImporterError(f"{what} {f} is missing; the LeRobot dataset is incomplete.")
    try:
        pf = pq.ParquetFile(f)
        check_parquet_sizes(f, pf.metadata, row_bytes=row_bytes, what=what, error=ImporterError,
                            fix="The LeRobot dataset is damaged.")
        cols = columns(pf.schema_arrow.names) if callable(columns) else columns
        return pq.read_table(f, columns=cols, use_threads=False, **read)
    except (OSError, pa.ArrowException) as e:
        raise ImporterError(f"{what} {f} cannot be read ({e}); the LeRobot dataset is damaged.") from None


def _episode_columns(names: list[str]) -> list[str]:
    return [c for c in names if not c.startswith("stats/")]


def _read_tasks_v3(src: Path) -> dict[int, str]:
    path = src / "meta" / "tasks.parquet"
    table = _read_parquet(src, "meta/tasks.parquet", "LeRobot tasks")
    names = table.column_names
    task_col = "task" if "task" in names else "__index_level_0__" if "__index_level_0__" in names else None
    if task_col is None:
        raise ImporterError(f"{path} has no task column (columns {names}).")
    if "task_index" not in names:
        raise ImporterError(f"{path} has no task_index column (columns {names}).")
    return dict(zip(table.column("task_index").to_pylist(), table.column(task_col).to_pylist()))


def _jsonl(src: Path, name: str) -> list[dict[str, Any]]:
    path = _inside(src, name, "LeRobot metadata")
    if not path.is_file():
        raise ImporterError(f"{path} is missing; a v2.1 LeRobot dataset has meta/episodes.jsonl and meta/tasks.jsonl.")
    try:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (ValueError, UnicodeDecodeError) as e:
        raise ImporterError(f"{path} is not valid JSON lines ({e}); the LeRobot dataset is damaged.") from None
    if not all(isinstance(r, dict) for r in rows):
        raise ImporterError(f"{path} has a line that is not a JSON object; the LeRobot dataset is damaged.")
    return rows


def choose_camera(info: dict[str, Any], camera: str | None) -> str:
    """The camera (video or image feature) to import: ``camera``, or the only one there is."""
    cams = [k for k, f in info["features"].items() if f.get("dtype") in ("video", "image")]
    bad = [k for k in cams if not _CAMERA_RE.fullmatch(k)]
    if bad:  # a key becomes a path component (videos/<key>/...)
        raise ImporterError(f"Camera key {bad[0][:80]!r} is not a plain name (letters, digits, '.', '_', '-'); "
                            "the LeRobot metadata is damaged.")
    if not cams:
        raise ImporterError("The LeRobot dataset has no video or image feature; BYOG needs RGB frames.")
    if camera is None:
        if len(cams) > 1:
            raise ImporterError(f"The dataset has several cameras {cams}; choose one with --camera KEY.")
        return cams[0]
    if camera not in cams:
        raise ImporterError(f"Camera {camera!r} is not in the dataset; its cameras: {cams}.")
    return camera


_CAMERA_RE = re.compile(r"(?!\.*$)[\w.\-]{1,128}")


def import_lerobot(src: str | Path, out: str | Path, *, camera: str | None = None,
                   size: tuple[int, int] | None = None) -> dict[str, Any]:
    """Converts a LeRobot v3.0/v2.1 dataset into a BYOG dataset at ``out``.

    Args:
        src: LeRobot dataset root (with ``meta/info.json``).
        out: New BYOG dataset directory.
        camera: Camera key (``observation.images.…``) when the dataset has several.
        size: Resize frames to HEIGHT WIDTH (area interpolation); default keeps them.

    Returns:
        The new dataset's ``meta/info.json``.
    """
    from collect.writer import DatasetWriter

    src = Path(src)
    meta = read_lerobot_meta(src)
    info, version = meta["info"], meta["version"]
    cam = choose_camera(info, camera)
    fps = float(info["fps"])
    act = info["features"].get("action") or {}
    discrete = str(act.get("dtype", "")).startswith("int")
    shape = info["features"][cam].get("shape")
    if not (isinstance(shape, list) and shape and all(isinstance(x, int) and 0 < x <= MAX_SIDE for x in shape)):
        raise ImporterError(f"Camera {cam!r} has shape {str(shape)[:60]}; it must list positive sizes up to "
                            f"{MAX_SIDE}. The LeRobot metadata is damaged.")
    try:
        action = _action_info(src, act, discrete)
    except (TypeError, ValueError, OverflowError) as e:
        raise ImporterError(f"The action feature of {src} (or its meta/stats.json) is malformed "
                            f"({type(e).__name__}: {str(e)[:200]}); the LeRobot metadata is damaged.") from None
    writer = DatasetWriter(out, resume_flag=None, info={
        "env": f"lerobot:{src.name}", "source": "lerobot", "lerobot_codebase_version": version,
        "lerobot_camera": cam, "fps": fps, "policy": "recorded", **action})
    top = -1
    for ep in meta["episodes"]:
        try:
            top = _import_episode(writer, src, meta, ep, cam, fps, size, discrete, top)
        except CollectError:
            raise
        except (KeyError, TypeError, ValueError, IndexError, OverflowError) as e:
            # anything else malformed in a foreign episode's rows: one line naming the episode
            raise ImporterError(f"Episode {ep.get('episode_index')} of {src} is malformed "
                                f"({type(e).__name__}: {str(e)[:200]}); the LeRobot dataset is damaged.") from None
    space = writer.info["action_space"]
    if discrete and space.get("n") is None:  # neither names nor stats: the actions seen
        return writer.finalize(action_space={**space, "n": top + 1})
    return writer.finalize()


def _import_episode(writer: Any, src: Path, meta: dict[str, Any], ep: dict[str, Any], cam: str, fps: float,
                    size: tuple[int, int] | None, discrete: bool, top: int) -> int:
    """Reads one LeRobot episode and writes it; returns the largest discrete action seen."""
    info, version = meta["info"], meta["version"]
    rows = _episode_rows(src, info, version, ep)
    frames = _episode_frames(src, info, version, ep, cam, rows, fps, size)
    n = len(frames)
    rewards = np.r_[0.0, np.asarray(rows.get("next.reward", np.zeros(n)), np.float32)[: n - 1]]
    done = np.asarray(rows.get("next.done", np.zeros(n, bool)), bool)
    term = np.r_[False, done[: n - 1]]
    trunc = np.zeros(n, bool)
    trunc[-1] = not term[-1]
    actions = np.asarray(rows["action"])[: n - 1] if "action" in rows else np.zeros(n - 1, np.int64)
    tasks = ep.get("tasks") or ([meta["tasks"].get(int(rows["task_index"][0]))] if "task_index" in rows else [])
    fields = {"mission": str(tasks[0])} if tasks and tasks[0] else {}
    top = max(top, int(actions.max())) if discrete and actions.size else top
    writer.write_episode(int(ep["episode_index"]), frames, actions.reshape(n - 1) if discrete else actions,
                         rewards=rewards, terminated=term, truncated=trunc,
                         annotations=_annotations(rows.get("language_events"), n), **fields)
    return top


def _action_info(src: Path, feature: dict[str, Any], discrete: bool) -> dict[str, Any]:
    names = feature.get("names")
    if discrete:
        labels = names.get("discrete") if isinstance(names, dict) else None
        stats = _inside(src, "meta/stats.json", "LeRobot statistics")
        top = (_json(stats).get("action") or {}).get("max") if stats.is_file() else None
        n = len(labels) if labels else int(np.max(top)) + 1 if top is not None else None
        if n is not None and not 0 < n <= 1 << 20:
            raise ImporterError(f"{stats} gives {n} discrete actions; the LeRobot metadata is damaged.")
        return {"action_space": {"type": "Discrete", "n": n, "start": 0}, "action_names": labels}
    dim = int(np.prod(feature.get("shape") or [1]))
    if not 0 < dim <= 1 << 16:
        raise ImporterError(f"The action feature has shape {feature.get('shape')}; the LeRobot metadata is damaged.")
    if isinstance(names, dict):  # v2.x style {"motors": [...]}
        names = next(iter(names.values()), None)
    labels = [str(x) for x in names] if isinstance(names, list) and len(names) == dim else None
    layout = [{"key": None, "shape": [dim], "offset": 0, "size": dim}]
    return {"action_space": {"type": "Box", "shape": [dim], "layout": layout}, "action_names": labels}


def _episode_rows(src: Path, info: dict[str, Any], version: str, ep: dict[str, Any]) -> dict[str, Any]:
    where = f"Episode {ep['episode_index']}"
    # image features hold encoded images: each at most its raw size (and a PNG/JPEG header)
    images = {k: int(np.prod(v["shape"])) + 65536 for k, v in info["features"].items()
              if v.get("dtype") == "image" and isinstance(v.get("shape"), list)}
    if version.startswith("v3"):
        name = info["data_path"].format(chunk_index=_int(ep, "data/chunk_index", where),
                                        file_index=_int(ep, "data/file_index", where))
        table = _read_parquet(src, name, "LeRobot data file", row_bytes=images,
                              filters=[("episode_index", "=", int(ep["episode_index"]))])
    else:
        chunk = int(ep["episode_index"]) // _chunks_size(info)
        name = info["data_path"].format(episode_chunk=chunk, episode_index=int(ep["episode_index"]))
        table = _read_parquet(src, name, "LeRobot data file", row_bytes=images)
    f = src / name
    table = table.sort_by("frame_index") if "frame_index" in table.column_names else table
    out: dict[str, Any] = {}
    for name in table.column_names:
        col = table.column(name).combine_chunks()
        if name == "language_events":
            out[name] = col.to_pylist()
        elif isinstance(col.type, (pa.FixedSizeListType, pa.ListType)):
            out[name] = np.stack([np.asarray(v, np.float32) for v in col.to_pylist()]) if len(col) else np.zeros((0, 0))
        elif pa.types.is_struct(col.type):
            out[name] = col.to_pylist()  # image features: {bytes, path}
        else:
            out[name] = col.to_numpy(zero_copy_only=False)
    if not out or not len(next(iter(out.values()))):
        raise ImporterError(f"{f} has no rows for episode {ep['episode_index']}.")
    return out


def _episode_frames(src: Path, info: dict[str, Any], version: str, ep: dict[str, Any], cam: str,
                    rows: dict[str, Any], fps: float, size: tuple[int, int] | None) -> np.ndarray:
    from collect.importers.common import resize_frame

    n = len(rows["timestamp"]) if "timestamp" in rows else len(next(iter(rows.values())))
    if info["features"][cam]["dtype"] == "image":
        frames = [_decode_image(r, ep) for r in rows[cam]]
    else:
        where = f"Episode {ep['episode_index']}"
        if not isinstance(info.get("video_path"), str):
            raise ImporterError(f"Camera {cam!r} is a video feature but info.json has no video_path template.")
        if version.startswith("v3"):
            name = info["video_path"].format(video_key=cam, chunk_index=_int(ep, f"videos/{cam}/chunk_index", where),
                                             file_index=_int(ep, f"videos/{cam}/file_index", where))
            start, stop = _time(ep, f"videos/{cam}/from_timestamp"), _time(ep, f"videos/{cam}/to_timestamp")
        else:
            chunk = int(ep["episode_index"]) // _chunks_size(info)
            name = info["video_path"].format(video_key=cam, episode_chunk=chunk, episode_index=int(ep["episode_index"]))
            start, stop = 0.0, n / fps + 1.0
        f = _inside(src, name, "LeRobot video")
        if not f.is_file():
            raise ImporterError(f"LeRobot video {f} is missing; the dataset is incomplete.")
        ts = rows.get("timestamp", np.arange(n) / fps)
        keys = [round(float(t) * fps) for t in ts]
        decoded = decode_video(f, start, stop, fps, keep=set(keys))
        missing = [k for k in keys if k not in decoded]
        if missing:
            raise ImporterError(f"{f} has no frame at {len(missing)} of episode {ep['episode_index']}'s "
                               f"timestamps (first: {missing[0] / fps:.3f}s after {start:.3f}s).")
        frames = [decoded[k] for k in keys]
    if size is not None:
        frames = [resize_frame(fr, size) for fr in frames]
    return np.stack(frames).astype(np.uint8)


def _chunks_size(info: dict[str, Any]) -> int:
    size = info.get("chunks_size", CHUNKS_SIZE)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ImporterError(f"info.json has chunks_size {str(size)[:40]}; it must be a positive integer.")
    return size


def _decode_image(row: Any, ep: dict[str, Any]) -> np.ndarray:
    """One image feature's encoded bytes -> RGB, its size read from the header before decoding."""
    import io

    import cv2
    from PIL import Image, UnidentifiedImageError

    data = row.get("bytes") if isinstance(row, dict) else None
    if not isinstance(data, bytes):
        raise ImporterError(f"Episode {ep['episode_index']} has an image without bytes; images stored as "
                            "paths are not supported.")
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise ImporterError(f"Episode {ep['episode_index']} has an unreadable image ({e}).") from None
    if max(w, h) > MAX_SIDE:
        raise ImporterError(f"Episode {ep['episode_index']} has a {w}x{h} image, larger than {MAX_SIDE} "
                            "pixels a side.")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ImporterError(f"Episode {ep['episode_index']} has an image OpenCV cannot decode.")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _annotations(events: list[list[dict[str, Any]]] | None, n: int) -> list[list[str]]:
    """Sentences of ``language_events`` per row (every role: a real dataset's subtasks, speech,
    our own annotations)."""
    if events is None:
        return [[] for _ in range(n)]
    return [[str(e["content"]) for e in (row or []) if e.get("content")] for row in events]


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


@dataclass
class LeRobotImport:
    """A LeRobot v3.0 or v2.1 dataset (one camera; H.264 or AV1 video, or image features)."""

    src: tyro.conf.Positional[Path]
    """LeRobot dataset root (with meta/info.json)."""
    out: Path
    """New dataset directory."""
    camera: str | None = None
    """Camera feature key (observation.images....) when the dataset has several."""
    size: tuple[int, int] | None = None
    """Resize frames to HEIGHT WIDTH (area interpolation); default keeps the camera's size."""

    def __post_init__(self) -> None:
        if self.size is not None and min(self.size) <= 0:
            raise UsageError(f"--size must be two positive integers, got {self.size}.")

    def run(self) -> dict[str, Any]:
        return import_lerobot(self.src, self.out, camera=self.camera, size=self.size)


__all__ = ["ANNOTATION_ROLE", "CAMERA_KEY", "NARRATION_ROLE", "VIDEO_CODECS", "ExportSummary", "ImporterError",
           "LeRobotExport", "VideoSettings", "fidelity", "pixel_errors", "video_errors", "video_settings",
           "LeRobotImport", "choose_camera",
           "decode_video", "encode_video", "export_lerobot", "import_lerobot", "language_events",
           "read_lerobot_meta"]
