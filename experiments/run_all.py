"""One command for the transfer study: collection, pretraining (per pipeline seed), the BC cells
of every arm, live references, optional cross-domain and PPO cells, and the report with its
gates, hypotheses and intervals.

    python -m experiments.run_all --preset tiny --out runs/study-tiny
    python -m experiments.run_all --preset cpu --out runs/study-cpu --plan-only   # cells + ETA

Every unit of work is a :class:`~experiments.runner.Cell` keyed by its full resolved config: a
changed setting is a new cell (recomputed), a finished one is reused (resumable). Independent
cells run in a pool of ``--workers`` processes with one torch thread each. The pipeline seed
(pretraining init + labelled draw) is the unit of replication; BC seeds (episode draw, head
init, live env seeds) nest inside it. Any preset field can be overridden from the command line
(``--arms prior oracle-text --pipeline-seeds 0 1 --ns 32``).
"""
from __future__ import annotations

import json
import shlex
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from experiments.runner import Cell, estimate, run_cells
from experiments.study_cells import (  # noqa: F401  (moved there; importable from here)
    bc_cell,
    bc_seed,
    collect_data,
    data_dir,
    on_device,
    plan_cells,
    pretrain_cell,
    pretrain_spec,
    ref_cell,
    rl_cell,
)
from experiments.study_config import (  # noqa: F401  (moved there; importable from here)
    CROSS_SOURCE,
    CROSS_TARGET,
    OVERRIDES,
    PRESETS,
    EnvPlan,
    RunAllConfig,
    StudyPreset,
    _collect_step_s,
    expert_policy,
    register_preset,
    resolve,
)


# ---------------------------------------------------------------------------- ETA
def probe_unit_seconds() -> dict[str, float]:
    """Seconds per cost unit of each cell kind, measured now: a short burst of tiny-model
    training steps and env steps, scaled by per-unit ratios calibrated on this repository's
    CPU runs (the probe measures this machine's speed and load)."""
    import numpy as np
    import torch

    torch.set_num_threads(1)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 4, 2), torch.nn.GELU(), torch.nn.Conv2d(16, 32, 4, 2),
                              torch.nn.Flatten(), torch.nn.LazyLinear(64))
    x = torch.rand(64, 3, 64, 64)
    net(x)
    opt = torch.optim.AdamW(net.parameters())
    bursts = []
    for _ in range(3):  # the median of three bursts: one burst caught by a neighbour's spike misleads
        t0 = time.perf_counter()
        for _ in range(5):
            loss = net(x).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        bursts.append((time.perf_counter() - t0) / 5)
    step = float(np.median(bursts))
    # calibration: on the shared 2-core machine at load ~8 this probe step took 0.17 s, a tiny
    # BYOG pretraining step 1.3 s, a BC cost unit 0.06 s, a reference live episode (both
    # Crafter 500-step modes) 3.5 s; PPO from the former small study. Recalibrated (issue 22)
    # on the cpu preset's measured run (docs/results/crafter-transfer-cpu/timings.json: 0.237 s
    # per pretraining step, 0.0224 s per BC unit, 0.81 s per reference unit on 2 idle cores)
    # against this probe at load ~2.5 (0.0369 s): the former factors put that run at 31 min,
    # against the 42.5 measured; these at 42
    scale = step / 0.17
    return {"pretrain": 1.1 * scale, "bc": 0.10 * scale, "ref": 3.7 * scale, "rl": 0.015 * scale,
            "probe_step_seconds": float(np.round(step, 4))}


# ---------------------------------------------------------------------------- main
def run(cfg: RunAllConfig) -> dict[str, Any]:
    from experiments.devices import require_device
    from experiments.report import write_report

    p = resolve(cfg)
    require_device(p.device, f"Preset {cfg.preset}")  # before collection, and in --plan-only
    root = cfg.out
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    envs = dict(p.envs)
    if p.cross_domain and CROSS_TARGET in envs:
        envs[CROSS_SOURCE] = EnvPlan(max(16, envs[CROSS_TARGET].episodes // 2), envs[CROSS_TARGET].max_steps)
    if cfg.plan_only:
        return plan_only(cfg, p, root, envs)
    data = {env: collect_data(env, plan, data_dir(root, env, plan), cfg.progress) for env, plan in envs.items()}
    from collect.dataset import open_dataset

    cells = plan_cells(p, root, data, {e: open_dataset(d).num_episodes for e, d in data.items()})
    (root / "plan.json").write_text(json.dumps({"preset": cfg.preset, "design": asdict(p), "cells": len(cells),
                                                "command": command(cfg)}, indent=2, default=str))
    workers = p.workers
    if cfg.report_only:
        done = [c.result(root) for c in cells if c.done(root)]
        text = write_report(root, done, p, command=command(cfg) + f"  ({len(done)} of {len(cells)} cells finished)")
        return {"preset": cfg.preset, "cells": len(cells), "finished": len(done), "report": text}
    if cfg.progress:  # the plan before anything runs: cells to run and a measured ETA
        eta = estimate(cells, root, probe_unit_seconds(), workers)
        print(f"{cfg.preset}: {eta['cells']} cells, {eta['todo']} to run on {workers} workers; "
              f"ETA {eta['eta_seconds'] / 60:.0f} min", file=sys.stderr)
    rows: list[dict[str, Any]] = []
    for desc, stage in stages(cells):
        rows += run_cells(stage, root, workers=workers, progress=cfg.progress, desc=desc,
                          threads=cfg.threads or 1)
    seconds = time.perf_counter() - t0
    report = write_report(root, rows, p, command=command(cfg), seconds=seconds)
    return {"preset": cfg.preset, "cells": len(cells), "seconds": seconds, "report": report}


def worker_threads(threads: int, workers: int) -> int:
    """torch threads per worker: ``threads``, or (0) the cores this process may use shared out
    among the ``workers`` (at least one each: more threads than cores only spin-wait)."""
    from byog_env.threads import available_cores

    return threads or max(1, available_cores() // max(1, workers))


def stages(cells: list[Cell]) -> list[tuple[str, list[Cell]]]:
    """Cells in runnable order, controls first (so a cut-short run still has its gates): BC
    cells that need no encoder; then per pretrained kind its encoders and the cells that use
    them; then the live references and PPO."""
    bc = [c for c in cells if c.kind == "bc"]  # the dose cells too (kind bc, study dose)
    out = [("bc cells (no pretraining)", [c for c in bc if "pretrained" not in c.config])]
    kinds = list(dict.fromkeys(c.config["kind"] for c in cells if c.kind == "pretrain"))
    for kind in kinds:
        out.append((f"pretrain {kind}", [c for c in cells if c.kind == "pretrain" and c.config["kind"] == kind]))
        out.append((f"bc cells ({kind})", [c for c in bc if c.config.get("pretrained", {}).get("kind") == kind]))
    out += [("references", [c for c in cells if c.kind == "ref"]), ("ppo", [c for c in cells if c.kind == "rl"])]
    return [(d, s) for d, s in out if s]


def plan_only(cfg: RunAllConfig, p: StudyPreset, root: Path, envs: dict[str, EnvPlan]) -> dict[str, Any]:
    """Count the cells (datasets assumed collected at their planned size) and estimate the wall
    clock from a measured probe (or this study's own timings)."""
    data = {env: data_dir(root, env, plan) for env, plan in envs.items()}
    cells = plan_cells(p, root, data, {env: plan.episodes for env, plan in envs.items()})
    units = probe_unit_seconds()
    eta = estimate(cells, root, units, p.workers)
    missing = [e for e in envs if not (data_dir(root, e, envs[e]) / "meta" / "info.json").is_file()]
    collect_s = sum(envs[e].episodes * (envs[e].max_steps or 64) * _collect_step_s(e) for e in missing)
    out = {"preset": cfg.preset, "description": p.description, "cells": eta["cells"], "todo": eta["todo"],
           "by_kind": eta["by_kind"], "workers": p.workers, "device": p.device, "collect_seconds": collect_s,
           "eta_seconds": eta["eta_seconds"] + collect_s, "probe": units, "command": command(cfg)}
    (root / "plan.json").write_text(json.dumps(out, indent=2, default=str))
    # the probe and its calibration are CPU measurements: off the CPU the ETA is an upper bound
    bound = "" if p.device == "cpu" else f", a CPU probe's: an upper bound on {p.device}"
    print(f"{cfg.preset}: {eta['cells']} cells ({eta['todo']} to run: "
          + ", ".join(f"{k} {v['cells']}" for k, v in eta["by_kind"].items())
          + f"), {p.workers} workers on {p.device}; ETA {out['eta_seconds'] / 60:.0f} min "
          f"(collection {collect_s / 60:.0f} min; probe step {units['probe_step_seconds']} s{bound})")
    return out


def command(cfg: RunAllConfig) -> str:
    """The command line that reproduces ``cfg`` (the preset plus its overrides)."""
    parts = ["python -m experiments.run_all", f"--preset {cfg.preset}", f"--out {shlex.quote(str(cfg.out))}"]
    for name in ("envs", *OVERRIDES):
        v = getattr(cfg, name)
        flag = "--" + name.replace("_", "-")
        if isinstance(v, tuple):
            parts.append(f"{flag} {' '.join(str(x) for x in v)}")
        elif isinstance(v, bool):
            parts.append(flag if v else f"--no-{name.replace('_', '-')}")
        elif v is not None:
            parts.append(f"{flag} {v}")
    if cfg.episodes:
        parts.append("--episodes " + " ".join(f"{k} {v}" for k, v in cfg.episodes.items()))
    if cfg.steps_override:
        parts.append(f"(Python API overrides: {json.dumps(cfg.steps_override, default=str)})")
    return " ".join(parts)


def main(cfg: RunAllConfig) -> dict[str, Any]:
    """Run the study (resumable; ``--plan-only`` prints the cells and the ETA and stops)."""
    return run(cfg)


def cli(argv: list[str] | None = None) -> int:
    """``python -m experiments.run_all``: prints the report's markdown; exit codes follow the one
    policy of :mod:`byog_core.cli` (2 bad settings, 1 a failure while running, 130 interrupted)."""
    import tyro

    from byog_core.cli import run_cli

    def body() -> int:
        cfg = tyro.cli(RunAllConfig, args=argv)
        cfg.threads = worker_threads(cfg.threads, resolve(cfg).workers)  # resolve checks the overrides
        res = main(cfg)
        if not cfg.plan_only:
            print(res.get("report", json.dumps(res, indent=2, default=str)))
        return 0

    return run_cli(body, on_interrupt="finished cells are kept; rerun the same command to resume.")


if __name__ == "__main__":
    sys.exit(cli())
