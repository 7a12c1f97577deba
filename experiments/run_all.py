"""One command for the transfer study: collection, pretraining of every encoder (through the
project trainer), the BC and label-scarcity sweeps, the cross-domain setting, short PPO runs,
and the report.

    python -m experiments.run_all --preset tiny --out runs/study-tiny

Resumable: every cell writes ``cell.json`` when done and is skipped on the next run; datasets
resume through the collector and an interrupted pretraining run resumes from its checkpoint.
Encoders are pretrained once per (env, label fraction) with seed 0; the seeds vary the BC
training episodes, the head's init and the live episodes. Any preset field can be overridden
from the command line (``--seeds 0 1 2 --ns 1 4 16 --encoders byog scratch``).
"""
from __future__ import annotations

import json
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from experiments.pretrain import (
    ENCODER_KINDS,
    PRETRAINED_KINDS,
    ExperimentError,
    PretrainSpec,
    narration_f1,
)

PRESETS: dict[str, dict[str, Any]] = {
    # make demo: ~3-4 minutes on 2 CPU cores; every encoder kind, 2 seeds (so a CI exists)
    "tiny": {"episodes": {"babyai-gotolocal": 32}, "max_steps": 64, "encoders": ENCODER_KINDS,
                 "ns": (8,), "seeds": (0, 1), "label_fractions": (1.0,), "pretrain_steps": 40, "pretrain_batch": 8, "bc_steps": 80,
                 "live_episodes": 8, "finetune": False, "cross_domain": False, "rl_timesteps": 0, "rl_encoders": (),
                 "size": "tiny"},
    # about 2 hours on 2 CPU cores
    "small": {"episodes": {"babyai-gotolocal": 160, "crafter": 24}, "max_steps": 64, "encoders": ENCODER_KINDS,
                  "ns": (1, 4, 16, 64), "seeds": (0, 1, 2), "label_fractions": (0.01, 0.1, 1.0),
                  "pretrain_steps": 600, "pretrain_batch": 8, "bc_steps": 300, "live_episodes": 32, "finetune": True, "cross_domain": True,
                  "rl_timesteps": 8192, "rl_encoders": ("cnnpolicy", "byog", "captioner"), "size": "tiny"},
    # the GPU scale (too large for a CPU machine)
    "full": {"episodes": {"babyai-gotolocal": 5000, "crafter": 500}, "max_steps": None, "encoders": ENCODER_KINDS,
                 "ns": (1, 4, 16, 64, 256, 1024), "seeds": (0, 1, 2, 3, 4), "label_fractions": (0.01, 0.1, 1.0),
                 "pretrain_steps": 50000, "pretrain_batch": 32, "bc_steps": 5000, "live_episodes": 200, "finetune": True, "cross_domain": True,
                 "rl_timesteps": 1_000_000, "rl_encoders": ("cnnpolicy", "byog", "captioner", "scratch"),
                 "size": "small"},
}
POLICY = {"crafter": "crafter-scripted"}
CROSS_SOURCE = "babyai-gotoobj"
TARGET = "babyai-gotolocal"


@dataclass
class RunAllConfig:
    """The whole study: a preset, optionally with some of its fields overridden."""

    out: Path
    """Study directory (datasets, encoders, cells, report)."""
    preset: Literal["tiny", "small", "full"] = "tiny"
    """Scale: tiny (minutes), small (~2 h on 2 CPU cores), full (GPU)."""
    envs: tuple[str, ...] | None = None
    """Override: only these of the preset's envs (e.g. babyai-gotolocal)."""
    encoders: tuple[str, ...] | None = None
    """Override: encoders of the BC sweep (byog captioner random scratch vqvae units)."""
    ns: tuple[int, ...] | None = None
    """Override: numbers of training episodes N."""
    seeds: tuple[int, ...] | None = None
    """Override: seeds."""
    label_fractions: tuple[float, ...] | None = None
    """Override: label fractions of pretraining (byog and captioner; others use 1.0)."""
    pretrain_steps: int | None = None
    """Override: pretraining steps."""
    bc_steps: int | None = None
    """Override: BC optimizer steps."""
    live_episodes: int | None = None
    """Override: live evaluation episodes per cell."""
    finetune: bool | None = None
    """Override: also fine-tune the BYOG encoder with the head."""
    cross_domain: bool | None = None
    """Override: run the cross-domain setting."""
    rl_timesteps: int | None = None
    """Override: PPO timesteps (0 = no PPO)."""
    plan_only: bool = False
    """Write ``plan.json`` (the resolved preset, the cell count) and stop."""
    progress: bool = True
    """Progress bars."""
    steps_override: dict[str, Any] = field(default_factory=dict)
    """Python API only: override any preset entry (tests), e.g. {"episodes": {"babyai-gotolocal": 6}}."""

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if self.preset not in PRESETS:
            raise ExperimentError(f"Unknown preset {self.preset!r}; choose tiny, small or full.")
        bad = [e for e in self.encoders or () if e not in ENCODER_KINDS]
        if bad:
            raise ExperimentError(f"Unknown encoder(s) {bad}; choose from {', '.join(ENCODER_KINDS)}.")
        unknown = [e for e in self.envs or () if e not in PRESETS[self.preset]["episodes"]]
        if unknown:
            raise ExperimentError(f"Env(s) {unknown} are not in preset {self.preset!r}; choose from "
                                  f"{', '.join(PRESETS[self.preset]['episodes'])}.")
        if any(n < 1 for n in self.ns or ()) or any(not 0 <= f <= 1 for f in self.label_fractions or ()):
            raise ExperimentError("--ns must be >= 1 and --label-fractions in [0, 1].")


def plan(cfg: RunAllConfig) -> dict[str, Any]:
    """The preset with overrides applied, and the number of BC cells it runs."""
    p = {**PRESETS[cfg.preset], **cfg.steps_override}
    for name in ("encoders", "ns", "seeds", "label_fractions", "pretrain_steps", "bc_steps",
                 "live_episodes", "finetune", "cross_domain", "rl_timesteps"):
        if getattr(cfg, name) is not None:
            p[name] = getattr(cfg, name)
    if cfg.envs is not None:
        p["episodes"] = {e: n for e, n in p["episodes"].items() if e in cfg.envs}
    jobs = bc_jobs(p)
    return {**p, "preset": cfg.preset, "bc_cells": len(jobs)}


def bc_jobs(p: dict[str, Any]) -> list[tuple[str, float, str, str, int, int]]:
    """``(env, label_fraction, encoder, mode, n, seed)`` of every BC cell (label fractions < 1
    only for byog and captioner; fine-tuning only for byog with all labels)."""
    jobs = []
    for env in p["episodes"]:
        for lf in p["label_fractions"]:
            for kind in p["encoders"]:
                if lf != 1.0 and kind not in ("byog", "captioner"):
                    continue
                for n in p["ns"]:
                    for seed in p["seeds"]:
                        jobs.append((env, lf, kind, "frozen", n, seed))
                        if p["finetune"] and kind == "byog" and lf == 1.0:
                            jobs.append((env, lf, kind, "finetune", n, seed))
    return jobs


def collect_data(env: str, n: int, out: Path, max_steps: int | None, progress: bool) -> Path:
    """Collect ``n`` expert episodes of ``env`` into ``out`` (resumes a partial collection)."""
    from collect.rollout import CollectConfig, collect

    info = out / "meta" / "info.json"
    if info.is_file() and json.loads(info.read_text()).get("num_episodes", 0) >= n:
        return out
    collect(CollectConfig(env=env, out=out, policy=POLICY.get(env, "babyai-bot"), episodes=n,
                          max_episode_steps=max_steps, num_envs=1, vector_mode="sync",
                          resume=(out / "meta").is_dir(), progress=progress))
    return out


def encoder(kind: str, data: Path, root: Path, p: dict, tag: str, lf: float, progress: bool,
            ) -> tuple[Path | None, dict[str, float]]:
    """Pretrain (once) the ``kind`` encoder on ``data``; ``(checkpoint for the featurizer,
    pretraining metrics)``; ``(None, {})`` for kinds without pretraining."""
    from experiments.pretrain import encoder_checkpoint, pretrain

    if kind not in PRETRAINED_KINDS:
        return None, {}
    run = root / "encoders" / tag / kind
    spec = PretrainSpec(steps=p["pretrain_steps"], size=p["size"], batch_size=p["pretrain_batch"], progress=progress)
    metrics = pretrain(kind, data, run, spec, label_fraction=lf if kind in ("byog", "captioner") else 1.0)
    return encoder_checkpoint(kind, run), metrics


def write_cell(path: Path, row: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(row, indent=2))


def run_bc_cell(root: Path, p: dict, data: Path, job: tuple, study: str = "bc", ckpt: Path | None = None,
                extra: dict[str, Any] | None = None) -> None:
    """One BC cell (skipped when its ``cell.json`` exists)."""
    from experiments.action_transfer import ActionTransferConfig
    from experiments.action_transfer import main as bc_main

    env, lf, kind, mode, n, seed = job
    sub = f"{env}/lf{lf}" if study == "bc" else "cross"
    cell = root / "cells" / study / sub / f"{kind}-{mode}" / f"n{n}" / f"s{seed}" / "cell.json"
    if cell.is_file():
        return
    res = bc_main(ActionTransferConfig(data=data, out=cell.parent, encoder=kind, checkpoint=ckpt, mode=mode,
                                       n_episodes=n, steps=p["bc_steps"], seed=seed,
                                       live_episodes=p["live_episodes"], progress=False, size=p["size"]))
    write_cell(cell, {"study": study, "env": env, "encoder": kind, "mode": mode, "n_episodes": n,
                      "label_fraction": lf, "seed": seed, **res, **(extra or {})})


def run(cfg: RunAllConfig) -> dict[str, Any]:
    from tqdm import tqdm

    from collect.dataset import open_dataset
    from experiments.pretrain import VAL_FRACTION
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
    n_train = {env: open_dataset(d).num_episodes - max(1, round(VAL_FRACTION * open_dataset(d).num_episodes))
               for env, d in data.items()}
    jobs = [j for j in bc_jobs(p) if j[4] <= n_train[j[0]]]
    for job in tqdm(jobs, desc="bc cells", disable=not cfg.progress):
        env, lf, kind = job[:3]
        ckpt, pre = encoder(kind, data[env], root, p, f"{env}/lf{lf}", lf, cfg.progress)
        run_bc_cell(root, p, data[env], job, ckpt=ckpt, extra={k: v for k, v in pre.items() if k.startswith("narration/")})
    for env, path in data.items():
        _references(root, p, env, path)
    if p["cross_domain"] and TARGET in data:
        _cross_domain(cfg, p, data[TARGET], root)
    if p["rl_timesteps"]:
        for enc in p["rl_encoders"]:
            _rl(cfg, p, root, data, enc)
    report = write_report(root, command=command(cfg))
    return {**p, "seconds": time.perf_counter() - t0, "report": report}


def reference_policies(env: str) -> tuple[str, ...]:
    """The expert that made the demonstrations, and a uniform random policy."""
    return (POLICY.get(env, "babyai-bot"), "random")


def _references(root: Path, p: dict, env: str, data: Path) -> None:
    """Live references through the same evaluation code, episodes and step limit as the cloned
    policies: the demonstrating expert (the ceiling) and a random policy (the floor)."""
    from collect.dataset import open_dataset
    from experiments.action_transfer import live_seed
    from experiments.live import PerEnvPolicies, evaluate_live

    if not p["live_episodes"]:
        return
    max_steps = max(open_dataset(data).lengths)
    for policy in reference_policies(env):
        for seed in p["seeds"]:
            cell = root / "cells" / "ref" / env / policy / f"s{seed}" / "cell.json"
            if cell.is_file():
                continue
            res = evaluate_live(env, PerEnvPolicies(policy, seed=seed), episodes=p["live_episodes"],
                                seed=live_seed(seed), num_envs=8, max_steps=max_steps)
            write_cell(cell, {"study": "ref", "env": env, "encoder": policy, "mode": "policy", "n_episodes": "",
                              "label_fraction": "", "seed": seed, **res})


def command(cfg: RunAllConfig) -> str:
    """The command line that reproduces ``cfg`` (the preset plus its overrides)."""
    parts = ["python -m experiments.run_all", f"--preset {cfg.preset}", f"--out {shlex.quote(str(cfg.out))}"]
    for name in ("envs", "encoders", "ns", "seeds", "label_fractions", "pretrain_steps", "bc_steps",
                 "live_episodes", "finetune", "cross_domain", "rl_timesteps"):
        v = getattr(cfg, name)
        flag = "--" + name.replace("_", "-")
        if isinstance(v, tuple):
            parts.append(f"{flag} {' '.join(str(x) for x in v)}")
        elif v is not None:
            parts.append(f"{flag} {v}")
    if cfg.steps_override:
        parts.append(f"(Python API overrides: {json.dumps(cfg.steps_override, default=str)})")
    return " ".join(parts)


def _cross_domain(cfg: RunAllConfig, p: dict, target: Path, root: Path) -> None:
    """Encoders pretrained (fully labelled) on a source level only; narration F1 and BC
    transfer measured on the target level, which they never saw."""
    source = collect_data(CROSS_SOURCE, max(16, p["episodes"][TARGET] // 2), root / "data" / CROSS_SOURCE,
                          p["max_steps"], cfg.progress)
    n = max(x for x in p["ns"] if x <= 16) if min(p["ns"]) <= 16 else min(p["ns"])
    for kind in ("byog", "captioner"):
        ckpt, _ = encoder(kind, source, root, p, "cross", 1.0, cfg.progress)
        f1 = None
        for seed in p["seeds"]:
            if f1 is None:
                f1 = narration_f1(ckpt, target)
            run_bc_cell(root, p, target, (TARGET, 0.0, kind, "frozen", n, seed), study="cross", ckpt=ckpt,
                        extra={"narration/event_f1": f1})


def _rl(cfg: RunAllConfig, p: dict, root: Path, data: dict, enc: str) -> None:
    from experiments.rl_finetune import RLConfig
    from experiments.rl_finetune import main as rl_main

    env = TARGET
    ckpt = None
    if enc in PRETRAINED_KINDS:
        ckpt, _ = encoder(enc, data[env], root, p, f"{env}/lf1.0", 1.0, cfg.progress)
    for seed in p["seeds"]:
        cell = root / "cells" / "rl" / env / enc / f"s{seed}" / "cell.json"
        if cell.is_file():
            continue
        res = rl_main(RLConfig(env=env, out=cell.parent, encoder=enc, checkpoint=ckpt,
                               timesteps=p["rl_timesteps"], max_episode_steps=p["max_steps"] or 64, seed=seed))
        write_cell(cell, {"study": "rl", "env": env, "encoder": enc, "mode": "frozen", "n_episodes": "",
                          "label_fraction": "", "seed": seed, **res})


def main(cfg: RunAllConfig) -> dict[str, Any]:
    """Run the study (resumable; ``--plan-only`` writes the resolved plan and stops)."""
    return run(cfg)


def cli(argv: list[str] | None = None) -> int:
    """``python -m experiments.run_all``: prints the report's markdown; errors: one line, exit 2."""
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
