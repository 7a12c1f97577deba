"""The study runner both studies use: cells keyed by their full resolved config, run in a
bounded pool of worker processes (one torch thread each), resumable, with a progress bar and
a measured ETA.

A :class:`Cell` is an entry point (``"module:function"``, called as ``fn(config, out_dir)`` and
returning a JSON-able dict) and its config. Its directory is ``ROOT/cells/<name>-<key>``, where
``key`` hashes the entry point and the whole config: a changed setting is a new cell, computed
afresh, never a stale result reused (the old directory stays, nothing is deleted). A cell is done
when its ``cell.json`` exists (written atomically, with the config and the wall clock).
"""
from __future__ import annotations

import hashlib
import importlib
import json
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from experiments.errors import ExperimentError


@dataclass
class Cell:
    """One unit of a study."""

    name: str
    """Readable path under ``cells/`` (e.g. ``bc/crafter/byog-text/n64/p0/b1``)."""
    fn: str
    """Entry point ``module:function`` taking ``(config: dict, out: Path) -> dict``."""
    config: dict[str, Any]
    """The fully resolved, JSON-able settings (everything the result depends on)."""
    kind: str = "cell"
    """Kind, for timings and the ETA (``pretrain``, ``bc``, ``ref``, ...)."""
    cost: float = 1.0
    """Relative cost in the kind's units (e.g. steps), for the ETA."""
    meta: dict[str, Any] = field(default_factory=dict)
    """Fields copied into ``cell.json`` beside the result (not part of the key)."""

    @property
    def key(self) -> str:
        """12 hex digits of the SHA-256 of the entry point and the config."""
        blob = json.dumps({"fn": self.fn, "config": self.config}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def dir(self, root: Path) -> Path:
        return Path(root) / "cells" / f"{self.name}-{self.key}"

    def done(self, root: Path) -> bool:
        f = self.dir(root) / "cell.json"
        if not f.is_file():
            return False
        try:
            return json.loads(f.read_text()).get("key") == self.key
        except json.JSONDecodeError:
            return False

    def result(self, root: Path) -> dict[str, Any]:
        return json.loads((self.dir(root) / "cell.json").read_text())


def _init_worker(threads: int = 1) -> None:
    """``threads`` torch threads per worker (default one: the pool, not torch, uses the cores)."""
    from byog_env.threads import set_threads

    set_threads(threads, import_torch=True)


def execute(cell: Cell, root: Path) -> dict[str, Any]:
    """Run one cell in this process and write its ``cell.json``."""
    mod, _, attr = cell.fn.partition(":")
    fn = getattr(importlib.import_module(mod), attr)
    out = cell.dir(root)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    res = fn(dict(cell.config), out)
    row = {**cell.meta, **res, "key": cell.key, "cell": cell.name, "kind": cell.kind,
           "cell/seconds": time.perf_counter() - t0, "cell/config": cell.config}
    tmp = out / "cell.json.tmp"
    tmp.write_text(json.dumps(row, indent=2, default=str))
    tmp.replace(out / "cell.json")  # atomic: a cell is either done or not
    return row


def run_cells(cells: Sequence[Cell], root: Path, *, workers: int = 1, progress: bool = True,
              desc: str = "cells", threads: int = 1) -> list[dict[str, Any]]:
    """Run the cells not yet done (``workers`` processes; 1 = in this process) and return every
    cell's row, in the given order. Timings go to ``ROOT/timings.json`` for later ETAs."""
    from tqdm import tqdm

    root = Path(root)
    todo = [c for c in cells if not c.done(root)]
    if todo:
        bar = tqdm(total=len(todo), desc=desc, disable=not progress, smoothing=0.1)
        try:
            if workers <= 1:
                _init_worker(threads)
                for c in todo:
                    _record(root, c, execute(c, root))
                    bar.update(1)
            else:
                import multiprocessing as mp

                with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                                         initializer=_init_worker, initargs=(threads,)) as pool:
                    futures = {pool.submit(execute, c, root): c for c in todo}
                    for fut in as_completed(futures):
                        _record(root, futures[fut], fut.result())
                        bar.update(1)
        finally:
            bar.close()
    return [c.result(root) for c in cells]


def _record(root: Path, cell: Cell, row: dict[str, Any]) -> None:
    f = root / "timings.json"
    t = json.loads(f.read_text()) if f.is_file() else {}
    k = t.setdefault(cell.kind, {"seconds": 0.0, "cost": 0.0, "cells": 0})
    k["seconds"] += float(row["cell/seconds"])
    k["cost"] += float(cell.cost)
    k["cells"] += 1
    f.write_text(json.dumps(t, indent=2))


def estimate(cells: Sequence[Cell], root: Path, unit_seconds: dict[str, float], workers: int) -> dict[str, Any]:
    """ETA of the cells not yet done: per kind, cost x seconds per cost unit (measured in this
    study's ``timings.json`` when cells of that kind finished, else ``unit_seconds``), over
    ``workers`` processes."""
    f = Path(root) / "timings.json"
    seen = json.loads(f.read_text()) if f.is_file() else {}
    by_kind: dict[str, dict[str, float]] = {}
    for c in cells:
        if c.done(root):
            continue
        k = by_kind.setdefault(c.kind, {"cells": 0, "cost": 0.0})
        k["cells"] += 1
        k["cost"] += c.cost
    total = 0.0
    for kind, k in by_kind.items():
        s = seen.get(kind)
        per = s["seconds"] / max(s["cost"], 1e-9) if s and s["cells"] else unit_seconds.get(kind)
        if per is None:
            raise ExperimentError(f"No timing for cells of kind {kind!r}; measure it first.")
        k["seconds"] = per * k["cost"]
        k["source"] = "this study" if s and s["cells"] else "probe"
        total += k["seconds"]
    return {"cells": len(cells), "todo": sum(k["cells"] for k in by_kind.values()), "by_kind": by_kind,
            "workers": workers, "eta_seconds": total / max(1, workers)}


__all__ = ["Cell", "estimate", "execute", "run_cells"]
