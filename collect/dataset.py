"""Reading BYOG datasets: validation, whole episodes, and lazily-read fixed-length windows.

The on-disk format is documented in :mod:`collect.writer` (re-exported here). Episodes are
addressed by *position* ``0 … num_episodes - 1`` in episode-index order; for datasets written by
the collector positions and ``episode_index`` values coincide.

Example::

    ds = open_dataset("data/crafter")                  # validates meta against the files
    ep = ds.episode(0)                                 # Episode(frames uint8 [L,H,W,3], ...)
    train, val = split_episodes(ds.num_episodes, 0.1, seed=0)
    windows = WindowDataset("data/crafter", window=32, stride=16, episodes=train)
    loader = DataLoader(windows, batch_size=8, shuffle=True, num_workers=2,
                        collate_fn=collate_windows)
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from collect.errors import DatasetError
from collect.format import (  # noqa: F401  (re-exported: the dataset API lives here)
    CHUNK_SIZE,
    FORMAT_VERSION,
    _decode,
    action_layout,
    episode_relpath,
    flatten_action,
    space_to_json,
    unflatten_action,
)
from collect.hf_card import frame_header
from collect.untrusted import check_parquet_sizes, contained, read_json_object, regular
from collect.writer import DatasetWriter, add_column  # noqa: F401  (re-exported)

_ROW_COLUMNS = ("frame", "action", "reward", "terminated", "truncated", "annotations")
MAX_FRAME_SIDE = 4096
"""Largest frame height/width a dataset may declare (MineRL's 640 is the largest we collect):
``frame_shape`` sizes every buffer the reader allocates, so it is bounded first."""


@dataclass
class Episode:
    """One episode, fully decoded. ``L`` = number of rows (observations)."""

    index: int
    """The episode's ``episode_index``."""
    frames: np.ndarray
    """``uint8 [L, H, W, 3]``."""
    actions: np.ndarray
    """``int64 [L]`` (Discrete; ``-1`` where no action was taken) or ``float32 [L, D]``."""
    rewards: np.ndarray
    """``float32 [L]``: reward received on arriving at each frame."""
    terminated: np.ndarray
    """``bool [L]``."""
    truncated: np.ndarray
    """``bool [L]``."""
    annotations: list[list[str]]
    """Sentences emitted with each frame."""
    intent: list[list[str]] | None = None
    """The policy's intent per frame, if recorded."""
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    """Extra per-frame columns (``float32 [L]`` or ``[L, D]``)."""
    record: dict[str, Any] = field(default_factory=dict)
    """The episode's row of ``meta/episodes.parquet`` (seed, return, success, achievements, ...)."""

    @property
    def length(self) -> int:
        """Number of frames."""
        return int(self.frames.shape[0])


class Dataset:
    """A dataset directory opened for reading; see :func:`open_dataset`."""

    def __init__(self, path: str | Path, validate: bool = True) -> None:
        self.path = Path(path)
        self.info = _read_info(self.path)
        self.records = _read_episode_index(self.path)
        self.frame_shape = _frame_shape(self.info, self.path / "meta" / "info.json")
        self.action_dim: int | None = _action_dim(self.info, self.path / "meta" / "info.json")
        self._files: dict[int, pq.ParquetFile] = {}
        self._pid = os.getpid()
        if validate:
            self.validate(deep=False)

    def __getstate__(self) -> dict[str, Any]:
        # Open file handles stay behind: each process (DataLoader worker) opens its own.
        return {**self.__dict__, "_files": {}}

    # ---------------------------------------------------------------- basic facts
    @property
    def num_episodes(self) -> int:
        """Number of episodes."""
        return len(self.records)

    @property
    def lengths(self) -> list[int]:
        """Rows (frames) per episode, by position."""
        return [int(r["length"]) for r in self.records]

    def file(self, position: int) -> Path:
        """Path of the episode file at ``position``."""
        return self.path / self.records[position]["file"]

    def validate(self, deep: bool = False) -> None:
        """Checks every listed episode file against ``meta``; raises :class:`DatasetError`.

        Args:
            deep: Also decode every episode (catches corrupt pages and frame-size mismatches).
        """
        for pos, rec in enumerate(self.records):
            f = self.file(pos)
            if not f.exists():
                raise DatasetError(f"Episode file {f} listed in meta/episodes.parquet is missing; restore it or re-collect with `--resume`.")
            regular(f, what="Episode file")  # a FIFO would block the reader forever
            try:
                md = pq.read_metadata(f)
            except (OSError, pa.ArrowException) as e:
                raise DatasetError(f"Episode file {f} is truncated or corrupt ({e}); delete it and re-collect with `--resume`.") from None
            if md.num_rows != rec["length"]:
                raise DatasetError(f"Episode file {f} has {md.num_rows} rows but meta/episodes.parquet says {rec['length']}; the dataset is inconsistent, re-collect that episode.")
            if deep:
                self.episode(pos)

    # ---------------------------------------------------------------- reading
    def _parquet(self, position: int) -> pq.ParquetFile:
        if os.getpid() != self._pid:  # forked into a DataLoader worker: never share file handles
            self._files, self._pid = {}, os.getpid()
        pf = self._files.get(position)
        if pf is None:
            f = regular(self.file(position), what="Episode file")
            try:
                pf = pq.ParquetFile(f)
            except (OSError, pa.ArrowException) as e:
                raise DatasetError(f"Episode file {f} cannot be opened ({e}); re-collect it with `--resume`.") from None
            # sizes the footer declares, checked before any page is decompressed
            frame_bytes = int(np.prod(self.frame_shape)) + len(frame_header(self.frame_shape))
            check_parquet_sizes(f, pf.metadata, row_bytes={"frame": frame_bytes}, what="Episode file",
                                fix="Re-collect or re-import that episode.")
            self._files[position] = pf
        return pf

    def read_rows(self, position: int, row_groups: Sequence[int] | None = None,
                  columns: Sequence[str] = ()) -> dict[str, Any]:
        """Decodes some row groups (default: all) of one episode into numpy arrays / lists."""
        pf = self._parquet(position)
        f = self.file(position)
        wanted = [c for c in (*_ROW_COLUMNS, *columns) if c in pf.schema_arrow.names]
        missing = [c for c in (*_ROW_COLUMNS, *columns) if c not in pf.schema_arrow.names]
        if missing:
            raise DatasetError(f"Episode file {f} has no column(s) {missing}; available: {pf.schema_arrow.names}.")
        try:
            groups = list(range(pf.num_row_groups)) if row_groups is None else list(row_groups)
            table = pf.read_row_groups(groups, columns=wanted, use_threads=False)
            return _decode(table, self.frame_shape, f)
        except (OSError, pa.ArrowException) as e:
            raise DatasetError(f"Episode file {f} is corrupt ({e}); delete it and re-collect with `--resume`.") from None

    def read_column(self, position: int, name: str) -> list[Any] | np.ndarray:
        """One column of the episode at ``position``, reading nothing else (no frames).

        Returns:
            A list per row for list columns (``annotations``, ``intent``), frames as
            ``uint8 [L, H, W, 3]``, vector columns as ``[L, D]``, scalars as ``[L]`` arrays.

        Raises:
            DatasetError: naming the file, for a missing column or an unreadable file.
        """
        pf = self._parquet(position)
        f = self.file(position)
        if name not in pf.schema_arrow.names:
            raise DatasetError(f"Episode file {f} has no column {name!r}; available: {pf.schema_arrow.names}.")
        try:
            return _decode(pf.read(columns=[name], use_threads=False), self.frame_shape, f)[name]
        except (OSError, pa.ArrowException) as e:
            raise DatasetError(f"Episode file {f} is corrupt ({e}); delete it and re-collect with `--resume`.") from None

    def episode(self, position: int) -> Episode:
        """Decodes the whole episode at ``position`` (0 … ``num_episodes - 1``)."""
        if not 0 <= position < self.num_episodes:
            raise DatasetError(f"Episode position {position} is out of range; {self.path} has {self.num_episodes} episodes.")
        rec = self.records[position]
        pf = self._parquet(position)
        extras = [c for c in pf.schema_arrow.names if c not in (*_ROW_COLUMNS, "episode_index", "step", "intent")]
        rows = self.read_rows(position, columns=[*extras, *(["intent"] if "intent" in pf.schema_arrow.names else [])])
        if len(rows["frame"]) != rec["length"]:
            raise DatasetError(f"Episode file {self.file(position)} decodes to {len(rows['frame'])} rows, expected {rec['length']}.")
        return Episode(
            index=int(rec["episode_index"]), frames=rows["frame"], actions=rows["action"],
            rewards=rows["reward"], terminated=rows["terminated"], truncated=rows["truncated"],
            annotations=rows["annotations"], intent=rows.get("intent"),
            extra={c: rows[c] for c in extras}, record=rec)

    def iter_episodes(self) -> Iterator[Episode]:
        """Yields every episode in order, one at a time."""
        for pos in range(self.num_episodes):
            yield self.episode(pos)

    def __len__(self) -> int:
        return self.num_episodes


def open_dataset(path: str | Path, validate: bool = True) -> Dataset:
    """Opens a dataset directory and checks ``meta`` against the episode files.

    Raises:
        DatasetError: naming the missing, truncated, corrupt or inconsistent file and the fix.
    """
    return Dataset(path, validate=validate)


def _read_info(path: Path) -> dict[str, Any]:
    if not path.is_dir():
        raise DatasetError(f"Dataset directory {path} does not exist; collect one with `python collect/rollout.py --out {path} ...`.")
    f = contained(path, "meta/info.json", what="Dataset metadata")
    if not f.exists():
        raise DatasetError(f"{f} is missing; {path} is not a finished dataset (run the collector with `--resume` to finish it).")
    info = read_json_object(f, what="dataset", fix="delete it and rerun the collector with --resume "
                            "(meta/ is rebuilt from the episode files).")
    version = str(info.get("format_version", ""))
    if version.split(".")[0] != FORMAT_VERSION.split(".")[0]:
        raise DatasetError(f"{f} has format_version {version!r}; this reader supports {FORMAT_VERSION}. Re-collect or convert the dataset.")
    return info


def _read_episode_index(path: Path) -> list[dict[str, Any]]:
    f = contained(path, "meta/episodes.parquet", what="Dataset metadata")
    if not f.exists():
        raise DatasetError(f"{f} is missing; re-run the collector with `--resume` to rebuild meta/.")
    rebuild = "re-run the collector with `--resume` to rebuild it."
    try:
        pf = pq.ParquetFile(f)
        check_parquet_sizes(f, pf.metadata, what="Episode index", fix=rebuild.capitalize())
        rows = pf.read(use_threads=False).to_pylist()
    except (OSError, pa.ArrowException) as e:
        raise DatasetError(f"{f} is truncated or corrupt ({e}); {rebuild}") from None
    out = []
    for r in rows:
        try:
            full = json.loads(r.pop("record")) if r.get("record") else {}
        except (ValueError, UnicodeDecodeError):
            full = None
        if not isinstance(full, dict):
            raise DatasetError(f"{f}: the record of episode {r.get('episode_index')} is not a JSON object; {rebuild}")
        rec = {**full, **r}
        for key in ("episode_index", "length"):
            value = rec.get(key)
            if not isinstance(value, int) or isinstance(value, bool) or value < (0 if key == "episode_index" else 1):
                raise DatasetError(f"{f}: an episode's {key!r} is {value!r}, not a {'non-negative' if key == 'episode_index' else 'positive'} integer; {rebuild}")
        contained(path, rec.get("file"), what="Episode file",
                  fix="The file column of meta/episodes.parquet names files inside the dataset only; "
                      "rebuild meta/ with the collector's `--resume`.")
        out.append(rec)
    return sorted(out, key=lambda r: r["episode_index"])


def _frame_shape(info: dict[str, Any], f: Path) -> tuple[int, int, int]:
    """``info["frame_shape"]`` checked: three positive integers ``[H, W, 3]``, sides bounded."""
    shape = info.get("frame_shape")
    ok = (isinstance(shape, list) and len(shape) == 3
          and all(isinstance(x, int) and not isinstance(x, bool) for x in shape)
          and 1 <= shape[0] <= MAX_FRAME_SIDE and 1 <= shape[1] <= MAX_FRAME_SIDE and shape[2] == 3)
    if not ok:
        raise DatasetError(f"{f} has frame_shape {str(shape)[:60]}; it must be [height, width, 3] with "
                           f"sides from 1 to {MAX_FRAME_SIDE}. Re-run the collector's finalize step (--resume).")
    fps = info.get("fps")
    if fps is not None and (not isinstance(fps, (int, float)) or isinstance(fps, bool) or not 0 < fps < 1e6):
        raise DatasetError(f"{f} has fps {str(fps)[:40]}; it must be a positive number of frames per second. "
                           "Fix it in meta/info.json.")
    return (shape[0], shape[1], shape[2])


def _action_dim(info: dict[str, Any], f: Path) -> int | None:
    """Width of vector actions from ``info["action_space"]["layout"]`` (None: Discrete)."""
    space = info.get("action_space") or {}
    layout = space.get("layout") if isinstance(space, dict) else None
    if not layout:
        return None
    if not isinstance(layout, list) or not all(
            isinstance(e, dict) and isinstance(e.get("size"), int) and 1 <= e["size"] <= 1 << 16
            for e in layout):
        raise DatasetError(f"{f}: action_space.layout must be a list of {{key, shape, offset, size}} "
                           "entries with positive integer sizes; the metadata is damaged.")
    return sum(e["size"] for e in layout)


# =========================================================================== windows
class WindowDataset:
    """``torch.utils.data.Dataset`` of fixed-length windows that never cross an episode boundary.

    Window starts in an episode of ``L`` frames are ``0, S, 2S, …`` up to the first start whose
    window reaches the episode's end, so every frame is covered and only an episode's last
    window (or an episode shorter than ``T``) is padded. Rows are read lazily, one Parquet row
    group at a time, through a small per-process LRU cache; the dataset itself is cheap to
    pickle into DataLoader workers, which open their own files.

    Items are dicts: ``frames uint8 [T,H,W,3]`` (zeros on padding), ``prev_frame uint8 [H,W,3]``
    (the frame before the window; the first frame itself at an episode's start), ``valid bool [T]``,
    ``actions int64 [T]`` (Discrete; ``-1`` on padding and where no action was taken) or
    ``float32 [T, D]`` (vector actions; NaN there), ``action_valid bool [T]``,
    ``rewards float32 [T]``, ``annotations`` (T lists of sentences, ``[]`` on padding),
    ``episode_index: int``, ``start: int``, and each requested extra column as
    ``float32 [T, D]`` (``intent`` comes back as T lists of sentences).

    Args:
        path: Dataset directory.
        window: T, frames per window.
        stride: S, frames between consecutive window starts (default T).
        episodes: Positions of the episodes to use (default all), e.g. from :func:`split_episodes`.
        columns: Extra columns to return (e.g. ``("embedding",)``, ``("intent",)``).
        cache_size: Decoded row groups kept per process.
    """

    def __init__(self, path: str | Path, window: int, stride: int | None = None,
                 episodes: Sequence[int] | None = None, columns: Sequence[str] = (),
                 cache_size: int = 16) -> None:
        if window < 1:
            raise DatasetError(f"window must be >= 1 frame, got {window}.")
        stride = window if stride is None else stride
        if stride < 1:
            raise DatasetError(f"stride must be >= 1 frame, got {stride}.")
        self.dataset = open_dataset(path)
        self.window, self.stride, self.columns = int(window), int(stride), tuple(columns)
        available = set(self.dataset.info.get("columns", []))
        missing = [c for c in self.columns if c not in available]
        if missing:
            raise DatasetError(f"{path} has no column(s) {missing}; available extra columns: {sorted(available - set(_ROW_COLUMNS))}.")
        n = self.dataset.num_episodes
        self.episodes = list(range(n)) if episodes is None else [int(e) for e in episodes]
        bad = [e for e in self.episodes if not 0 <= e < n]
        if bad:
            raise DatasetError(f"Episode positions {bad[:5]} are out of range; {path} has {n} episodes.")
        self.cache_size = int(cache_size)
        self._cache: OrderedDict[tuple[int, int], dict[str, Any]] = OrderedDict()
        self._groups: dict[int, np.ndarray] = {}
        self._cache_pid = os.getpid()
        self.index: list[tuple[int, int]] = []
        for pos in self.episodes:
            for start in window_starts(self.dataset.lengths[pos], self.window, self.stride):
                self.index.append((pos, start))

    def __len__(self) -> int:
        return len(self.index)

    def __getstate__(self) -> dict[str, Any]:
        # Decoded blocks stay behind: a worker process starts with an empty cache.
        return {**self.__dict__, "_cache": OrderedDict(), "_groups": {}}

    def _group_starts(self, pos: int) -> np.ndarray:
        starts = self._groups.get(pos)
        if starts is None:
            md = self.dataset._parquet(pos).metadata
            starts = np.cumsum([0] + [md.row_group(k).num_rows for k in range(md.num_row_groups)])
            self._groups[pos] = starts
        return starts

    def _group(self, pos: int, k: int) -> dict[str, Any]:
        if os.getpid() != self._cache_pid:
            self._cache, self._groups, self._cache_pid = OrderedDict(), {}, os.getpid()
        key = (pos, k)
        block = self._cache.get(key)
        if block is None:
            block = self.dataset.read_rows(pos, [k], self.columns)
            self._cache[key] = block
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return block

    def _rows(self, pos: int, start: int, stop: int) -> dict[str, Any]:
        starts = self._group_starts(pos)
        first = int(np.searchsorted(starts, start, side="right") - 1)
        last = int(np.searchsorted(starts, stop - 1, side="right") - 1)
        parts = [(self._group(pos, k), int(starts[k])) for k in range(first, last + 1)]
        out: dict[str, Any] = {}
        for name in parts[0][0]:
            pieces = [b[name][max(start - s, 0): stop - s] for b, s in parts]
            out[name] = [x for p in pieces for x in p] if isinstance(pieces[0], list) else np.concatenate(pieces)
        return out

    def __getitem__(self, i: int) -> dict[str, Any]:
        import torch

        pos, start = self.index[i]
        length = self.dataset.lengths[pos]
        stop = min(start + self.window, length)
        n, T = stop - start, self.window
        rows = self._rows(pos, start, stop)
        # the frame before the window (the first frame itself at an episode's start: a zero
        # delta), so frame-delta encoders see the change into the window's first frame
        prev = self._rows(pos, start - 1, start)["frame"][0] if start > 0 else rows["frame"][0]
        frames = np.zeros((T, *self.dataset.frame_shape), np.uint8)
        frames[:n] = rows["frame"]
        valid = np.zeros(T, bool)
        valid[:n] = True
        if self.dataset.action_dim is None:
            actions = np.full(T, -1, np.int64)
            actions[:n] = rows["action"]
            action_valid = actions >= 0
        else:
            actions = np.full((T, self.dataset.action_dim), np.nan, np.float32)
            actions[:n] = rows["action"]
            action_valid = ~np.isnan(actions[:, 0])
        rewards = np.zeros(T, np.float32)
        rewards[:n] = rows["reward"]
        item = {
            "frames": torch.from_numpy(frames), "prev_frame": torch.from_numpy(np.array(prev)),
            "valid": torch.from_numpy(valid),
            "actions": torch.from_numpy(actions), "action_valid": torch.from_numpy(action_valid),
            "rewards": torch.from_numpy(rewards),
            "annotations": list(rows["annotations"]) + [[] for _ in range(T - n)],
            "episode_index": int(self.dataset.records[pos]["episode_index"]), "start": int(start),
        }
        for name in self.columns:
            values = rows[name]
            if isinstance(values, list):
                item[name] = list(values) + [[] for _ in range(T - n)]
                continue
            values = np.asarray(values, np.float32).reshape(n, -1)
            padded = np.zeros((T, values.shape[1]), np.float32)
            padded[:n] = values
            item[name] = torch.from_numpy(padded)
        return item


def window_starts(length: int, window: int, stride: int) -> list[int]:
    """Window starts ``0, S, 2S, …`` up to the first window reaching the episode's end."""
    starts, s = [], 0
    while True:
        starts.append(s)
        if s + window >= length:
            return starts
        s += stride


def collate_windows(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Batches :class:`WindowDataset` items: tensors stack to ``[B, T, …]``, ints to ``[B]``;
    ``annotations`` (and other list fields) stay a ``B``-list of ``T``-lists of sentence lists."""
    import torch

    out: dict[str, Any] = {}
    for key in items[0]:
        values = [it[key] for it in items]
        if isinstance(values[0], torch.Tensor):
            out[key] = torch.stack(values)
        elif isinstance(values[0], int):
            out[key] = torch.tensor(values, dtype=torch.int64)
        else:
            out[key] = values
    return out


def split_episodes(num_episodes: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Splits episode positions into train and validation sets (by episode, never by window).

    Returns:
        ``(train_ids, val_ids)``, each sorted; at least one validation episode when
        ``val_fraction > 0`` and there are two or more episodes.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise DatasetError(f"val_fraction must be in [0, 1), got {val_fraction}.")
    if num_episodes < 0:
        raise DatasetError(f"num_episodes must be >= 0, got {num_episodes}.")
    n_val = round(num_episodes * val_fraction)
    if val_fraction > 0 and num_episodes >= 2:
        n_val = min(max(n_val, 1), num_episodes - 1)
    perm = np.random.default_rng(seed).permutation(num_episodes)
    return sorted(int(i) for i in perm[n_val:]), sorted(int(i) for i in perm[:n_val])
