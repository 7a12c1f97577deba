"""Files that survive: the umask's modes and fsync, for datasets and checkpoints alike.

A leaf module (stdlib only) so that the collector's writer, the trainer's checkpoints and
``save_pretrained`` share one implementation instead of three near-copies.
"""
from __future__ import annotations

import os
from pathlib import Path


def current_umask() -> int:
    """The process umask, read without changing it where Linux allows (``/proc``), since
    ``os.umask`` can only be read by setting it (racy with threads writing files)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fsync_path(path: str | Path) -> None:
    """fsync one file or directory (a directory's fsync makes a rename inside it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_durable(path: str | Path) -> None:
    """Give every file under ``path`` the mode the umask gives a new file (0666 & ~umask;
    directories 0777 & ~umask) and fsync each file and directory.

    Libraries that write through a temp file and rename (safetensors' ``save_file``, the
    collector's writer) create it 0600; a checkpoint is shared like any other output.
    """
    mask = current_umask()
    for dirpath, _dirnames, filenames in os.walk(Path(path), topdown=False):
        for name in filenames:
            f = Path(dirpath) / name
            os.chmod(f, 0o666 & ~mask)
            fsync_path(f)
        os.chmod(dirpath, 0o777 & ~mask)
        fsync_path(dirpath)
