"""Reading files other people made: paths kept inside their root, sizes checked before
allocating, outputs never written through a link a dataset ships.

Datasets, checkpoints and LeRobot folders come from other people (issue #26). Whatever their
metadata says, a reader here

- resolves every path it derives from metadata and requires it to stay inside its root: a
  ``../`` or absolute name is refused, a symlink is followed only when its target stays inside
  the root (or, for a Hugging Face hub snapshot, inside its cache repo, where the hub keeps the
  blobs the snapshot links to) — :func:`contained`;
- opens regular files only: a FIFO would block forever, a device read without end;
- checks the sizes a file declares before anything is decompressed (:func:`check_parquet_sizes`:
  a 65 KB Parquet file can declare a page that inflates to gigabytes);
- writes outputs through a new temporary file renamed into place, and refuses an output entry
  that is a symlink (:func:`write_output`), so a link shipped inside a dataset cannot redirect a
  write. The user's own ``--out`` may itself be a link: only what lies inside it is checked.

Errors name the offending file and never advise deleting a file outside the dataset. Leaf
module: imports nothing heavy (pyarrow only inside :func:`check_parquet_sizes`).
"""
from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from collect.durable import current_umask
from collect.errors import DatasetError

MAX_NAME = 4096
"""Longest relative path accepted from metadata (Linux's PATH_MAX)."""


def _real(path: str | Path) -> str:
    return os.path.realpath(os.fspath(path))


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def hub_repo(root: str | Path) -> Path | None:
    """The cache repo (``…/models--org--name``) of a Hugging Face hub snapshot directory
    (``…/models--org--name/snapshots/<revision>``), else None: its files are links into the
    repo's ``blobs/``."""
    real = Path(_real(root))
    if real.parent.name == "snapshots" and real.parent.parent.name.split("--")[0] in (
            "models", "datasets", "spaces"):
        return real.parent.parent
    return None


def contained(root: str | Path, name: Any, *, what: str, error: type[Exception] = DatasetError,
              kind: str = "file", fix: str = "") -> Path:
    """``root / name`` for a ``name`` taken from metadata, checked to stay inside ``root``.

    Args:
        root: The directory the metadata belongs to (a dataset, a checkpoint, a LeRobot root).
        name: The relative path the metadata gives.
        what: What the path is, for the error (``"Episode file"``, ``"video"``).
        error: The exception class to raise (the caller's package's error).
        kind: ``"file"`` (a regular file when it exists) or ``"dir"``.
        fix: What the user can do, appended to the error.

    Returns:
        ``root / name`` (unresolved, for messages); it may not exist (the caller says so).

    Raises:
        error: ``name`` is not a relative path, leaves ``root`` (``..``, absolute, a symlink out
            of it), or exists but is not a regular file (a FIFO, a device, a directory).
    """
    if not isinstance(name, str) or not name or "\0" in name or len(name) > MAX_NAME:
        raise error(f"{what} {str(name)[:80]!r} in {root} is not a valid relative path; "
                    f"{fix or 'the metadata is damaged or was not written by a BYOG tool.'}")
    path = Path(root) / name
    real_root = _real(root)
    if os.path.isabs(name) or not _within(_real(path), real_root):
        repo = hub_repo(root)
        if os.path.isabs(name) or repo is None or not _within(_real(path), str(repo)):
            raise error(f"{what} {name!r} lies outside {root} (an absolute or `..` path, or a symlink "
                        f"out of it); BYOG reads only files inside the folder it was given. "
                        f"{fix or 'Fix or remove that entry.'}")
    return regular(path, what=what, error=error, kind=kind, fix=fix)


def regular(path: str | Path, *, what: str, error: type[Exception] = DatasetError,
            kind: str = "file", fix: str = "") -> Path:
    """``path`` itself, refused when it exists but is not a regular file (``kind="file"``) or a
    directory (``kind="dir"``): reading a FIFO blocks forever, a device never ends."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return path
    except OSError as e:  # a link loop, a name too long, no permission
        raise error(f"{what} {path} cannot be examined ({e.strerror}). {fix}".strip()) from None
    ok = stat.S_ISREG(mode) if kind == "file" else stat.S_ISDIR(mode)
    if not ok:
        kind_name = "regular file" if kind == "file" else "directory"
        raise error(f"{what} {path} is not a {kind_name} ({_kind(mode)}); BYOG reads only "
                    f"{kind_name}s there. {fix}".strip())
    return path


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISDIR, "a directory"), (stat.S_ISREG, "a regular file")):
        if test(mode):
            return name
    return "of another kind"


def check_output_dir(path: str | Path, *, shipped_by: str | Path | None = None,
                     error: type[Exception] = DatasetError) -> Path:
    """An output directory to write into, refused when it is a link or not a directory and it
    lies inside an input (``shipped_by``): there the input, not the user, chose where it points.
    The user's own ``--out`` (``shipped_by=None``) may be a link."""
    path = Path(path)
    if shipped_by is not None and os.path.lexists(path):
        if os.path.islink(path) or not os.path.isdir(path):
            raise error(f"Output directory {path} inside {shipped_by} is "
                        f"{'a symlink' if os.path.islink(path) else 'not a directory'}; BYOG does not "
                        "write through links a dataset ships. Pass --out DIR elsewhere.")
    return path


def write_output(path: str | Path, write: Callable[[str], Any], *,
                 error: type[Exception] = DatasetError) -> Path:
    """Writes ``path`` by ``write(tmp)`` into a new temporary file beside it, then a rename.

    The temporary file is created exclusively (``mkstemp``), so no link can redirect it, and the
    rename replaces the directory entry rather than writing into whatever it points to. An
    existing entry that is a symlink (or not a regular file) is refused: a dataset that ships
    ``inspect/contact_sheet.png -> ~/.bashrc`` gets an error, not a replaced link.
    """
    path = Path(path)
    if os.path.islink(path) or (os.path.lexists(path) and not os.path.isfile(path)):
        raise error(f"Output file {path} exists and is {'a symlink' if os.path.islink(path) else 'not a regular file'}; "
                    "BYOG does not write through it. Remove it yourself if it is yours, or pass --out DIR elsewhere.")
    path.parent.mkdir(parents=True, exist_ok=True)
    # not collect.writer's atomic write (that module imports this one): the same idea, no fsync
    fd, tmp = tempfile.mkstemp(prefix=f"{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


def read_json_object(f: str | Path, *, what: str, error: type[Exception] = DatasetError,
                     fix: str = "") -> dict[str, Any]:
    """A JSON object from a file someone else wrote; ``error`` for anything else in it."""
    try:
        value = json.loads(Path(f).read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise error(f"{f} is not valid JSON ({e}); {fix or f'the {what} is damaged.'}") from None
    if not isinstance(value, dict):
        raise error(f"{f} holds a JSON {type(value).__name__}, not an object; {fix or f'the {what} is damaged.'}")
    return value


# ---------------------------------------------------------------------------- Parquet sizes
ROW_BUDGET = 64 * 1024
"""Decoded bytes a row may take in a column without a declared size (text, actions, vectors):
far above what collectors write (a 2048-float embedding is 8 KiB), far below a bomb."""
CHUNK_SLACK = 1 << 20
"""Bytes every column chunk may take beyond its rows' budget (levels, dictionaries, headers)."""
LARGE_GROUP = 256 << 20
MAX_RATIO = 1000
"""A row group declaring more than LARGE_GROUP decoded bytes at more than MAX_RATIO times its
stored size is refused even when its declared frame shape allows it: real frames never
compress 1000:1, a zstd bomb does (1 GiB of zeros fits in ~32 KB)."""


def check_parquet_sizes(path: str | Path, metadata: Any, *, row_bytes: dict[str, int] | None = None,
                        row_groups: Iterable[int] | None = None, what: str = "Parquet file",
                        error: type[Exception] = DatasetError, fix: str = "") -> None:
    """Refuses a Parquet file whose column chunks declare more decoded bytes than their rows can
    hold, before any page is decompressed.

    Args:
        path: The file (named in the error).
        metadata: Its ``pyarrow.parquet.FileMetaData``.
        row_bytes: Largest decoded bytes per row of a top-level column (e.g. a frame:
            ``H*W*3`` plus its header); other columns get :data:`ROW_BUDGET`.
        row_groups: The row groups about to be read (default all).
        what: What the file is, for the error.
        error: The exception class to raise.
        fix: What the user can do.
    """
    budgets = row_bytes or {}
    groups = range(metadata.num_row_groups) if row_groups is None else row_groups
    with open(path, "rb") as fh:
        for g in groups:
            _check_row_group(fh, path, metadata, g, budgets, what, error, fix)


def _check_row_group(fh: Any, path: str | Path, metadata: Any, g: int, budgets: dict[str, int], what: str,
                     error: type[Exception], fix: str) -> None:
    rg = metadata.row_group(g)
    rows = max(int(rg.num_rows), 0)
    declared: dict[str, int] = {}
    stored = 0
    for c in range(rg.num_columns):
        col = rg.column(c)
        top = col.path_in_schema.split(".")[0]
        try:  # the footer's total and the page headers' own sizes: the reader trusts the latter
            pages = page_sizes(fh, col)
        except (ValueError, OSError) as e:
            raise error(f"{what} {path}: the page headers of column {top!r} in row group {g} are "
                        f"damaged ({e}). {fix}".strip()) from None
        declared[top] = declared.get(top, 0) + max(int(col.total_uncompressed_size), pages, 0)
        stored += max(int(col.total_compressed_size), 0)
    total = sum(declared.values())
    if total > LARGE_GROUP and total > MAX_RATIO * max(stored, 1):
        raise error(f"{what} {path}: row group {g} declares {total} decoded bytes from {stored} "
                    f"stored ones (over {MAX_RATIO}:1); refusing a decompression bomb. {fix}".strip())
    for top, size in declared.items():
        limit = rows * (budgets.get(top, ROW_BUDGET) + 16) + CHUNK_SLACK
        if size > limit:
            raise error(f"{what} {path}: column {top!r} declares {size} decoded bytes for {rows} "
                        f"rows in row group {g}, more than those rows can hold ({limit}); the file "
                        f"is corrupt or crafted. {fix}".strip())



MAX_TREE = 100_000
"""Most entries a checkpoint-like directory may hold before :func:`check_tree` gives up."""


def check_tree(root: str | Path, *, what: str, error: type[Exception] = DatasetError) -> Path:
    """Checks a directory someone else wrote (a checkpoint, a fitted encoder, a world model)
    before any file in it is read: every symlink in it must point inside it (or, for a Hugging
    Face hub snapshot, inside its cache repo), every entry must be a regular file or a
    directory. ``root`` itself may be a link: the user named it.

    Returns:
        ``root``.
    """
    root = Path(root)
    real_root, repo = _real(root), hub_repo(root)
    seen = 0
    for dirpath, dirnames, filenames in os.walk(root):  # links to directories are not descended
        for name in (*dirnames, *filenames):
            seen += 1
            if seen > MAX_TREE:
                raise error(f"{what} {root} holds more than {MAX_TREE} entries; it is not a checkpoint.")
            p = os.path.join(dirpath, name)
            if os.path.islink(p):
                target = _real(p)
                if not (_within(target, real_root) or (repo is not None and _within(target, str(repo)))):
                    raise error(f"{what} {root} holds {os.path.relpath(p, root)}, a symlink to {target} outside "
                                "it; BYOG reads only files inside the directory it was given. Copy the file "
                                "in instead of linking it.")
            try:
                mode = os.stat(p).st_mode
            except OSError as e:
                raise error(f"{what} {root}: {os.path.relpath(p, root)} cannot be examined ({e.strerror}).") from None
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise error(f"{what} {root}: {os.path.relpath(p, root)} is {_kind(mode)}, not a regular file; "
                            "BYOG reads only regular files there.")
    return root


# ---------------------------------------------------------------------------- Parquet page headers
class _Thrift:
    """Just enough of Thrift's compact protocol to walk Parquet page headers (skipping every
    field but the sizes), reading the file a little at a time."""

    def __init__(self, fh: Any, limit: int) -> None:
        self.fh, self.left = fh, limit

    def byte(self) -> int:
        self.left -= 1
        b = self.fh.read(1)
        if not b or self.left < 0:
            raise ValueError("page header runs past its column chunk")
        return b[0]

    def varint(self) -> int:
        shift = result = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7
            if shift > 63:
                raise ValueError("varint too long")

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def skip_bytes(self, n: int) -> None:
        if n < 0 or n > self.left:
            raise ValueError("page header runs past its column chunk")
        self.left -= n
        self.fh.seek(n, os.SEEK_CUR)

    def skip(self, ttype: int, depth: int = 0) -> None:
        if depth > 16:
            raise ValueError("page header nests too deep")
        if ttype in (1, 2):  # bool (the value is in the type)
            return
        if ttype == 3:
            self.byte()
        elif ttype in (4, 5, 6):
            self.varint()
        elif ttype == 7:
            self.skip_bytes(8)
        elif ttype == 8:
            self.skip_bytes(self.varint())
        elif ttype in (9, 10):
            head = self.byte()
            size = head >> 4 if head >> 4 != 15 else self.varint()
            for _ in range(size):
                self.skip(head & 0x0F, depth + 1) if head & 0x0F not in (1, 2) else self.byte()
        elif ttype == 11:
            size = self.varint()
            if size:
                kinds = self.byte()
                for _ in range(size):
                    self.skip(kinds >> 4, depth + 1)
                    self.skip(kinds & 0x0F, depth + 1)
        elif ttype == 12:
            self.struct(depth + 1)
        else:
            raise ValueError(f"unknown thrift type {ttype}")

    def struct(self, depth: int = 0, want: tuple[int, ...] = ()) -> dict[int, int]:
        """Reads a struct, returning the i32 fields whose ids are in ``want``."""
        got, last = {}, 0
        while True:
            head = self.byte()
            if head == 0:
                return got
            delta, ttype = head >> 4, head & 0x0F
            fid = last + delta if delta else self.zigzag()
            last = fid
            if fid in want and ttype == 5:
                got[fid] = self.zigzag()
            else:
                self.skip(ttype, depth)


def page_sizes(fh: Any, column: Any) -> int:
    """Sum of the decoded sizes the page headers of one column chunk (``column``: its
    ``ColumnChunkMetaData``) declare: what the Parquet reader allocates, whatever the footer
    says. Reads the headers only (``fh``: the file, binary), decompresses nothing.

    Raises:
        ValueError: a header is malformed or runs past the chunk.
    """
    start = column.data_page_offset
    if column.has_dictionary_page and column.dictionary_page_offset:
        start = min(start, column.dictionary_page_offset)
    total, left = 0, int(column.total_compressed_size)
    fh.seek(int(start))
    while left > 0:
        reader = _Thrift(fh, left)
        header = reader.struct(want=(2, 3))  # uncompressed_page_size, compressed_page_size
        uncompressed, compressed = header.get(2, -1), header.get(3, -1)
        if uncompressed < 0 or compressed < 0:
            raise ValueError("a page header without its sizes")
        total += uncompressed
        reader.skip_bytes(compressed)
        left = reader.left
    return total
