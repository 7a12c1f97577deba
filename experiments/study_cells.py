"""The transfer study's cells: collecting the data, pretraining the encoders, behavioural
cloning, references and RL, each keyed by its full resolved config, planned in order.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from experiments.runner import Cell

if TYPE_CHECKING:
    from experiments.pretrain import PretrainSpec
from experiments.study_config import CROSS_SOURCE, CROSS_TARGET, EnvPlan, StudyPreset, expert_policy


# ---------------------------------------------------------------------------- cells
def data_dir(root: Path, env: str, plan: EnvPlan) -> Path:
    """Where ``env``'s dataset lives: keyed by what was collected (changed settings recollect)."""
    c = Cell(env, "collect", {"env": env, **asdict(plan), "policy": expert_policy(env)})
    return Path(root) / "data" / f"{env}-{c.key}"


def collect_data(env: str, plan: EnvPlan, out: Path, progress: bool) -> Path:
    """Collect ``plan.episodes`` expert episodes of ``env`` into ``out`` (resumes a partial run)."""
    from collect.rollout import CollectConfig, collect_dataset

    info = out / "meta" / "info.json"
    if info.is_file() and json.loads(info.read_text()).get("num_episodes", 0) >= plan.episodes:
        return out
    collect_dataset(CollectConfig(env=env, out=out, policy=expert_policy(env), episodes=plan.episodes,
                          max_episode_steps=plan.max_steps, env_kwargs=dict(plan.env_kwargs), num_envs=1,
                          vector_mode="sync", resume=(out / "meta").is_dir(), progress=progress))
    return out


def pretrain_spec(config: dict[str, Any]) -> PretrainSpec:
    """The :class:`~experiments.pretrain.PretrainSpec` of a pretraining cell's config."""
    from experiments.pretrain import PretrainSpec

    return PretrainSpec(steps=config["steps"], size=config["size"], batch_size=config["batch"],
                        seed=config["pipeline_seed"], label_seed=config["pipeline_seed"], progress=False,
                        keep_steps=tuple(config.get("keep_steps", ())), device=config.get("device", "cpu"),
                        obs_options=dict(config.get("obs", {})))


def pretrain_cell(config: dict[str, Any], out: Path) -> dict[str, Any]:
    """Cell entry point: pretrain one encoder into ``out/run``."""
    from experiments.pretrain import pretrain

    res = pretrain(config["kind"], Path(config["data"]), out / "run", pretrain_spec(config),
                   label_fraction=config["label_fraction"])
    return {**res, "run": str(out / "run")}


def bc_cell(config: dict[str, Any], out: Path) -> dict[str, Any]:
    """Cell entry point: one BC cell (:func:`experiments.action_transfer.run`), with the
    pretrained encoder's narration metrics beside its result."""
    from experiments.action_transfer import ActionTransferConfig, run
    from experiments.pretrain import encoder_checkpoint

    cfg = dict(config)
    pre = cfg.pop("pretrained", None)
    extra: dict[str, Any] = {}
    ckpt = None
    if pre:
        step = pre.get("step")
        ckpt = encoder_checkpoint(pre["kind"], Path(pre["run"]), step)
        f = Path(pre["run"]) / "pretrain.json"
        extra = {k: v for k, v in json.loads(f.read_text()).items() if k.startswith("narration/")} if f.is_file() else {}
        if step is not None:  # this checkpoint's narration, not the final one's
            extra = {"narration/event_f1": extra.get(f"narration/event_f1@{step}", float("nan")),
                     "pretrain_step": step}
    res = run(ActionTransferConfig(**cfg, out=out, checkpoint=ckpt, progress=False))
    return {**res, **extra}


def ref_cell(config: dict[str, Any], out: Path) -> dict[str, Any]:
    """Cell entry point: a live reference policy (expert, random, or the observation-blind
    action prior, sampled or argmax) through the same evaluation as the cloned policies."""
    import numpy as np

    from collect.dataset import open_dataset
    from experiments.action_transfer import env_kwargs_of, live_cap, live_seed
    from experiments.live import ActionPriorActor, PerEnvPolicies, evaluate_live
    from experiments.pretrain import bc_split3

    ds = open_dataset(config["data"])
    env = str(ds.info.get("env"))
    if config["policy"] == "action-prior":
        train, _, _ = bc_split3(ds.num_episodes, config["n"], config["seed"], config["val_episodes"])
        acts = np.concatenate([ds.episode(i).actions for i in train])
        freqs = np.bincount(acts[acts >= 0], minlength=int(ds.info["action_space"]["n"]))
        actor: Any = ActionPriorActor(freqs, sample=config["mode"] == "sample", seed=config["seed"])
    else:
        actor = PerEnvPolicies(config["policy"], seed=config["seed"])
    return evaluate_live(env, actor, episodes=config["episodes"], seed=live_seed(config["seed"]), num_envs=8,
                         max_steps=live_cap(env, config["live_max_steps"]), env_kwargs=env_kwargs_of(ds))


def rl_cell(config: dict[str, Any], out: Path) -> dict[str, Any]:
    """Cell entry point: one PPO run (:mod:`experiments.rl_finetune`)."""
    from experiments.pretrain import encoder_checkpoint
    from experiments.rl_finetune import RLConfig, run

    cfg = dict(config)
    pre = cfg.pop("pretrained", None)
    ckpt = encoder_checkpoint(pre["kind"], Path(pre["run"])) if pre else None
    return run(RLConfig(**cfg, out=out, checkpoint=ckpt))


class _PretrainCells:
    """The pretraining cells that the BC, cross-domain and RL cells load encoders from: one per
    (env, kind, label fraction, pipeline seed, source data), in the order first asked for, so
    every arm that needs the same encoder shares one pretraining run."""

    def __init__(self, p: StudyPreset, root: Path) -> None:
        from experiments.arms import resolve_arm

        self.p, self.root = p, root
        self.cells: dict[tuple, Cell] = {}
        # the earlier checkpoints the dose arms are also evaluated at
        self.dose: tuple[int, ...] = tuple(sorted({s for s in p.dose_steps if s < p.pretrain_steps}))
        self.dose_kinds = ({resolve_arm(a)[1].pretrain for a in p.dose_arms if a in p.arms}
                           if self.dose else set())

    def pretrained(self, env: str, kind: str, lf: float, ps: int, source: Path) -> dict[str, Any]:
        """A cell config's ``pretrained`` entry (the encoder kind and its run directory),
        planning the pretraining cell that writes it the first time it is asked for."""
        p = self.p
        key = (env, kind, lf, ps, str(source))
        if key not in self.cells:
            conf = {"kind": kind, "data": str(source), "steps": p.pretrain_steps, "batch": p.pretrain_batch,
                    "size": p.size, "label_fraction": lf, "pipeline_seed": ps,
                    # only where kept (a preset without doses keeps its cells' keys)
                    **({"keep_steps": list(self.dose)} if kind in self.dose_kinds else {}), **on_device(p),
                    **({"obs": p.obs_options[kind]} if kind in p.obs_options else {})}
            self.cells[key] = Cell(f"pretrain/{env}/{kind}/lf{lf:g}/p{ps}", "experiments.run_all:pretrain_cell",
                                   conf, kind="pretrain", cost=p.pretrain_steps,
                                   meta={"study": "pretrain", "env": env, "encoder": kind, "label_fraction": lf,
                                         "pipeline_seed": ps})
        return {"kind": kind, "run": str(self.cells[key].dir(self.root) / "run")}


def _bc_cells(p: StudyPreset, data: dict[str, Path], episodes: dict[str, int],
              pre_cells: _PretrainCells) -> list[Cell]:
    """The main BC grid: every env, arm, label fraction (only for encoders whose pretraining
    reads labels), N that fits the training pool, pipeline seed and BC seed, and the dose arms'
    same cells at the earlier pretraining checkpoints."""
    from experiments.arms import resolve_arm
    from experiments.pretrain import PRETRAIN_KINDS

    bc: list[Cell] = []
    for env, path in ((e, d) for e, d in data.items() if e in p.envs):
        pool = episodes[env] - max(1, round(0.2 * episodes[env])) - p.val_episodes
        for arm in p.arms:
            spec = resolve_arm(arm)[1]
            sensitive = spec.pretrain is not None and PRETRAIN_KINDS[spec.pretrain].label_sensitive
            lfs = p.label_fractions if sensitive else (1.0,)
            modes = ("frozen", "finetune") if p.finetune and spec.finetunable and spec.pretrain else ("frozen",)
            for lf in lfs:
                for n in (n for n in p.ns if n <= pool):
                    for ps in p.pipeline_seeds:
                        pre = (pre_cells.pretrained(env, spec.pretrain, lf, ps, path)
                               if spec.pretrain else None)
                        bc += [_bc(p, env, path, arm, mode, n, lf, ps, bs, pre, "bc")
                               for mode in modes for bs in p.bc_seeds]
                        if pre and arm in p.dose_arms:  # the same cell at earlier checkpoints
                            bc += [_bc(p, env, path, arm, "frozen", n, lf, ps, bs, {**pre, "step": s}, "dose")
                                   for s in pre_cells.dose for bs in p.bc_seeds]
    return bc


def _cross_cells(p: StudyPreset, data: dict[str, Path], pre_cells: _PretrainCells) -> list[Cell]:
    """Cross-domain BC: encoders pretrained on the source env, cloned on the target env at the
    largest N up to 16 (none unless the preset asks and the target's data is there)."""
    from experiments.arms import resolve_arm

    if not (p.cross_domain and CROSS_TARGET in data):
        return []
    source = data[CROSS_SOURCE]
    n = max([x for x in p.ns if x <= 16] or [min(p.ns)])
    cells: list[Cell] = []
    for arm in ("byog", "captioner", "byog-text", "captioner-text"):
        for ps in p.pipeline_seeds:
            pre = pre_cells.pretrained(CROSS_SOURCE, resolve_arm(arm)[1].pretrain, 1.0, ps, source)
            cells += [_bc(p, CROSS_TARGET, data[CROSS_TARGET], arm, "frozen", n, 1.0, ps, bs, pre, "cross")
                      for bs in p.bc_seeds]
    return cells


def _ref_cells(p: StudyPreset, data: dict[str, Path]) -> list[Cell]:
    """The live reference policies each BC arm is read against: the env's expert, random, and
    the action prior (sampled and argmax), once per BC seed."""
    return [Cell(f"ref/{env}/{pol}-{mode}/b{bs}", "experiments.run_all:ref_cell",
                 {"data": str(path), "policy": pol, "mode": mode, "episodes": p.live_episodes, "seed": bs,
                  "live_max_steps": p.live_max_steps, "n": max(p.ns), "val_episodes": p.val_episodes},
                 kind="ref", cost=p.live_episodes,
                 meta={"study": "ref", "env": env, "encoder": pol if pol != "action-prior" else f"action-prior/{mode}",
                       "mode": mode, "seed": bs, "pipeline_seed": 0})
            for env, path in data.items() if p.live_episodes and env in p.envs
            for pol in (expert_policy(env), "random", "action-prior")
            for mode in (("sample", "argmax") if pol == "action-prior" else ("policy",))
            for bs in p.bc_seeds]


def _rl_cells(p: StudyPreset, data: dict[str, Path], pre_cells: _PretrainCells) -> list[Cell]:
    """One PPO run per RL encoder and pipeline seed, on Crafter when it is in the study."""
    from experiments.arms import resolve_arm

    rl = []
    for enc in p.rl_encoders if p.rl_timesteps else ():
        env = "crafter" if "crafter" in data else next(iter(data))
        spec = None if enc == "cnnpolicy" else resolve_arm(enc)[1]
        for ps in p.pipeline_seeds:
            pre = (pre_cells.pretrained(env, spec.pretrain, 1.0, ps, data[env])
                   if spec and spec.pretrain else None)
            conf = {"env": env, "encoder": enc, "timesteps": p.rl_timesteps, "seed": ps,
                    "max_episode_steps": p.envs[env].max_steps or 500, "env_kwargs": dict(p.envs[env].env_kwargs),
                    **({"pretrained": pre} if pre else {}), **on_device(p)}
            rl.append(Cell(f"rl/{env}/{enc}/p{ps}", "experiments.run_all:rl_cell", conf, kind="rl",
                           cost=p.rl_timesteps, meta={"study": "rl", "env": env, "encoder": enc, "pipeline_seed": ps}))
    return rl


def plan_cells(p: StudyPreset, root: Path, data: dict[str, Path], episodes: dict[str, int]) -> list[Cell]:
    """Every cell of the study (``episodes``: each dataset's episode count), pretraining first.

    The BC, cross-domain and RL cells are planned first (in that order) because planning them
    is what plans the pretraining cells they load from; those then run before everything else.
    """
    pre_cells = _PretrainCells(p, root)
    bc = _bc_cells(p, data, episodes, pre_cells) + _cross_cells(p, data, pre_cells)
    refs = _ref_cells(p, data)
    rl = _rl_cells(p, data, pre_cells)
    return [*pre_cells.cells.values(), *bc, *refs, *rl]


def on_device(p: StudyPreset) -> dict[str, str]:
    """A cell config's ``device`` entry: only off the CPU, so the CPU presets' cells keep the
    keys (and the finished results) they had before studies had a device."""
    return {"device": p.device} if p.device != "cpu" else {}


def bc_seed(pipeline_seed: int, bc_seed_index: int) -> int:
    """The BC seed of BC replicate ``bc_seed_index`` within a pipeline seed: nested, so every
    pipeline seed draws its own training episodes, head inits and live env seeds (arms within a
    pipeline seed and replicate share them: the pairing)."""
    return 1000 * int(pipeline_seed) + int(bc_seed_index)


def _bc(p: StudyPreset, env: str, path: Path, arm: str, mode: str, n: int, lf: float, ps: int, bs: int,
        pre: dict[str, Any] | None, study: str) -> Cell:
    from experiments.arms import resolve_arm

    live = p.live_episodes if (p.live_arms is None or arm in p.live_arms) and study != "dose" else 0
    conf = {"data": str(path), "encoder": arm, "mode": mode, "n_episodes": n, "val_episodes": p.val_episodes,
            "steps": p.bc_steps, "eval_every": p.eval_every, "patience": p.patience, "min_delta": p.bc_min_delta,
            "batch_size": p.bc_batch,
            "lr": p.bc_lr,
            "gru": p.gru, "live_episodes": live, "live_max_steps": p.live_max_steps, "seed": bc_seed(ps, bs),
            "pipeline_seed": ps, "size": p.size, **({"pretrained": pre} if pre else {}), **on_device(p),
            # the narration F1 on the BC-validation episodes: matched-F1 pairs of the dose arms
            **({"bc_val_f1": True} if pre and arm in p.dose_arms else {})}
    step = (pre or {}).get("step")
    name = f"{study}/{env}/{arm}-{mode}/lf{lf:g}/n{n}/p{ps}/b{bs}" + (f"/ck{step}" if step is not None else "")
    spec = resolve_arm(arm)[1]
    # cost in frozen-head steps at batch 8 (measured, loaded 2-core machine: a frozen-head step
    # 0.06 s, a step that trains a CNN on 8 episodes ~1 s, a live episode in both action modes
    # ~6 s); a step's cost grows with the episodes in its batch
    steps = p.bc_steps * p.bc_batch / 8
    trains = spec.trains_encoder or mode == "finetune"
    # + the convex head on frozen features (~0.06 s per training episode of 64 steps, measured
    # on Crafter at load ~11: 4-8 s for N = 64)
    cost = steps * (16 if trains else 1) + 100 * live + 2 * n + (0 if trains else n)
    return Cell(name, "experiments.run_all:bc_cell", conf, kind="bc", cost=cost,
                meta={"study": study, "env": env, "encoder": arm, "mode": mode, "n_episodes": n,
                      "label_fraction": lf, "pipeline_seed": ps, "seed": bs,
                      "pretrain_step": step if step is not None else (p.pretrain_steps if pre else None)})
