"""One command for the transfer study: collection, pretraining of every encoder, the BC and
label-scarcity sweeps, the cross-domain setting, short PPO runs, and the report.

    python -m experiments.run_all --preset tiny --out runs/study-tiny

Resumable: every cell writes ``cell.json`` when done and is skipped on the next run; datasets
resume through the collector and pretrained encoders are reused when their directory exists.
Encoders are pretrained once per (kind, label fraction) with seed 0; the seeds vary the BC
split, the head's init and the live episodes (``full`` pretrains per seed).
"""
from __future__ import annotations

import json
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from experiments.pretrain import ExperimentError, Source

PRESETS: dict[str, dict[str, Any]] = {
    # a few minutes on 2 CPU cores (make demo)
    "tiny": dict(episodes={"babyai-gotolocal": 24}, max_steps=64, encoders=("byog", "captioner", "random", "scratch"),
                 ns=(4, 16), seeds=(0, 1, 2), label_fractions=(1.0,), pretrain_steps=30, bc_steps=60,
                 live_episodes=8, finetune=False, cross_domain=False, rl_timesteps=0, rl_encoders=(),
                 size="tiny"),
    # about 2 hours on 2 CPU cores
    "small": dict(episodes={"babyai-gotolocal": 160, "crafter": 24}, max_steps=64,
                  encoders=("byog", "captioner", "random", "scratch", "vqvae", "units"),
                  ns=(1, 4, 16, 64), seeds=(0, 1, 2), label_fractions=(0.01, 0.1, 1.0),
                  pretrain_steps=600, bc_steps=300, live_episodes=32, finetune=True, cross_domain=True,
                  rl_timesteps=8192, rl_encoders=("cnnpolicy", "byog", "captioner"), size="tiny"),
    # the GPU scale (real config; too large for this machine)
    "full": dict(episodes={"babyai-gotolocal": 5000, "crafter": 500}, max_steps=None,
                 encoders=("byog", "captioner", "random", "scratch", "vqvae", "units"),
                 ns=(1, 4, 16, 64, 256, 1024), seeds=(0, 1, 2, 3, 4), label_fractions=(0.01, 0.1, 1.0),
                 pretrain_steps=50000, bc_steps=5000, live_episodes=200, finetune=True, cross_domain=True,
                 rl_timesteps=1_000_000, rl_encoders=("cnnpolicy", "byog", "captioner", "scratch"),
                 size="small"),
}
POLICY = {"crafter": "crafter-scripted"}
CROSS_SOURCES = ("babyai-gotoobj", "babyai-gotoredballgrey")


@dataclass
class RunAllConfig:
    """The whole study."""

    out: Path
    """Study directory (datasets, encoders, cells, report)."""
    preset: Literal["tiny", "small", "full"] = "tiny"
    """Scale: tiny (minutes), small (~2 h on 2 CPU cores), full (GPU)."""
    plan_only: bool = False
    """Write ``plan.json`` (the preset, the cell count) and stop."""
    progress: bool = True
    """Progress bars."""
    steps_override: dict[str, int] = field(default_factory=dict)
    """Override preset numbers (tests), e.g. {"bc_steps": 5}."""

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if self.preset not in PRESETS:
            raise ExperimentError(f"Unknown preset {self.preset!r}; choose tiny, small or full.")


def plan(cfg: RunAllConfig) -> dict[str, Any]:
    """The preset with overrides applied, and the number of cells it runs."""
    p = {**PRESETS[cfg.preset], **cfg.steps_override}
    n_bc = len(p["episodes"]) * len(p["encoders"]) * len(p["ns"]) * len(p["seeds"]) * len(p["label_fractions"])
    return {**p, "preset": cfg.preset, "bc_cells_upper_bound": n_bc}


def collect_data(env: str, n: int, out: Path, max_steps: int | None, progress: bool) -> Path:
    from collect.rollout import CollectConfig, collect

    if (out / "meta" / "info.json").is_file() and json.loads((out / "meta" / "info.json").read_text()) \
            .get("num_episodes", 0) >= n:
        return out
    collect(CollectConfig(env=env, out=out, policy=POLICY.get(env, "babyai-bot"), episodes=n,
                          max_episode_steps=max_steps, num_envs=1, vector_mode="sync",
                          resume=(out / "meta").is_dir(), progress=progress))
    return out


def encoder_dir(kind: str, sources: list[Source], root: Path, p: dict, tag: str, progress: bool) -> Path | None:
    from experiments.pretrain import pretrain_agent, pretrain_obs

    if kind == "scratch":
        return None
    d = root / "encoders" / tag / kind
    if (d / "done.json").is_file():
        return d
    if kind in ("vqvae", "units"):
        m = pretrain_obs(kind, sources, d, steps=p["pretrain_steps"], progress=progress)
    else:
        m = pretrain_agent(sources, d, preset=kind, size=p["size"], steps=p["pretrain_steps"], progress=progress)
    (d / "done.json").write_text(json.dumps(m))
    return d


def narration_f1(ckpt: Path, data: Path, seed: int = 0) -> float:
    """Greedy narration event F1 of a BYOG/captioner checkpoint on held-out episodes."""
    import torch

    from agents.model import BYOGAgent
    from collect.dataset import WindowDataset, collate_windows, open_dataset
    from experiments.pretrain import labelled_split

    agent = BYOGAgent.from_pretrained(ckpt).eval()
    _, val, _ = labelled_split(open_dataset(data).num_episodes, 0.0, seed)
    wd = WindowDataset(data, window=16, episodes=val)
    with torch.no_grad():
        m = agent.evaluate(collate_windows([wd[i] for i in range(len(wd))]))
    return float(m["eval/event_f1"])


def write_cell(path: Path, row: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(row, indent=2))


def run(cfg: RunAllConfig) -> dict[str, Any]:
    from tqdm import tqdm

    from experiments.action_transfer import ActionTransferConfig
    from experiments.action_transfer import main as bc_main
    from experiments.report import write_report

    p = plan(cfg)
    root = cfg.out
    root.mkdir(parents=True, exist_ok=True)
    (root / "plan.json").write_text(json.dumps(p, indent=2, default=str))
    if cfg.plan_only:
        return p
    t0 = time.perf_counter()
    data = {env: collect_data(env, n, root / "data" / env, p["max_steps"], cfg.progress)
            for env, n in p["episodes"].items()}
    jobs = []
    for env, path in data.items():
        for lf in p["label_fractions"]:
            for kind in p["encoders"]:
                if lf != 1.0 and kind not in ("byog", "captioner"):
                    continue
                for n in p["ns"]:
                    for seed in p["seeds"]:
                        jobs.append((env, path, lf, kind, "frozen", n, seed))
                        if p["finetune"] and kind == "byog" and lf == 1.0:
                            jobs.append((env, path, lf, kind, "finetune", n, seed))
    for env, path, lf, kind, mode, n, seed in tqdm(jobs, desc="bc cells", disable=not cfg.progress):
        cell = root / "cells" / "bc" / env / f"lf{lf}" / f"{kind}-{mode}" / f"n{n}" / f"s{seed}" / "cell.json"
        if cell.is_file():
            continue
        from collect.dataset import open_dataset

        n_train = open_dataset(path).num_episodes - max(1, round(0.2 * open_dataset(path).num_episodes))
        if n > n_train:
            continue
        ckpt = encoder_dir(kind, [Source(path, lf)], root, p, f"{env}/lf{lf}", cfg.progress)
        res = bc_main(ActionTransferConfig(data=path, out=cell.parent, encoder=kind, checkpoint=ckpt, mode=mode,
                                           n_episodes=n, steps=p["bc_steps"], seed=seed,
                                           live_episodes=p["live_episodes"], progress=False, size=p["size"]))
        row = {"study": "bc", "env": env, "encoder": kind, "mode": mode, "n_episodes": n,
               "label_fraction": lf, "seed": seed, **res}
        if kind in ("byog", "captioner"):
            row["narration/event_f1"] = narration_f1(ckpt, path)
        write_cell(cell, row)
    if p["cross_domain"] and "babyai-gotolocal" in data:
        _cross_domain(cfg, p, data["babyai-gotolocal"], root)
    for enc in p["rl_encoders"]:
        _rl(cfg, p, root, data, enc)
    report = write_report(root, command=f"python -m experiments.run_all --preset {cfg.preset} --out {shlex.quote(str(root))}")
    return {**p, "seconds": time.perf_counter() - t0, "report": report}


def _cross_domain(cfg: RunAllConfig, p: dict, target: Path, root: Path) -> None:
    """Annotations only in the source levels; narration and BC transfer on the target level."""
    from experiments.action_transfer import ActionTransferConfig
    from experiments.action_transfer import main as bc_main

    srcs = [Source(collect_data(e, max(16, p["episodes"]["babyai-gotolocal"] // 2), root / "data" / e,
                                p["max_steps"], cfg.progress), 1.0) for e in CROSS_SOURCES]
    sources = [*srcs, Source(target, 0.0)]
    for kind in ("byog", "captioner"):
        ckpt = encoder_dir(kind, sources, root, p, "cross", cfg.progress)
        for seed in p["seeds"]:
            n = max(x for x in p["ns"] if x <= 16)
            cell = root / "cells" / "cross" / kind / f"s{seed}" / "cell.json"
            if cell.is_file():
                continue
            res = bc_main(ActionTransferConfig(data=target, out=cell.parent, encoder=kind, checkpoint=ckpt,
                                               n_episodes=n, steps=p["bc_steps"], seed=seed,
                                               live_episodes=p["live_episodes"], progress=False))
            write_cell(cell, {"study": "cross", "env": "babyai-gotolocal", "encoder": kind, "mode": "frozen",
                              "n_episodes": n, "label_fraction": 0.0, "seed": seed,
                              "narration/event_f1": narration_f1(ckpt, target), **res})


def _rl(cfg: RunAllConfig, p: dict, root: Path, data: dict, enc: str) -> None:
    from experiments.rl_finetune import RLConfig
    from experiments.rl_finetune import main as rl_main

    env = "babyai-gotolocal"
    ckpt = None if enc in ("cnnpolicy", "scratch") else root / "encoders" / f"{env}/lf1.0" / enc
    for seed in p["seeds"]:
        cell = root / "cells" / "rl" / env / enc / f"s{seed}" / "cell.json"
        if cell.is_file():
            continue
        res = rl_main(RLConfig(env=env, out=cell.parent, encoder=enc, checkpoint=ckpt,
                               timesteps=p["rl_timesteps"], max_episode_steps=p["max_steps"] or 64, seed=seed))
        write_cell(cell, {"study": "rl", "env": env, "encoder": enc, "mode": "frozen", "n_episodes": "",
                          "label_fraction": "", "seed": seed, **res})


def main(cfg: RunAllConfig) -> dict[str, Any]:
    """Run the study (``full`` only writes its plan unless run where it fits)."""
    return run(cfg)


def cli(argv: list[str] | None = None) -> int:
    import tyro

    from collect.writer import DatasetError

    try:
        res = main(tyro.cli(RunAllConfig, args=argv))
    except (ExperimentError, DatasetError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(res.get("report", json.dumps(res, indent=2, default=str)))
    return 0


if __name__ == "__main__":
    sys.exit(cli())
