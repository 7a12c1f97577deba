"""Helpers shared by the collector's safety and fault-injection tests (a helper module, not a
test module): processes tagged by an environment marker, directory snapshots, CLI runs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
MARKER_ENV = "BYOG_TEST_RUN"
"""Spawned workers and multiprocessing's resource tracker inherit the environment, so a unique
value here finds every process a run started, even after its parent died."""


def collect_env(marker: str = "", **extra: str) -> dict[str, str]:
    """os.environ for a collector subprocess: this checkout and the stand-in envs importable,
    no fault hook unless ``extra`` sets one, ``BYOG_TEST_RUN=marker``."""
    env = {k: v for k, v in os.environ.items() if k != "BYOG_FAULT"}
    return {**env, "PYTHONPATH": os.pathsep.join([str(TESTS), str(ROOT)]), MARKER_ENV: marker, **extra}


def start_collect(*args: str, env: dict[str, str], **kw) -> subprocess.Popen:
    """``python collect/rollout.py --no-progress ARGS`` in the background."""
    return subprocess.Popen([sys.executable, str(ROOT / "collect" / "rollout.py"), "--no-progress", *args],
                            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def marked_processes(marker: str) -> list[int]:
    """Live (non-zombie) processes whose environment carries ``BYOG_TEST_RUN=marker`` (Linux)."""
    tag = f"{MARKER_ENV}={marker}".encode()
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if tag not in (d / "environ").read_bytes().split(b"\0"):
                continue
            if (d / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                pids.append(int(d.name))
        except OSError:
            continue
    return pids


def wait_gone(marker: str, timeout: float = 15.0) -> list[int]:
    """Waits until no process of the run is left; returns the survivors (empty when none)."""
    deadline = time.time() + timeout
    while (left := marked_processes(marker)) and time.time() < deadline:
        time.sleep(0.1)
    return left


def snapshot(path: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``path``: its bytes and mode."""
    return {str(f.relative_to(path)): (f.read_bytes(), f.stat().st_mode)
            for f in sorted(Path(path).rglob("*")) if f.is_file()}


def dataset_bytes(path: Path) -> dict[str, bytes]:
    """A dataset's files as bytes, for byte-for-byte comparison of two runs into different
    directories: the lock file is left out and ``info.json``'s ``collect_config.out`` blanked."""
    out = {}
    for rel, (data, _) in snapshot(path).items():
        if rel == "meta/.lock":
            continue
        if rel == "meta/info.json":
            info = json.loads(data)
            info.get("collect_config", {}).pop("out", None)
            data = json.dumps(info, sort_keys=True).encode()
        out[rel] = data
    return out
