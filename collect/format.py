"""The BYOG dataset format: layout, episode tables, the action codec and episode records.

One Parquet file per episode plus a small ``meta/`` index; writing lives in :mod:`collect.writer`,
reading in :mod:`collect.dataset`.

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
frame           binary (PPM image: header + raw       observation ``o_t``, lossless, zstd-compressed
                ``H*W*3`` uint8 bytes; 1.0: raw)      (PIL / ``datasets.Image`` decode it)
action          int64 (Discrete) or                   action taken *from* ``o_t``; ``-1`` (Discrete)
                fixed_size_list<float32>[D] (others)  or NaN (vector) on the last row (no action)
reward          float32                               reward received on arriving at ``o_t`` (0 at t=0)
terminated      bool                                  ``o_t`` is terminal (only possibly on the last row)
truncated       bool                                  the episode was cut at ``o_t`` (time limit)
annotations     list<string>                          sentences emitted with ``o_t`` (reset info at t=0)
intent          list<string> (optional)               the policy's stated intent at ``o_t``
frame_index     int64 (1.1)                           ``t`` again, by the name LeRobot/HF tools use
timestamp       float32 (1.1, when fps is known)      ``t / fps`` seconds
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
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from collect.errors import DatasetError
from collect.hf_card import FRAME_FORMAT, frame_header, ppm_frames, time_columns

FORMAT_VERSION = "1.1"
"""On-disk format version written to ``meta/info.json["format_version"]``. 1.1: frames are PPM
images and rows have ``frame_index``/``timestamp`` (:mod:`collect.hf_card`); 1.0 datasets still
read, and resume as 1.0."""
CHUNK_SIZE = 1000
"""Episodes per ``data/chunk-XXX`` directory."""
ROW_GROUP_SIZE = 256
"""Rows per Parquet row group: the unit the window reader decodes and caches."""
EPISODE_METADATA_KEY = b"byog.episode"
CORE_COLUMNS = (
    "episode_index", "step", "frame", "action", "reward", "terminated", "truncated", "annotations",
)
_EPISODE_RE = re.compile(r"episode_(\d{6,})\.parquet$")


# --------------------------------------------------------------------------- paths
def episode_relpath(episode_index: int, chunk_size: int = CHUNK_SIZE) -> str:
    """Relative path of an episode file, e.g. ``data/chunk-000/episode_000042.parquet``."""
    return f"data/chunk-{episode_index // chunk_size:03d}/episode_{episode_index:06d}.parquet"


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
    frame_format: str = "raw",
    fps: float | None = None,
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
        frame_format: ``ppm`` (format 1.1: frames as PPM images) or ``raw`` (format 1.0).
        fps: With it, ``frame_index`` and ``timestamp`` columns are added (format 1.1).
    """
    frame_arr, frame_shape = _raw_frame_column(frames, frame_shape)
    n = len(frame_arr)
    if frame_format == FRAME_FORMAT and n:  # format 1.1: the same bytes behind a PPM header
        frame_arr = ppm_frames(_frame_matrix(frame_arr, n), frame_shape)
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
    if fps is not None:
        cols.update(time_columns(n, fps))
    cols.update(_extra_columns(extra or {}, n, set(cols)))
    return pa.table(cols)


def _raw_frame_column(frames: np.ndarray | Sequence[bytes],
                      frame_shape: Sequence[int] | None) -> tuple[pa.Array, Sequence[int]]:
    """The frames as one binary column of raw ``H*W*C`` bytes per frame, and their shape.

    Accepts either a ``uint8 [L, H, W, C]`` array (its shape wins) or ``L`` byte strings with
    ``frame_shape``; every frame's size is checked here, because a short frame would otherwise
    only surface when a reader reshapes it.
    """
    if isinstance(frames, np.ndarray):
        if frames.dtype != np.uint8 or frames.ndim != 4:
            raise DatasetError(f"Frames must be a uint8 [L, H, W, C] array, got {frames.dtype} {frames.shape}.")
        n = frames.shape[0]
        return _binary_from_array(np.ascontiguousarray(frames).reshape(n, -1)), frames.shape[1:]
    if frame_shape is None:
        raise DatasetError("Pass `frame_shape` when frames are given as raw bytes.")
    size = int(np.prod(frame_shape))
    bad = [i for i, f in enumerate(frames) if len(f) != size]
    if bad:
        raise DatasetError(f"Frame {bad[0]} has {len(frames[bad[0]])} bytes, expected {size} for shape {list(frame_shape)}.")
    return pa.array(frames, pa.binary()), frame_shape


def _extra_columns(extra: dict[str, Any], n: int, taken: set[str]) -> dict[str, pa.Array]:
    """The caller's extra per-frame numeric columns as float32, refusing a name that is already
    a column (``taken``): silently overwriting a core column would corrupt the episode."""
    cols = {}
    for name, values in extra.items():
        if name in taken:
            raise DatasetError(f"Extra column name `{name}` collides with a core column; rename it.")
        cols[name] = _float_column(values, n, name)
    return cols


def _frame_matrix(col: pa.Array, n: int) -> np.ndarray:
    """A binary column of equal-length raw frames as ``uint8 [n, size]`` (no copy)."""
    offsets = np.frombuffer(col.buffers()[1], np.int32, n + 1, col.offset * 4)
    size = int(offsets[1] - offsets[0])
    return np.frombuffer(col.buffers()[2], np.uint8, n * size, int(offsets[0])).reshape(n, size)


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


def episode_file_status(path: str | Path) -> tuple[str, dict[str, Any] | None, str]:
    """Whose an episode file is and whether it is whole: ``(status, record, detail)``.

    ``status`` is ``"ok"`` (a BYOG episode file; ``record`` is its episode record), ``"missing"``,
    ``"corrupt"`` (unreadable, or its row count disagrees with its own record) or ``"foreign"``
    (a readable Parquet file without a BYOG episode record: another tool wrote it).
    """
    try:
        md = pq.read_metadata(path)
    except FileNotFoundError:
        return "missing", None, "missing"
    except (OSError, pa.ArrowException) as e:
        return "corrupt", None, f"truncated or corrupt: {e}"
    raw = (md.metadata or {}).get(EPISODE_METADATA_KEY)
    if raw is None:
        return "foreign", None, "a Parquet file without a BYOG episode record"
    try:
        record = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        return "corrupt", None, f"its episode record is not valid JSON ({e})"
    if not isinstance(record, dict):
        return "corrupt", None, "its episode record is not a JSON object"
    if record.get("length") != md.num_rows:
        return "corrupt", record, f"{md.num_rows} rows but its record says {record.get('length')}"
    return "ok", record, ""


def read_episode_record(path: str | Path) -> dict[str, Any]:
    """Reads the episode record stored in an episode file's footer (raises :class:`DatasetError`)."""
    status, record, detail = episode_file_status(path)
    if status == "missing":
        raise DatasetError(f"Episode file {path} is missing; re-collect it with `--resume`.")
    if status == "corrupt":
        raise DatasetError(f"Episode file {path} is {detail}; delete it and re-collect with `--resume`.")
    if status == "foreign":
        raise DatasetError(f"Episode file {path} was not written by BYOG ({detail}); move it out of the dataset.")
    assert record is not None
    return record


def is_byog_info(info: dict[str, Any]) -> bool:
    """Whether a parsed ``meta/info.json`` is one BYOG wrote (LeRobot's has ``codebase_version``)."""
    return "format_version" in info and "codebase_version" not in info and "data_path" not in info


def describe_foreign_info(info: dict[str, Any]) -> str:
    """A few words on whose dataset a non-BYOG ``meta/info.json`` describes."""
    if "codebase_version" in info:
        return f"a LeRobot {info['codebase_version']} dataset"
    return "its meta/info.json has no BYOG format_version"


TEMP_FILE_RE = re.compile(r"^(episode_\d{6,}\.parquet|info\.json|episodes\.parquet)\.[^/]+\.tmp$")
"""Names of the temporary files our atomic writes leave behind when killed (safe to delete)."""


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


# --------------------------------------------------------------------------- reading rows
def _decode(table: pa.Table, frame_shape: tuple[int, ...], f: Path) -> dict[str, Any]:
    """Turns an Arrow table of episode rows into numpy arrays (frames zero-copy where possible)."""
    out: dict[str, Any] = {}
    n = table.num_rows
    for name in table.column_names:
        col = table.column(name).combine_chunks()
        if name == "frame":
            out[name] = _frames(col, n, frame_shape, f)
        elif name in ("annotations", "intent"):
            out[name] = col.to_pylist()
        elif isinstance(col.type, pa.FixedSizeListType):
            flat = col.flatten().to_numpy(zero_copy_only=False)
            out[name] = flat.reshape(n, col.type.list_size)
        else:
            out[name] = col.to_numpy(zero_copy_only=False)
    return out


def _frames(col: pa.Array, n: int, shape: tuple[int, ...], f: Path) -> np.ndarray:
    """The frame column as ``uint8 [n, *shape]`` (a view where possible), every frame checked
    against ``shape``: its length, and for PPM frames the header itself."""
    size = int(np.prod(shape))
    header = frame_header(shape)
    head = len(header)
    if pa.types.is_large_binary(col.type):  # 64-bit offsets (other writers, concatenations)
        offset_type = np.int64
    elif pa.types.is_binary(col.type):
        offset_type = np.int32
    else:
        raise DatasetError(f"Episode file {f}: column 'frame' has Arrow type {col.type}; frames are "
                           "binary (PPM images or raw bytes). The file does not match this dataset.")
    if n == 0:
        return np.zeros((0, *shape), np.uint8)
    if col.null_count:
        raise DatasetError(f"Episode file {f}: {col.null_count} frame(s) are null; every row needs a frame. "
                           "The file is damaged: re-collect or re-import that episode.")
    width = np.dtype(offset_type).itemsize
    offsets = np.frombuffer(col.buffers()[1], offset_type, n + 1, col.offset * width)
    lengths = np.diff(offsets)
    if (lengths == size + head).all():  # format 1.1 PPM frames: skip the fixed header
        data = np.frombuffer(col.buffers()[2], np.uint8, n * (size + head), int(offsets[0]))
        rows = data.reshape(n, size + head)
        wrong = np.flatnonzero((rows[:, :head] != np.frombuffer(header, np.uint8)).any(1))
        if wrong.size:
            _bad_frame(f, int(wrong[0]), col[int(wrong[0])].as_py(), shape)
        return rows[:, head:].reshape(n, *shape)  # a view, no copy
    if (lengths != size).any():
        bad = int(np.argmax(lengths != size))
        _bad_frame(f, bad, col[bad].as_py(), shape)
    data = np.frombuffer(col.buffers()[2], np.uint8, n * size, int(offsets[0]))
    return data.reshape(n, *shape)


_PPM_RE = re.compile(rb"P([1-7])\s+(\d{1,9})\s+(\d{1,9})\s+(\d{1,9})\s")


def _bad_frame(f: Path, row: int, value: bytes, shape: tuple[int, ...]) -> None:
    """Raises the error for a frame that does not fit ``shape``, saying what it is instead."""
    size = int(np.prod(shape))
    want = f"meta/info.json frame_shape {list(shape)} needs {size} pixel bytes (a P6 {shape[1]}x{shape[0]} PPM image or raw bytes)"
    m = _PPM_RE.match(value[:64])
    if m:
        kind, w, h, maxval = m.group(1).decode(), *(int(x) for x in m.groups()[1:])
        if (kind, w, h, maxval) == ("6", shape[1], shape[0], 255):
            got = (f"a P6 {w}x{h} PPM image whose header is written {value[:m.end()]!r}, not the canonical "
                   f"{frame_header(shape)!r} the reader expects, and {len(value) - m.end()} pixel bytes follow it")
        else:
            got = f"a P{kind} {w}x{h} PPM image (maxval {maxval})"
    elif value[:2] == b"P6" and len(value) == size + len(frame_header(shape)):
        got = f"a damaged PPM header {value[:len(frame_header(shape))]!r}"
    else:
        got = f"{len(value)} bytes"
    raise DatasetError(f"Episode file {f}: the frame at row {row} is {got}, but {want}; the file does "
                       "not match this dataset.")


class EpisodeTable:
    """The rows of one episode file, decoded on demand, for code outside ``collect`` that must
    not depend on pyarrow (e.g. the callback of :func:`collect.writer.add_column`).

    Args:
        table: The episode's Arrow table.
        frame_shape: The dataset's ``[H, W, 3]``.
        path: The file (named in errors).
    """

    def __init__(self, table: pa.Table, frame_shape: Sequence[int], path: str | Path = "") -> None:
        self._table, self._shape, self._path = table, tuple(frame_shape), Path(path)

    @property
    def num_rows(self) -> int:
        """Rows (frames) of the episode."""
        return self._table.num_rows

    @property
    def column_names(self) -> list[str]:
        """Names of the stored columns."""
        return list(self._table.column_names)

    def column(self, name: str) -> list[Any] | np.ndarray:
        """One column decoded like :meth:`collect.dataset.Dataset.read_column`."""
        if name not in self._table.column_names:
            raise DatasetError(f"Episode file {self._path} has no column {name!r}; available: {self.column_names}.")
        return _decode(self._table.select([name]), self._shape, self._path)[name]

    @property
    def frames(self) -> np.ndarray:
        """``uint8 [L, H, W, 3]``."""
        return self.column("frame")
