"""Import a LeRobot v3.0 dataset into a BYOG dataset (``python -m collect.importers lerobot``),
reading its metadata as untrusted input.
"""
from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import tyro

from collect.errors import CollectError, ImporterError, UsageError
from collect.lerobot.layout import CHUNKS_SIZE
from collect.lerobot.video import MAX_SIDE, decode_video
from collect.untrusted import check_parquet_sizes, contained, read_json_object


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
