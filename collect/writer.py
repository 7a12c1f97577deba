"""Writing BYOG datasets: one Parquet file per episode plus a small ``meta/`` index.

Layout of a dataset directory (format version :data:`FORMAT_VERSION`)::

    meta/info.json                              dataset-wide facts (env, spaces, policy, counts, columns)
    meta/episodes.parquet                       one row per episode (index, length, seed, return, ...)
    data/chunk-000/episode_000000.parquet       one row per step of episode 0
    data/chunk-000/episode_000001.parquet       ... (1,000 episodes per chunk)

Rows of an episode file (an episode with ``L`` actions has ``L + 1`` rows, one per observation):

==============  ====================================  ============================================
column          Arrow type                            meaning for row ``t``
==============  ====================================  ============================================
episode_index   int64                                 the episode
step            int64                                 ``t`` (0 = the reset observation)
frame           binary (raw ``H*W*3`` uint8 bytes)    observation ``o_t``, lossless, zstd-compressed
action          int64 (Discrete) or                   action taken *from* ``o_t``; ``-1`` (Discrete)
                fixed_size_list<float32>[D] (others)  or NaN (vector) on the last row (no action)
reward          float32                               reward received on arriving at ``o_t`` (0 at t=0)
terminated      bool                                  ``o_t`` is terminal (only possibly on the last row)
truncated       bool                                  the episode was cut at ``o_t`` (time limit)
annotations     list<string>                          sentences emitted with ``o_t`` (reset info at t=0)
intent          list<string> (optional)               the policy's stated intent at ``o_t``
<extra>         float32 / fixed_size_list<float32>    optional per-step features (e.g. ``embedding``)
==============  ====================================  ============================================

So everything on a row describes the arrival at ``o_t`` except ``action``, which is the decision
taken from ``o_t``: behavioural cloning uses rows with ``action >= 0``; narration uses every row.

Non-discrete actions (MineRL/VPT ``Dict`` or ``Box`` spaces) are stored as one flat float32 vector
per row; ``info.json["action_space"]["layout"]`` lists ``{"key", "shape", "offset", "size"}`` for
each sub-action in order (``key`` is ``null`` for a plain ``Box``), see :func:`action_layout`,
:func:`flatten_action` and :func:`unflatten_action`.

Every file is written to a temporary name in the same directory and renamed into place, so a
killed writer leaves only complete episode files (plus ``*.tmp`` leftovers that
``DatasetWriter(..., resume=True)`` removes). Each episode file also carries its episode record
(seed, return, ...) in its Parquet key-value metadata, so ``meta/`` can always be rebuilt from
``data/`` alone; that is how resumed and distributed (Ray) collections are merged.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

FORMAT_VERSION = "1.0"
"""On-disk format version written to ``meta/info.json["format_version"]``."""
CHUNK_SIZE = 1000
"""Episodes per ``data/chunk-XXX`` directory."""
ROW_GROUP_SIZE = 256
"""Rows per Parquet row group: the unit the window reader decodes and caches."""
EPISODE_METADATA_KEY = b"byog.episode"
CORE_COLUMNS = (
    "episode_index", "step", "frame", "action", "reward", "terminated", "truncated", "annotations",
)
_EPISODE_RE = re.compile(r"episode_(\d{6,})\.parquet$")


class DatasetError(Exception):
    """A dataset on disk is missing, malformed or inconsistent; the message names file and fix."""


# --------------------------------------------------------------------------- paths and small io
def episode_relpath(episode_index: int, chunk_size: int = CHUNK_SIZE) -> str:
    """Relative path of an episode file, e.g. ``data/chunk-000/episode_000042.parquet``."""
    return f"data/chunk-{episode_index // chunk_size:03d}/episode_{episode_index:06d}.parquet"


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Writes ``data`` to ``path`` through a temporary file and an atomic rename."""
    _atomic(path, lambda tmp: Path(tmp).write_bytes(data))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Writes ``obj`` as indented JSON to ``path`` atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n").encode())


def _atomic(path: str | Path, write: Callable[[str], None]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


# --------------------------------------------------------------------------- spaces and actions
def space_to_json(space: Any) -> dict[str, Any]:
    """Describes a gymnasium space as JSON for ``info.json`` (``Discrete``, ``Box``, ``Dict``, ...).

    ``Dict`` and ``Box`` descriptions include the flat ``layout`` used to store their actions.
    """
    import gymnasium.spaces as sp

    if isinstance(space, sp.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, sp.Box):
        return {
            "type": "Box", "shape": list(space.shape), "dtype": str(space.dtype),
            "low": _compact(space.low), "high": _compact(space.high),
            "layout": action_layout(space),
        }
    if isinstance(space, sp.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": space.nvec.tolist(), "layout": action_layout(space)}
    if isinstance(space, sp.MultiBinary):
        return {"type": "MultiBinary", "n": np.asarray(space.n).tolist(), "layout": action_layout(space)}
    if isinstance(space, sp.Dict):
        return {
            "type": "Dict",
            "spaces": {k: space_to_json(s) for k, s in space.spaces.items()},
            "layout": action_layout(space),
        }
    return {"type": type(space).__name__, "repr": repr(space)}


def _compact(a: np.ndarray) -> Any:
    flat = np.asarray(a).ravel()
    return flat[0].item() if flat.size and np.all(flat == flat[0]) else np.asarray(a).tolist()


def action_layout(space: Any) -> list[dict[str, Any]]:
    """Flat float32 layout of a non-Discrete action space.

    Returns:
        One ``{"key", "shape", "offset", "size"}`` entry per sub-action, in the space's key order
        (gymnasium sorts ``Dict`` keys); ``key`` is ``None`` for a plain ``Box``. A ``Discrete``
        sub-action takes one slot holding its integer value.
    """
    import gymnasium.spaces as sp

    items = list(space.spaces.items()) if isinstance(space, sp.Dict) else [(None, space)]
    layout, offset = [], 0
    for key, sub in items:
        if isinstance(sub, sp.Dict):
            raise DatasetError(f"Nested Dict action spaces are not supported (key {key!r}); flatten them first.")
        shape = [] if isinstance(sub, sp.Discrete) else list(sub.shape)
        size = int(np.prod(shape)) if shape else 1
        layout.append({"key": key, "shape": shape, "offset": offset, "size": size})
        offset += size
    return layout


def flatten_action(action: Any, layout: Sequence[dict[str, Any]]) -> np.ndarray:
    """Flattens one ``Dict``/``Box`` action into a float32 vector following ``layout``."""
    out = np.empty(sum(e["size"] for e in layout), np.float32)
    for e in layout:
        value = action if e["key"] is None else action[e["key"]]
        out[e["offset"]: e["offset"] + e["size"]] = np.asarray(value, np.float32).ravel()
    return out


def unflatten_action(vector: np.ndarray, layout: Sequence[dict[str, Any]]) -> Any:
    """Inverse of :func:`flatten_action` (``Discrete`` entries come back as ``int``)."""
    parts = {}
    for e in layout:
        chunk = np.asarray(vector[e["offset"]: e["offset"] + e["size"]])
        parts[e["key"]] = round(float(chunk[0])) if not e["shape"] else chunk.reshape(e["shape"])
    return parts[None] if list(parts) == [None] else parts


# --------------------------------------------------------------------------- episode tables
def _string_lists(values: Sequence[Sequence[str]] | None, n: int, name: str) -> pa.Array:
    if values is None:
        values = [[] for _ in range(n)]
    if len(values) != n:
        raise DatasetError(f"`{name}` has {len(values)} entries but the episode has {n} frames; pass one list per frame.")
    return pa.array([[str(s) for s in v] for v in values], pa.list_(pa.string()))


def _float_column(values: Any, n: int, name: str) -> pa.Array:
    arr = np.asarray(values, np.float32)
    if arr.shape[:1] != (n,):
        raise DatasetError(f"Extra column `{name}` has shape {arr.shape}; its first axis must be the {n} frames.")
    if arr.ndim == 1:
        return pa.array(arr, pa.float32())
    flat = arr.reshape(n, -1)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat.ravel(), pa.float32()), flat.shape[1])


def build_episode_table(
    episode_index: int,
    frames: np.ndarray | Sequence[bytes],
    actions: Any,
    *,
    frame_shape: Sequence[int] | None = None,
    rewards: Any = None,
    terminated: Any = None,
    truncated: Any = None,
    annotations: Sequence[Sequence[str]] | None = None,
    intent: Sequence[Sequence[str]] | None = None,
    extra: dict[str, Any] | None = None,
    action_dim: int | None = None,
) -> pa.Table:
    """Builds the Arrow table of one episode (see the module docstring for the columns).

    Args:
        episode_index: Index of the episode.
        frames: ``uint8 [L, H, W, 3]`` array, or ``L`` raw byte strings of ``prod(frame_shape)``.
        actions: ``L`` or ``L - 1`` actions (ints, or float vectors of ``action_dim``); a missing
            last action is stored as ``-1`` / NaN.
        frame_shape: ``[H, W, 3]``; required when ``frames`` are byte strings.
        rewards, terminated, truncated: Per-frame values (default 0 / False).
        annotations, intent: One list of sentences per frame.
        extra: Extra per-frame numeric columns, ``[L]`` or ``[L, D]``, stored as float32.
        action_dim: Width of vector actions; ``None`` for Discrete (int64) actions.
    """
    if isinstance(frames, np.ndarray):
        if frames.dtype != np.uint8 or frames.ndim != 4:
            raise DatasetError(f"Frames must be a uint8 [L, H, W, C] array, got {frames.dtype} {frames.shape}.")
        frame_shape = frames.shape[1:]
        n = frames.shape[0]
        frame_arr = _binary_from_array(np.ascontiguousarray(frames).reshape(n, -1))
    else:
        n = len(frames)
        if frame_shape is None:
            raise DatasetError("Pass `frame_shape` when frames are given as raw bytes.")
        size = int(np.prod(frame_shape))
        bad = [i for i, f in enumerate(frames) if len(f) != size]
        if bad:
            raise DatasetError(f"Frame {bad[0]} has {len(frames[bad[0]])} bytes, expected {size} for shape {list(frame_shape)}.")
        frame_arr = pa.array(frames, pa.binary())
    if n == 0:
        raise DatasetError("Cannot write an empty episode (no frames).")
    cols: dict[str, pa.Array] = {
        "episode_index": pa.array(np.full(n, episode_index, np.int64)),
        "step": pa.array(np.arange(n, dtype=np.int64)),
        "frame": frame_arr,
        "action": _action_column(actions, n, action_dim),
        "reward": pa.array(_per_frame(rewards, n, np.float32, 0, "rewards")),
        "terminated": pa.array(_per_frame(terminated, n, np.bool_, False, "terminated")),
        "truncated": pa.array(_per_frame(truncated, n, np.bool_, False, "truncated")),
        "annotations": _string_lists(annotations, n, "annotations"),
    }
    if intent is not None:
        cols["intent"] = _string_lists(intent, n, "intent")
    for name, values in (extra or {}).items():
        if name in cols:
            raise DatasetError(f"Extra column name `{name}` collides with a core column; rename it.")
        cols[name] = _float_column(values, n, name)
    return pa.table(cols)


def _binary_from_array(flat: np.ndarray) -> pa.Array:
    n, size = flat.shape
    offsets = pa.py_buffer(np.arange(n + 1, dtype=np.int32) * size)
    return pa.BinaryArray.from_buffers(pa.binary(), n, [None, offsets, pa.py_buffer(flat.ravel())])


def _per_frame(values: Any, n: int, dtype: Any, fill: Any, name: str) -> np.ndarray:
    if values is None:
        return np.full(n, fill, dtype)
    arr = np.asarray(values, dtype)
    if arr.shape == (n - 1,):  # values per transition: the reset frame gets the fill value
        arr = np.concatenate([np.full(1, fill, dtype), arr])
    if arr.shape != (n,):
        raise DatasetError(f"`{name}` has shape {arr.shape}; expected ({n},) (one per frame) or ({n - 1},).")
    return arr


def _action_column(actions: Any, n: int, action_dim: int | None) -> pa.Array:
    if action_dim is None:
        arr = np.asarray(actions, np.int64).reshape(-1)
        if arr.shape == (n - 1,):
            arr = np.concatenate([arr, [-1]])
        if arr.shape != (n,):
            raise DatasetError(f"Got {arr.shape[0]} actions for {n} frames; pass {n} or {n - 1} actions.")
        return pa.array(arr)
    arr = np.asarray(actions, np.float32).reshape(-1, action_dim) if len(actions) else np.zeros((0, action_dim), np.float32)
    if arr.shape[0] == n - 1:
        arr = np.concatenate([arr, np.full((1, action_dim), np.nan, np.float32)])
    if arr.shape[0] != n:
        raise DatasetError(f"Got {arr.shape[0]} actions for {n} frames; pass {n} or {n - 1} actions.")
    return pa.FixedSizeListArray.from_arrays(pa.array(arr.ravel(), pa.float32()), action_dim)


def write_table_atomic(table: pa.Table, path: str | Path, metadata: dict[str, Any] | None = None) -> int:
    """Writes a Parquet table (zstd) atomically, optionally with an episode record in its metadata.

    Returns:
        The file's size in bytes.
    """
    if metadata is not None:
        meta = dict(table.schema.metadata or {})
        meta[EPISODE_METADATA_KEY] = json.dumps(metadata, default=_json_default).encode()
        table = table.replace_schema_metadata(meta)
    _atomic(path, lambda tmp: pq.write_table(table, tmp, compression="zstd", row_group_size=ROW_GROUP_SIZE))
    return Path(path).stat().st_size


def read_episode_record(path: str | Path) -> dict[str, Any]:
    """Reads the episode record stored in an episode file's footer (raises :class:`DatasetError`)."""
    try:
        md = pq.read_metadata(path)
    except FileNotFoundError:
        raise DatasetError(f"Episode file {path} is missing; re-collect it with `--resume`.") from None
    except (OSError, pa.ArrowException) as e:
        raise DatasetError(f"Episode file {path} is truncated or corrupt ({e}); delete it and re-collect with `--resume`.") from None
    raw = (md.metadata or {}).get(EPISODE_METADATA_KEY)
    if raw is None:
        raise DatasetError(f"Episode file {path} has no BYOG episode record; it was not written by DatasetWriter.")
    record = json.loads(raw)
    if record.get("length") != md.num_rows:
        raise DatasetError(f"Episode file {path} has {md.num_rows} rows but its record says {record.get('length')}; re-collect it.")
    return record


# --------------------------------------------------------------------------- the writer
class DatasetWriter:
    """Writes a dataset episode by episode; each episode file is complete the moment it exists.

    Typical use (collector, importers)::

        writer = DatasetWriter("data/crafter", info={"env": "crafter", "fps": 10,
                                                     "action_space": space_to_json(env.action_space)})
        for i, episode in enumerate(episodes):
            writer.write_episode(i, frames, actions, rewards=..., terminated=..., truncated=...,
                                 annotations=..., seed=..., success=..., achievements=[...])
        writer.finalize()  # writes meta/episodes.parquet and meta/info.json with the counts

    ``info`` is stored in ``meta/info.json`` together with ``format_version``, ``frame_shape``,
    ``columns`` and the counts. If ``info["action_space"]`` has a ``layout`` (see
    :func:`space_to_json`), actions are flat float32 vectors; otherwise int64 (Discrete).

    Args:
        path: Dataset directory (created if missing).
        info: Dataset-wide facts (env id, spaces, fps, policy, seed, annotator version, ...).
        resume: Continue an existing dataset: keeps its complete episode files, removes temp
            leftovers, and checks that ``info``'s identity keys (``env``, ``policy``, ``seed``,
            ``max_episode_steps``) match. Without it an existing dataset is an error.
        chunk_size: Episodes per ``data/chunk-XXX`` directory.
        check_existing: If False (a distributed worker writing into a dataset its coordinator
            opened), skip the existing-dataset check and the resume scan.
    """

    IDENTITY_KEYS = ("env", "policy", "seed", "max_episode_steps", "format_version")

    def __init__(self, path: str | Path, info: dict[str, Any], resume: bool = False,
                 chunk_size: int = CHUNK_SIZE, check_existing: bool = True) -> None:
        self.path = Path(path)
        self.chunk_size = int(info.get("chunk_size", chunk_size))
        self.info = {**info, "format_version": FORMAT_VERSION, "chunk_size": self.chunk_size}
        layout = (self.info.get("action_space") or {}).get("layout")
        self.action_dim = None if not layout else sum(e["size"] for e in layout)
        self.records: dict[int, dict[str, Any]] = {}
        existing = self.path / "meta" / "info.json"
        if not check_existing:
            self.path.mkdir(parents=True, exist_ok=True)
            return
        has_data = existing.exists() or any(self.path.glob("data/chunk-*/episode_*.parquet"))
        if has_data and not resume:
            raise DatasetError(f"{self.path} already holds a dataset; pass `--resume` (resume=True) to continue it, or choose another output directory.")
        if resume:
            if existing.exists():
                self._check_identity(json.loads(existing.read_text()))
            self.records = scan_episode_files(self.path, remove_partial=True)
        self.path.mkdir(parents=True, exist_ok=True)

    def _check_identity(self, old: dict[str, Any]) -> None:
        for key in self.IDENTITY_KEYS:
            if key in old and key in self.info and old[key] != self.info[key]:
                raise DatasetError(
                    f"Cannot resume {self.path}: it was collected with {key}={old[key]!r} but this run has "
                    f"{key}={self.info[key]!r}; use the same settings or another output directory.")

    @property
    def completed(self) -> set[int]:
        """Indices of the episodes already on disk (after a resume scan, or written here)."""
        return set(self.records)

    def write_episode(self, episode_index: int, frames: Any, actions: Any, *, rewards: Any = None,
                      terminated: Any = None, truncated: Any = None,
                      annotations: Sequence[Sequence[str]] | None = None,
                      intent: Sequence[Sequence[str]] | None = None, extra: dict[str, Any] | None = None,
                      seed: int | None = None, success: bool | None = None,
                      achievements: Iterable[str] = (), **record_fields: Any) -> dict[str, Any]:
        """Writes one episode atomically and returns its record (a row of ``meta/episodes.parquet``).

        Args:
            episode_index: Index (its file is ``episode_relpath(episode_index)``).
            frames: ``uint8 [L, H, W, 3]`` or ``L`` raw byte strings of ``info["frame_shape"]``.
            actions: ``L`` or ``L - 1`` actions (see :func:`build_episode_table`).
            rewards, terminated, truncated, annotations, intent, extra: Per-frame columns.
            seed: The seed the episode was reset with.
            success: Whether the episode reached its goal (None if the env has no notion of it).
            achievements: Names of achievements unlocked during the episode (Crafter).
            **record_fields: More JSON-serialisable per-episode fields (e.g. ``mission``).
        """
        table = build_episode_table(
            episode_index, frames, actions, frame_shape=self.info.get("frame_shape"), rewards=rewards,
            terminated=terminated, truncated=truncated, annotations=annotations, intent=intent,
            extra=extra, action_dim=self.action_dim)
        if isinstance(frames, np.ndarray):
            shape = list(frames.shape[1:])
            if self.info.get("frame_shape") not in (None, shape):
                raise DatasetError(f"Episode {episode_index} has frames of shape {shape} but the dataset's are {self.info['frame_shape']}.")
            self.info["frame_shape"] = shape
        rel = episode_relpath(episode_index, self.chunk_size)
        rewards_col = table.column("reward").to_numpy()
        record = {
            "episode_index": int(episode_index), "length": table.num_rows,
            "num_steps": _count_actions(table.column("action")),
            "frame_shape": list(self.info["frame_shape"]),
            "seed": None if seed is None else int(seed), "return": float(rewards_col.sum()),
            "success": None if success is None else bool(success),
            "achievements": sorted(set(achievements)),
            "num_annotations": int(pc.sum(pc.list_value_length(table.column("annotations"))).as_py() or 0),
            "file": rel, "columns": table.column_names, **record_fields,
        }
        record["bytes"] = write_table_atomic(table, self.path / rel, record)
        self.records[int(episode_index)] = record
        return record

    def finalize(self, **info_updates: Any) -> dict[str, Any]:
        """Rescans ``data/`` and writes ``meta/episodes.parquet`` and ``meta/info.json`` atomically.

        Returns:
            The ``info`` dict written (with ``num_episodes``, ``num_frames``, ``num_steps``,
            ``num_annotations``, ``total_bytes`` and ``columns``).
        """
        self.info.update(info_updates)
        return write_meta(self.path, self.info)


def scan_episode_files(path: str | Path, remove_partial: bool = False) -> dict[int, dict[str, Any]]:
    """Reads the records of all complete episode files under ``path/data``.

    Args:
        path: Dataset directory.
        remove_partial: Delete ``*.tmp`` leftovers of a killed writer and unreadable episode files
            (they will be re-collected) instead of raising.
    """
    path = Path(path)
    records: dict[int, dict[str, Any]] = {}
    for f in sorted(path.glob("data/chunk-*/*")):
        if f.name.endswith(".tmp"):
            if remove_partial:
                f.unlink(missing_ok=True)
            continue
        m = _EPISODE_RE.search(f.name)
        if not m:
            continue
        try:
            record = read_episode_record(f)
        except DatasetError:
            if not remove_partial:
                raise
            f.unlink(missing_ok=True)
            continue
        record["file"] = str(f.relative_to(path))
        record["bytes"] = f.stat().st_size
        records[int(m.group(1))] = record
    return records


def write_meta(path: str | Path, info: dict[str, Any]) -> dict[str, Any]:
    """Rebuilds ``meta/`` of a dataset from its episode files (used by writers and the Ray merge)."""
    path = Path(path)
    records = scan_episode_files(path)
    rows = [records[i] for i in sorted(records)]
    columns: list[str] = []
    for r in rows:
        columns += [c for c in r.get("columns", []) if c not in columns]
    index = pa.Table.from_pylist([
        {"episode_index": r["episode_index"], "length": r["length"], "num_steps": r["num_steps"],
         "seed": r.get("seed"), "return": r["return"], "success": r.get("success"),
         "achievements": r.get("achievements", []), "num_annotations": r["num_annotations"],
         "file": r["file"], "bytes": r["bytes"], "record": json.dumps(r, default=_json_default)}
        for r in rows
    ], schema=EPISODES_SCHEMA)
    write_table_atomic(index, path / "meta" / "episodes.parquet")
    info = {
        **info, "format_version": FORMAT_VERSION, "num_episodes": len(rows),
        "num_frames": sum(r["length"] for r in rows), "num_steps": sum(r["num_steps"] for r in rows),
        "num_annotations": sum(r["num_annotations"] for r in rows),
        "total_bytes": sum(r["bytes"] for r in rows), "columns": columns,
    }
    if rows and "frame_shape" not in info:
        info["frame_shape"] = rows[0]["frame_shape"]
    atomic_write_json(path / "meta" / "info.json", info)
    return info


def _count_actions(column: pa.ChunkedArray) -> int:
    """Number of rows with an action (int ``>= 0``, or a vector without NaN)."""
    if pa.types.is_integer(column.type):
        return int(pc.sum(pc.greater_equal(column, 0)).as_py() or 0)
    first = pc.list_element(column, 0)
    return int(pc.sum(pc.invert(pc.is_nan(first))).as_py() or 0)


EPISODES_SCHEMA = pa.schema([
    ("episode_index", pa.int64()), ("length", pa.int64()), ("num_steps", pa.int64()),
    ("seed", pa.int64()), ("return", pa.float64()), ("success", pa.bool_()),
    ("achievements", pa.list_(pa.string())), ("num_annotations", pa.int64()),
    ("file", pa.string()), ("bytes", pa.int64()), ("record", pa.string()),
])
"""Schema of ``meta/episodes.parquet``; ``record`` is the full episode record as JSON."""


def add_column(path: str | Path, name: str, values_per_episode: Callable[[int, pa.Table], Any],
               episodes: Iterable[int] | None = None) -> None:
    """Adds or replaces a per-step float column in existing episode files, atomically per file.

    Used e.g. by ``agents.embed`` to store an ``embedding`` column. Each file is rewritten to a
    temp name and renamed, so a crash leaves every episode either old or new; ``meta/`` is
    rebuilt at the end.

    Args:
        path: Dataset directory.
        name: Column name (not one of :data:`CORE_COLUMNS`).
        values_per_episode: ``f(episode_index, table) -> array [L] or [L, D]`` (float32-castable).
        episodes: Episode indices to update (default all).
    """
    if name in CORE_COLUMNS or name == "intent":
        raise DatasetError(f"`{name}` is a core column and cannot be replaced; choose another name.")
    path = Path(path)
    info_path = path / "meta" / "info.json"
    if not info_path.exists():
        raise DatasetError(f"{info_path} is missing; {path} is not a finalised dataset.")
    info = json.loads(info_path.read_text())
    records = scan_episode_files(path)
    wanted = sorted(records) if episodes is None else list(episodes)
    for i in wanted:
        if i not in records:
            raise DatasetError(f"Episode {i} does not exist in {path}.")
        f = path / records[i]["file"]
        pf = pq.ParquetFile(f)
        table = pf.read()
        meta = (pf.schema_arrow.metadata or {})
        column = _float_column(values_per_episode(i, table), table.num_rows, name)
        if name in table.column_names:
            table = table.set_column(table.column_names.index(name), name, column)
        else:
            table = table.append_column(name, column)
        record = json.loads(meta[EPISODE_METADATA_KEY])
        record["columns"] = table.column_names
        table = table.replace_schema_metadata({k: v for k, v in meta.items() if k != EPISODE_METADATA_KEY})
        write_table_atomic(table, f, record)
    write_meta(path, info)
