"""Writing BYOG datasets (format: :mod:`collect.format`).

Every file is written to a temporary name in the same directory and renamed into place, so a
killed writer leaves only complete episode files (plus ``*.tmp`` leftovers that
``DatasetWriter(..., resume=True)`` removes). Each episode file also carries its episode record
(seed, return, ...) in its Parquet key-value metadata, so ``meta/`` can always be rebuilt from
``data/`` alone; that is how resumed and distributed (Ray) collections are merged.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from collect.durable import current_umask  # noqa: F401  (re-exported)
from collect.durable import fsync_path as _fsync
from collect.errors import DatasetError, DatasetWriteError
from collect.format import (  # noqa: F401  (re-exported: the format's names as writers know them)
    _EPISODE_RE,
    CHUNK_SIZE,
    CORE_COLUMNS,
    EPISODE_METADATA_KEY,
    EPISODES_SCHEMA,
    FORMAT_VERSION,
    ROW_GROUP_SIZE,
    TEMP_FILE_RE,
    EpisodeTable,
    _count_actions,
    _float_column,
    _json_default,
    _string_lists,
    action_layout,
    build_episode_table,
    describe_foreign_info,
    episode_file_status,
    episode_relpath,
    flatten_action,
    is_byog_info,
    read_episode_record,
    space_to_json,
    unflatten_action,
)
from collect.hf_card import FRAME_FORMAT, resumed_layout, write_card
from collect.untrusted import contained


# --------------------------------------------------------------------------- atomic writes
def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Writes ``data`` to ``path`` through a temporary file and an atomic rename."""
    _atomic(path, lambda tmp: Path(tmp).write_bytes(data))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Writes ``obj`` as indented JSON to ``path`` atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n").encode())


def _atomic(path: str | Path, write: Callable[[str], None], durable: bool = True) -> None:
    """Writes ``path`` through ``write(tmp)`` and an atomic rename.

    The file gets the mode a plain ``open()`` would give it (``0o666`` less the umask; the
    temporary file starts ``0o600``), is fsynced before the rename and its directory after it, so
    a finished episode survives a power loss too (``durable=False`` skips the two fsyncs, ~15 ms a
    file on an ordinary disk: safe against kill -9, not against power loss). A failed write (a full disk) removes the
    temporary file and raises one :class:`DatasetError`; files written before stay intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())
        if durable:
            _fsync(tmp)
        fault_point("before-rename")
        os.replace(tmp, path)
        if durable:
            _fsync(path.parent)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) or (isinstance(e, pa.ArrowException) and "rrno" in str(e)):
            raise DatasetWriteError(
                f"Could not write {path} ({getattr(e, 'strerror', None) or e}); the disk may be full. Every "
                "file written before it is intact: free space and run again (the collector: rerun with --resume)."
            ) from None
        raise


_FAULTS: dict[str, int] = {}


def fault_point(name: str) -> None:
    """Test-only fault injection: with ``BYOG_FAULT=NAME:N`` in the environment, the Nth time this
    process passes the point ``NAME`` it kills itself with SIGKILL (``tests/test_faults.py``).

    Points: ``before-rename`` (an atomic write's temporary file is complete, not yet renamed).
    """
    spec = os.environ.get("BYOG_FAULT")
    if not spec:
        return
    want, _, nth = spec.partition(":")
    if want != name:
        return
    _FAULTS[name] = _FAULTS.get(name, 0) + 1
    if _FAULTS[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)


def write_table_atomic(table: pa.Table, path: str | Path, metadata: dict[str, Any] | None = None,
                       durable: bool = True) -> int:
    """Writes a Parquet table (zstd) atomically, optionally with an episode record in its metadata.

    Returns:
        The file's size in bytes.
    """
    if metadata is not None:
        meta = dict(table.schema.metadata or {})
        meta[EPISODE_METADATA_KEY] = json.dumps(metadata, default=_json_default).encode()
        table = table.replace_schema_metadata(meta)
    _atomic(path, lambda tmp: pq.write_table(table, tmp, compression="zstd", row_group_size=ROW_GROUP_SIZE),
            durable)
    return Path(path).stat().st_size


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
            opened), skip the existing-dataset check, the lock and the resume scan.
        resume_flag: How the caller's users continue a dataset (named in the "already holds a
            dataset" error); ``None`` for tools that cannot (the importers).
        durable: fsync each episode file and its directory (power-loss safety).
        background: Write each episode file (Parquet, zstd, fsync, rename) on one background
            thread while the caller goes on (the collector steps its env meanwhile: that I/O is
            ~5% of a Crafter episode's time, mostly waiting on fsync, which releases the GIL).
            The table and record are still built, and bad input raised, in
            :meth:`write_episode`; one file is in flight at most; its error is raised by the next
            :meth:`write_episode`, :meth:`wait` or :meth:`finalize`. Callers that hand results
            on (worker processes) call :meth:`wait` first.
    """

    IDENTITY_KEYS = ("env", "env_kwargs", "policy", "seed", "max_episode_steps", "format_version")
    LOCK_FILE = "meta/.lock"
    """Held (``flock``) by the one writer allowed into a dataset directory at a time."""

    def __init__(self, path: str | Path, info: dict[str, Any], resume: bool = False,
                 chunk_size: int = CHUNK_SIZE, check_existing: bool = True,
                 resume_flag: str | None = "--resume", durable: bool = True, background: bool = False) -> None:
        self.path = Path(path)
        self.durable, self.background = durable, background
        self._io: Any = None  # the file-writing thread (background), started on first use
        self._pending: Any = None  # the future of the episode file being written there
        self.chunk_size = int(info.get("chunk_size", chunk_size))
        # Frame layout: PPM frames + time columns (1.1) unless the info says raw (a 1.0 dataset).
        frame_format = info.get("frame_format", FRAME_FORMAT)
        self.info = {**info, "frame_format": frame_format, "chunk_size": self.chunk_size,
                     "format_version": FORMAT_VERSION if frame_format == FRAME_FORMAT else "1.0"}
        self.identity = {k: self.info[k] for k in self.IDENTITY_KEYS if k in self.info}
        layout = (self.info.get("action_space") or {}).get("layout")
        self.action_dim = None if not layout else sum(e["size"] for e in layout)
        self.records: dict[int, dict[str, Any]] = {}
        self._lock: Any = None
        if not check_existing:
            self.path.mkdir(parents=True, exist_ok=True)
            return
        old_info = self._check_directory(resume, resume_flag)
        if resume:  # refuse other settings before touching anything (the lock file included)
            if old_info is not None:
                self.info.update(resumed_layout(old_info))  # a 1.0 dataset resumes as 1.0
                self.identity = {k: self.info[k] for k in self.IDENTITY_KEYS if k in self.info}
                self._check_identity(old_info, self.path / "meta" / "info.json")
            for f in sorted(self.path.glob("data/chunk-*/episode_*.parquet")):
                status, record, _ = episode_file_status(f)
                if status == "ok" and record is not None:
                    self._check_identity(record.get("collected_with") or {}, f)
        self._lock = lock_dataset(self.path)
        if resume:
            self.records = scan_episode_files(self.path, remove_partial=True, ours=old_info is not None)
        if old_info is None:
            # the settings go to disk before the first episode, so every resume can check them
            atomic_write_json(self.path / "meta" / "info.json", self.info)

    def _check_directory(self, resume: bool, resume_flag: str | None) -> dict[str, Any] | None:
        """Refuses any output directory but a new/empty one or (to resume) a BYOG dataset; returns
        the existing ``meta/info.json``, if any."""
        path, info_file = self.path, self.path / "meta" / "info.json"
        if path.exists() and not path.is_dir():
            raise DatasetError(f"Output {path} is a file; pass a directory (a new one, or a BYOG dataset to resume).")
        old_info = None
        if info_file.exists():
            try:
                old_info = json.loads(info_file.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                fix = (f"delete it and rerun with {resume_flag} (meta/ is rebuilt from the episode files)"
                       if resume_flag else "choose another output directory")
                raise DatasetError(f"{info_file} is not valid JSON ({e}); if {path} is a BYOG dataset, {fix}.") from None
            if not isinstance(old_info, dict) or not is_byog_info(old_info):
                what = describe_foreign_info(old_info) if isinstance(old_info, dict) else "not a JSON object"
                raise DatasetError(f"{path} is not a BYOG dataset ({what}); BYOG never writes into another "
                                   "tool's data: choose another output directory.")
        has_episodes = any(path.glob("data/chunk-*/episode_*.parquet"))
        if old_info is None and not has_episodes and path.is_dir():
            strangers = sorted(p.name for p in path.iterdir() if p.name not in ("meta", "data", "videos"))
            strangers += [f"meta/{p.name}" for p in (path / "meta").glob("*") if p.name not in (".lock",)
                          and not TEMP_FILE_RE.match(p.name)]
            strangers += [str(p.relative_to(path)) for p in path.glob("data/*")
                          if not (p.is_dir() and p.name.startswith("chunk-"))]
            if strangers:
                raise DatasetError(f"{path} is not empty ({', '.join(strangers[:3])}) and holds no BYOG dataset; "
                                   "choose another output directory (BYOG never mixes its files into others').")
        if (old_info is not None or has_episodes) and not resume:
            how = f"pass {resume_flag} to continue it, or " if resume_flag else ""
            raise DatasetError(f"{path} already holds a dataset; {how}choose another output directory.")
        return old_info

    def _check_identity(self, old: dict[str, Any], source: Path) -> None:
        for key in self.IDENTITY_KEYS:
            if key in old and key in self.info and old[key] != self.info[key]:
                raise DatasetError(
                    f"Cannot resume {self.path}: it was collected with {key}={old[key]!r} but this run has "
                    f"{key}={self.info[key]!r} (per {source.name}); use the same settings or another output directory.")

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
            extra=extra, action_dim=self.action_dim, frame_format=self.info["frame_format"],
            fps=self.info.get("fps") if self.info["frame_format"] == FRAME_FORMAT else None)
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
            "file": rel, "columns": table.column_names, "collected_with": self.identity, **record_fields,
        }
        self.wait()  # one file in flight at most (bounded memory); the previous one's error surfaces here
        if self.background:
            if self._io is None:
                from concurrent.futures import ThreadPoolExecutor

                self._io = ThreadPoolExecutor(1, thread_name_prefix="byog-episode-writer")
            self._pending = self._io.submit(self._write_file, table, rel, record)
        else:
            self._write_file(table, rel, record)
        self.records[int(episode_index)] = record
        return record

    def warm_up(self) -> None:
        """Pays the encode path's one-off costs now, not in the middle of a run: pyarrow imports
        pandas on its first array (~1 s). The collector calls it while it starts up."""
        shape = self.info.get("frame_shape") or [1, 1, 3]
        build_episode_table(0, np.zeros((1, *shape), np.uint8), [], action_dim=self.action_dim,
                            frame_format=self.info["frame_format"], fps=10.0)

    def _write_file(self, table: pa.Table, rel: str, record: dict[str, Any]) -> None:
        # The file carries the record as it is now; "bytes" is known once it is written.
        size = write_table_atomic(table, self.path / rel, dict(record), durable=self.durable)
        record["bytes"] = size

    def wait(self) -> None:
        """Returns once the episode file being written in the background (if any) is on disk;
        raises its error if writing it failed."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def finalize(self, **info_updates: Any) -> dict[str, Any]:
        """Rescans ``data/`` and writes ``meta/episodes.parquet`` and ``meta/info.json`` atomically.

        Returns:
            The ``info`` dict written (with ``num_episodes``, ``num_frames``, ``num_steps``,
            ``num_annotations``, ``total_bytes`` and ``columns``).
        """
        self.wait()
        self.info.update(info_updates)
        remove_leftovers(self.path)  # every writer is done: a temp file now is a killed one's
        info = write_meta(self.path, self.info)
        self.close()
        return info

    def close(self) -> None:
        """Lets a background write finish, then releases the directory lock (finalize does;
        also on garbage collection). Called while another error propagates (Ctrl-C), it keeps
        that error: a failed last write leaves no file, and ``--resume`` collects it again."""
        if self._io is not None:
            self._io.shutdown(wait=True)
            self._io = None
        if self._pending is not None and sys.exc_info()[1] is None:
            self.wait()
        self._pending = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None


def scan_episode_files(path: str | Path, remove_partial: bool = False,
                       ours: bool = True) -> dict[int, dict[str, Any]]:
    """Reads the records of all complete episode files under ``path/data``.

    Never deletes a file it cannot prove this collector wrote: a readable Parquet file without
    a BYOG record is refused, whatever ``remove_partial`` says.

    Args:
        path: Dataset directory.
        remove_partial: Resuming: delete temp leftovers of a killed writer, and replace (delete,
            with a warning on stderr) corrupt episode files when ``ours``; otherwise raise.
        ours: The directory's ``meta/info.json`` is BYOG's, so a corrupt ``episode_*.parquet``
            in it is one of ours (atomic writes never leave one: it was damaged afterwards).
    """
    path = Path(path)
    if remove_partial:
        remove_leftovers(path)
    records: dict[int, dict[str, Any]] = {}
    for f in sorted(path.glob("data/chunk-*/*")):
        m = _EPISODE_RE.search(f.name)
        if not m or TEMP_FILE_RE.match(f.name):
            continue
        contained(path, str(f.relative_to(path)), what="Episode file")  # no link out, no FIFO
        status, record, detail = episode_file_status(f)
        if status == "foreign":
            raise DatasetError(f"{f} was not written by BYOG ({detail}); BYOG never deletes or overwrites "
                               f"others' files: move it out of {path} and run again.")
        if status == "corrupt":
            if not (remove_partial and ours):
                fix = ("delete it and rerun with --resume" if remove_partial
                       else "rerun the collector with --resume to replace it")
                raise DatasetError(f"Episode file {f} is {detail}; {fix}.")
            print(f"warning: episode file {f} is {detail}; it is this collector's, so it is deleted and its "
                  "episode will be re-collected.", file=sys.stderr)
            f.unlink()
            continue
        if status != "ok":
            continue
        assert record is not None
        record["file"] = str(f.relative_to(path))
        record["bytes"] = f.stat().st_size
        records[int(m.group(1))] = record
    return records


def remove_leftovers(path: str | Path) -> list[Path]:
    """Deletes the temporary files of killed atomic writes (only names :data:`TEMP_FILE_RE` allows)."""
    path = Path(path)
    gone = [f for pattern in ("data/chunk-*/*.tmp", "meta/*.tmp") for f in path.glob(pattern)
            if TEMP_FILE_RE.match(f.name)]
    for f in gone:
        f.unlink(missing_ok=True)
    return gone


def lock_dataset(path: str | Path) -> Any:
    """Takes the dataset directory's writer lock (``meta/.lock``, ``flock``) or raises.

    Returns:
        The open lock file; closing it releases the lock (so does the process's death).
    """
    import fcntl

    lock_file = Path(path) / DatasetWriter.LOCK_FILE
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    try:  # never through a link a dataset ships: the pid below would overwrite its target
        fd = os.open(lock_file, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o666)
    except OSError as e:
        raise DatasetError(f"Cannot open the lock file {lock_file} ({e.strerror}: a symlink or other special "
                           "file is refused); remove it if it is yours.") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise DatasetError(f"The lock file {lock_file} is not a regular file; remove it if it is yours.")
    handle = os.fdopen(fd, "a+")  # held open for the writer's lifetime
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise DatasetWriteError(f"Another collector (pid {holder}) is writing {path}; wait for it to finish "
                           "or choose another output directory.") from None
    handle.truncate(0)
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


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
        **info, "format_version": info.get("format_version") or FORMAT_VERSION, "num_episodes": len(rows),
        "num_frames": sum(r["length"] for r in rows), "num_steps": sum(r["num_steps"] for r in rows),
        "num_annotations": sum(r["num_annotations"] for r in rows),
        "total_bytes": sum(r["bytes"] for r in rows), "columns": columns,
    }
    if rows and "frame_shape" not in info:
        info["frame_shape"] = rows[0]["frame_shape"]
    atomic_write_json(path / "meta" / "info.json", info)
    write_card(path, info)  # README.md: datasets.load_dataset(path) reads data/ with these features
    return info

def add_column(path: str | Path, name: str, values_per_episode: Callable[[int, EpisodeTable], Any],
               episodes: Iterable[int] | None = None) -> None:
    """Adds or replaces a per-step float column in existing episode files, atomically per file.

    Used e.g. by ``agents.obs.embed`` to store an ``embedding`` column. Each file is rewritten to a
    temp name and renamed, so a crash leaves every episode either old or new; ``meta/`` is
    rebuilt at the end.

    Args:
        path: Dataset directory.
        name: Column name (not one of :data:`CORE_COLUMNS`).
        values_per_episode: ``f(episode_index, rows) -> array [L] or [L, D]`` (float32-castable);
            ``rows`` is an :class:`~collect.format.EpisodeTable` (``rows.frames``,
            ``rows.column(name)``, ``rows.num_rows``).
        episodes: Episode indices to update (default all).
    """
    if name in CORE_COLUMNS or name == "intent":
        raise DatasetError(f"`{name}` is a core column and cannot be replaced; choose another name.")

    def edit(i: int, table: pa.Table, rows: EpisodeTable, record: dict[str, Any]) -> pa.Table:
        column = _float_column(values_per_episode(i, rows), table.num_rows, name)
        if name in table.column_names:
            return table.set_column(table.column_names.index(name), name, column)
        return table.append_column(name, column)

    _rewrite_episodes(path, edit, episodes)


def set_annotations(path: str | Path, annotations: dict[int, Sequence[Sequence[str]]]) -> None:
    """Replaces the ``annotations`` column of some episodes (e.g. with pseudo-labels), atomically
    per file, keeping every other column as stored; records and ``meta/`` follow.

    Args:
        path: Dataset directory.
        annotations: Episode index -> one list of sentences per frame.
    """
    def edit(i: int, table: pa.Table, rows: EpisodeTable, record: dict[str, Any]) -> pa.Table:
        column = _string_lists(annotations[i], table.num_rows, "annotations")
        record["num_annotations"] = sum(len(a) for a in annotations[i])
        index = table.column_names.index("annotations")
        return table.set_column(index, table.schema.field(index), column)

    _rewrite_episodes(path, edit, sorted(annotations))


def _rewrite_episodes(path: str | Path, edit: Callable[[int, pa.Table, EpisodeTable, dict[str, Any]], pa.Table],
                      episodes: Iterable[int] | None) -> None:
    """Rewrites episode files through ``edit(i, table, rows, record) -> table`` (the record may be
    updated in place), each atomically, holding the dataset's lock; rebuilds ``meta/``."""
    path = Path(path)
    info_path = path / "meta" / "info.json"
    if not info_path.exists():
        raise DatasetError(f"{info_path} is missing; {path} is not a finalised dataset.")
    info = json.loads(info_path.read_text())
    lock = lock_dataset(path)
    try:
        records = scan_episode_files(path)
        wanted = sorted(records) if episodes is None else list(episodes)
        for i in wanted:
            if i not in records:
                raise DatasetError(f"Episode {i} does not exist in {path}.")
            f = path / records[i]["file"]
            pf = pq.ParquetFile(f)
            table = pf.read()
            meta = (pf.schema_arrow.metadata or {})
            rows = EpisodeTable(table, info.get("frame_shape") or records[i]["frame_shape"], f)
            record = json.loads(meta[EPISODE_METADATA_KEY])
            table = edit(i, table, rows, record)
            record["columns"] = table.column_names
            table = table.replace_schema_metadata({k: v for k, v in meta.items() if k != EPISODE_METADATA_KEY})
            write_table_atomic(table, f, record)
        write_meta(path, info)
    finally:
        lock.close()
