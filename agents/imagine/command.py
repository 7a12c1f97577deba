"""Imagination: roll a world model forward from real frames, in pictures and in words.

``python -m agents.imagine --checkpoint RUN --data DIR|--env ENV [--policy P] --steps K --out DIR``

* ``--train-steps N`` (with ``--data``) first trains the world model (a second stage reading the
  frozen agent, :mod:`agents.imagine.world_model`) on the agent's training episodes and saves it beside
  the agent's checkpoint (``<checkpoint>/world_model/``); without it the saved one is used.
* Clips of ``--context`` real frames are taken from the agent's validation episodes (``--data``)
  or from ``--episodes`` live episodes played by ``--policy`` (``--env``); from the last real
  frame the model imagines ``--steps`` frames under the actions actually taken, and the agent
  narrates the imagined frames as it narrates real ones.
* ``--out`` receives ``imagination.mp4`` (real | imagined side by side, both narrations as
  subtitles), ``contact_sheet.png`` and ``metrics.json``: per horizon 1..K, PSNR / SSIM and code
  accuracy of the imagined frames (argmax decoding, and best of ``--samples`` sampled rollouts)
  against copy-the-last-frame and the tokenizer's own reconstruction (the ceiling), and event
  F1 between the narration of the imagined frames and that of the real ones.
* ``--compare-conditions`` also trains world models that read the action only and nothing
  (the language ablation) and evaluates them on the same clips; ``--compare-decoding`` measures
  the decoding schemes' quality per CPU second.
"""
from __future__ import annotations

import itertools
import json
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.imagine.config import CONDITIONS, WORLD_MODEL_DIR, WorldModelConfig, WorldModelError
from agents.imagine.dynamics import (
    WorldModel,
    attach_world_model,
    attached_world_model,
    train_world_model,
)
from agents.imagine.episodes import (
    _dataset_env,
    _discrete_actions,
    dataset_episodes,
    training_prompts,
)
from agents.imagine.evaluation import Clips, compare_decoding, evaluate, make_clips
from agents.imagine.frame_tokens import frame_tokens_for
from agents.imagine.outputs import METRICS, REPORT, report, write_outputs
from agents.imagine.rollout import Imagination, imagine
from agents.imagine.study import model_key
from agents.imagine.transitions import build_transitions, narrator_states

__all__ = ["Imagination", "ImagineConfig", "attach_world_model", "attached_world_model", "cli",
           "evaluate", "imagine", "main", "world_model_dir"]


# ---------------------------------------------------------------------------------------------
# Where the world model lives
# ---------------------------------------------------------------------------------------------
def world_model_dir(checkpoint: str | Path) -> Path:
    """Where a checkpoint's world model lives: ``<checkpoint>/world_model`` (the newest
    checkpoint of a run directory)."""
    from agents.training.checkpoint import resolve_checkpoint

    return resolve_checkpoint(checkpoint) / WORLD_MODEL_DIR


# ---------------------------------------------------------------------------------------------
# The CLI
# ---------------------------------------------------------------------------------------------
@dataclass
class ImagineConfig:
    """Settings of one imagination run (saved in ``metrics.json``)."""

    checkpoint: str
    """Run directory of ``python -m agents.training`` (its newest checkpoint) or a checkpoint
    directory; the world model lives in ``<checkpoint>/world_model``. (required)"""
    data: str | None = None
    """Dataset directory: the world model trains on the agent's training episodes and clips come
    from its validation episodes (the trainer's split). Give --data or --env."""
    env: str | None = None
    """Environment to play live (``crafter``, ...): clips come from --episodes episodes."""
    policy: str = "random"
    """Policy playing --env (``random``, ``crafter-scripted``, ``sb3:<zip>``, ...)."""
    steps: int = 16
    """K: frames imagined after each clip's context."""
    out: Path = Path("runs/imagine")
    """Output directory (metrics.json, imagination.mp4, contact_sheet.png)."""
    context: int = 8
    """Real frames narrated before imagination starts."""
    clips: int = 16
    """Clips evaluated (non-overlapping, spread over the episodes)."""
    episodes: int = 4
    """Episodes played with --env."""
    samples: int = 4
    """Sampled rollouts per clip for the best-of-k metrics (0: none)."""
    temperature: float = 1.0
    """Temperature of the sampled rollouts."""
    tolerance: int = 2
    """Timing tolerance (frames) of the whole-clip event F1."""
    train_steps: int = 0
    """> 0: (re)train the world model for this many steps on --data first (overrides
    --world-model.steps); 0: use the saved one."""
    max_train_episodes: int | None = None
    """Train the world model on at most this many training episodes (None: all)."""
    compare_conditions: bool = False
    """Also train world models reading the action only and nothing (language ablation) with the
    same settings, and evaluate them on the same clips (needs --data and --train-steps)."""
    seeds: int = 1
    """World-model seeds per condition; with > 1 the condition ablation (--compare-conditions)
    is reported as paired differences with intervals over seeds and clips."""
    prompts: int = 0
    """Prompted imagination ("words that steer pictures", :mod:`agents.imagine.steering`): the N most
    frequent training annotation sentences, each teacher-forced into every clip's last context
    slot (0: none; needs --data)."""
    compare_decoding: bool = False
    """Measure the decoding schemes (quality per CPU second) on 1-step predictions."""
    world_model: WorldModelConfig = field(default_factory=WorldModelConfig)
    """World-model settings (used when training)."""
    video_clips: int = 4
    """Clips shown in the video and contact sheet."""
    fps: float = 4.0
    """Video frames per second."""
    scale: int = 4
    """Upscaling of the video frames."""
    video: bool = True
    """Write imagination.mp4 (``--no-video`` to skip)."""
    seed: int = 0
    """Seed of the env resets, the policy and the sampling."""
    threads: int = 0
    """torch CPU threads (0 = the cores this process may use, ``os.sched_getaffinity``)."""

    def __post_init__(self) -> None:
        if (self.data is None) == (self.env is None):
            raise WorldModelError("Give exactly one of --data DIR (a dataset) or --env ENV "
                                  "(play live).")
        for name in ("steps", "context", "clips", "episodes", "video_clips", "scale"):
            if getattr(self, name) < 1:
                raise WorldModelError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}.")
        if self.seeds < 1:
            raise WorldModelError(f"--seeds must be >= 1, got {self.seeds}.")
        if self.prompts and self.data is None:
            raise WorldModelError("--prompts reads its sentences from the training episodes: "
                                  "pass --data DIR.")
        if self.seeds > 1 and not self.train_steps:
            raise WorldModelError("--seeds trains world models: pass --train-steps N too.")
        for name in ("samples", "train_steps", "tolerance", "prompts"):
            if getattr(self, name) < 0:
                raise WorldModelError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}.")
        if self.temperature <= 0 or self.fps <= 0:
            raise WorldModelError("--temperature and --fps must be > 0.")
        if (self.train_steps or self.compare_conditions) and self.data is None:
            raise WorldModelError("Training the world model (--train-steps, --compare-conditions)"
                                  " needs --data DIR.")
        if self.compare_conditions and not self.train_steps:
            raise WorldModelError("--compare-conditions trains the ablation models: pass "
                                  "--train-steps N too.")
        self.out = Path(self.out)


def play_episodes(cfg: ImagineConfig) -> tuple[list[tuple[np.ndarray, np.ndarray]], int]:
    """Play ``cfg.episodes`` episodes of ``cfg.env`` with ``cfg.policy`` (context + steps frames
    per clip, enough for ``cfg.clips`` clips in all)."""
    import byog_env
    from collect.policies import make_policy

    env = byog_env.make(cfg.env)
    n_actions = _discrete_actions(env.action_space)
    policy = make_policy(cfg.policy, env, seed=cfg.seed)
    per_ep = -(-cfg.clips // cfg.episodes) * (cfg.context + cfg.steps)
    episodes = []
    try:
        for ep in range(cfg.episodes):
            obs, info = env.reset(seed=cfg.seed + ep)
            policy.reset(obs, info)
            frames, actions = [np.asarray(obs)], []
            for _ in range(per_ep - 1):
                a = int(policy.act(obs, info))
                obs, _, term, trunc, info = env.step(a)
                actions.append(a)
                frames.append(np.asarray(obs))
                if term or trunc:
                    break
            episodes.append((np.stack(frames), np.array(actions + [-1], np.int64)))
    finally:
        env.close()
    return episodes, n_actions


def fit_world_models(agent: Any, wcfg: WorldModelConfig,
                     train_eps: list[tuple[np.ndarray, np.ndarray]], n_actions: int,
                     conditions: list[str], printer: Any = print, progress: bool = False,
                     seeds: int = 1) -> tuple[dict[str, WorldModel], dict[str, Any]]:
    """Stage 2 on a frozen agent: frame tokens (the agent's VQ-VAE, or fitted on the training
    frames), BYOG states read by narrating the training episodes, then one world model per
    condition and seed (same data, same settings); returns the models and the costs.

    The model of ``wcfg.seed`` is keyed by its condition, those of the ``seeds - 1`` following
    seeds by :func:`model_key` (``"action@seed1"``)."""
    frames = [f for f, _ in train_eps]
    costs: dict[str, Any] = {"train_episodes": len(train_eps),
                             "train_frames": int(sum(len(f) for f in frames))}
    t0 = time.perf_counter()
    tokens, info = frame_tokens_for(agent, np.concatenate(frames), wcfg, progress=progress)
    costs.update(info, tokens_wall_s=time.perf_counter() - t0)
    printer(f"frame tokens: {tokens.name}, grid {tokens.grid}, {tokens.vocab} ids "
            f"({costs['tokens_wall_s']:.1f} s)")
    states = None
    if any(CONDITIONS[c].state for c in conditions):
        c0 = time.process_time()
        states, _ = narrator_states(agent, frames, window=wcfg.window_for(agent))
        costs["states_cpu_s"] = time.process_time() - c0
    data = build_transitions(tokens, frames, [a for _, a in train_eps], states)
    costs.update(data.info)
    state_dim = int(states[0].shape[-1]) if states is not None else 0
    models = {}
    for seed, cond in itertools.product(range(wcfg.seed, wcfg.seed + seeds), conditions):
        key = model_key(cond, seed - wcfg.seed)
        wm = WorldModel(replace(wcfg, condition=cond, seed=seed), tokens, n_actions=n_actions,
                        state_dim=state_dim)
        printer(f"training the world model ({key}) for {wcfg.steps} steps on "
                f"{len(data.pairs)} transitions")
        res = train_world_model(wm, data, log_every=max(1, wcfg.steps // 5), printer=printer)
        costs[f"train/{key}"] = {"cpu_s": res["cpu_s"], "wall_s": res["wall_s"],
                                 **{f"final_{k.split('/')[-1]}": float(np.mean(v[-50:]))
                                    for k, v in res["history"].items()}}
        models[key] = wm.eval()
    return models, costs


def decoding_inputs(agent: Any, wm: WorldModel, episodes: list[tuple[np.ndarray, np.ndarray]],
                    max_pairs: int = 64) -> tuple[torch.Tensor, ...]:
    """1-step prediction inputs from real episodes: codes_t, codes_t+1, frames_t+1, states_t,
    actions_t (at most ``max_pairs``, spread evenly)."""
    frames = [f for f, _ in episodes]
    states = narrator_states(agent, frames, window=wm.cfg.window_for(agent))[0] \
        if wm.cfg.conditioning.state else None
    data = build_transitions(wm.tokens, frames, [a for _, a in episodes], states)
    pick = data.pairs[torch.linspace(0, len(data.pairs) - 1, min(max_pairs, len(data.pairs))).long()]
    allf = torch.as_tensor(np.concatenate(frames))
    return (data.codes[pick], data.codes[pick + 1], allf[pick + 1],
            None if data.states is None else data.states[pick], data.actions[pick])


def main(cfg: ImagineConfig) -> dict[str, Any]:
    """Train (optionally) and evaluate the world model; write the outputs; return the metrics."""
    from agents.training.loading import load_agent

    if cfg.threads:  # the CLI resolves 0 to the cores this process may use
        from byog_env.threads import set_threads

        set_threads(cfg.threads, import_torch=True)
    wall0 = time.perf_counter()
    agent = load_agent(cfg.checkpoint)
    wm_path = world_model_dir(cfg.checkpoint)
    train_eps: list = []
    if cfg.data is not None:
        train_eps, eval_eps, n_actions = dataset_episodes(agent, cfg.data,
                                                          max_train=cfg.max_train_episodes)
    else:
        eval_eps, n_actions = play_episodes(cfg)
    wm, models, costs = _world_models(cfg, agent, wm_path, train_eps, n_actions)
    attach_world_model(agent, wm)
    clips = make_clips(eval_eps, context=cfg.context, horizon=cfg.steps, max_clips=cfg.clips)
    cfg.out.mkdir(parents=True, exist_ok=True)
    results, scores, rollouts = _evaluate_models(cfg, agent, wm, models, clips)
    out: dict[str, Any] = {
        "config": _jsonable(asdict(cfg)), "world_model": str(wm_path),
        "metrics": results[wm.cfg.condition], "costs": costs,
    }
    if len(results) > 1:
        out["language_ablation"] = results
    out.update(_studies(cfg, agent, wm, models, scores, clips, eval_eps))
    if cfg.compare_decoding:
        out["decoding"] = compare_decoding(wm, *decoding_inputs(agent, wm, eval_eps))
    written = write_outputs(cfg.out, rollouts, clips=cfg.video_clips, fps=cfg.fps,
                            scale=cfg.scale, video=cfg.video)
    out["wall_s"] = time.perf_counter() - wall0
    out["files"] = written
    (cfg.out / METRICS).write_text(json.dumps(_jsonable(out), indent=2))
    text = report(out)
    (cfg.out / REPORT).write_text(text)
    print(text)
    print(f"wrote {', '.join(str(cfg.out / f) for f in [METRICS, REPORT, *written])} "
          f"in {out['wall_s']:.1f} s")
    return out


def _world_models(cfg: ImagineConfig, agent: Any, wm_path: Path, train_eps: list, n_actions: int
                  ) -> tuple[WorldModel, dict[str, WorldModel], dict[str, Any]]:
    """The world model to evaluate (trained and saved with ``--train-steps``, else loaded), every
    model of the run by condition key (the language ablation's, the extra seeds') and the
    training costs."""
    if not cfg.train_steps:
        wm = WorldModel.load(wm_path)
        if wm.n_actions != n_actions:
            raise WorldModelError(f"The world model at {wm_path} has {wm.n_actions} actions, this "
                                  f"data has {n_actions}; retrain it with --train-steps N.")
        return wm, {wm.cfg.condition: wm}, {}
    from agents.imagine.grid_tokens import with_family_tile_size

    env_name = cfg.env or _dataset_env(cfg.data)
    cfg.world_model = with_family_tile_size(cfg.world_model, env_name)
    conds = [cfg.world_model.condition]
    if cfg.compare_conditions:
        conds += [c for c in ("state+action", "action", "none") if c not in conds]
    wcfg = replace(cfg.world_model, steps=cfg.train_steps)
    models, costs = fit_world_models(agent, wcfg, train_eps, n_actions, conds, progress=True,
                                     seeds=cfg.seeds)
    wm = models[cfg.world_model.condition]
    wm.save(wm_path, trained_on=str(cfg.data), costs=costs)  # the ablation models are not kept
    return wm, models, costs


def _evaluate_models(cfg: ImagineConfig, agent: Any, wm: WorldModel,
                     models: dict[str, WorldModel], clips: Clips) -> tuple[dict, dict, Any]:
    """Every model on the clips: metrics of each condition's first seed, every model's per-clip
    scores (the seed intervals), and the evaluated model's rollouts (for the video)."""
    results: dict[str, Any] = {}
    scores: dict[str, Any] = {}
    rollouts = None
    for key, m in models.items():
        first_seed = "@" not in key  # later seeds: PSNR for the intervals only
        metrics, r = evaluate(agent, m, clips, samples=cfg.samples if m is wm else 0,
                              temperature=cfg.temperature, tolerance=cfg.tolerance,
                              seed=cfg.seed, narration=first_seed)
        if first_seed:
            results[key] = metrics
        scores[key] = r["scores"]
        if m is wm:
            rollouts = r
    return results, scores, rollouts


def _studies(cfg: ImagineConfig, agent: Any, wm: WorldModel, models: dict[str, WorldModel],
             scores: dict[str, Any], clips: Clips, eval_eps: list) -> dict[str, Any]:
    """Tokenizer day/night report, clip day/night split, seed ablation and steering
    (:mod:`agents.imagine.study`), whichever the run asks for."""
    import byog_env
    from agents.imagine import study as S

    env = cfg.env or _dataset_env(cfg.data)
    try:
        fam = byog_env.family(env) if env else None
    except byog_env.UnknownEnvError:
        fam = None
    daylight = (fam.daylight_at if fam is not None and fam.daylight else None)
    hs = tuple(h for h in (1, 4, 16) if h <= cfg.steps)
    c0 = time.process_time()
    out: dict[str, Any] = {
        "tokenizer": S.tokenizer_report(wm.tokens, eval_eps, daylight),
        "day_night": S.day_night(scores[model_key(wm.cfg.condition, 0)], clips.start,
                                 cfg.context, daylight, hs)}
    if cfg.compare_conditions:
        out["ablation"] = S.ablation(scores, cfg.seeds, hs)
    if cfg.prompts:
        if "state+action" not in models:
            raise WorldModelError("--prompts steers through the narrator's state: train a "
                                  "state+action world model (the default condition).")
        prompts = training_prompts(agent, cfg.data, cfg.prompts, cfg.max_train_episodes)
        out["steering"] = S.steering_study(agent, models, cfg.seeds, clips, prompts,
                                           steps=max(1, min(cfg.steps, cfg.tolerance)),
                                           tolerance=cfg.tolerance)
    out["studies_cpu_s"] = time.process_time() - c0
    return out


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, Path):
        return str(x)
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x


def cli(argv: list[str] | None = None) -> int:
    """Command-line entry point, under the agents CLIs' exit-code policy (:mod:`byog_core.cli`):
    bad input prints one ``error:`` line (exit 2), a failure while running exits 1, Ctrl-C 130."""
    import tyro

    from byog_core.cli import run_cli
    from byog_env.threads import resolve_threads

    def body() -> int:
        cfg = tyro.cli(ImagineConfig, args=argv, description=__doc__.split("\n")[0])
        cfg.threads = resolve_threads(cfg.threads)  # 0: the cores this process may use
        main(cfg)
        return 0

    try:
        return run_cli(body, on_interrupt="interrupted; outputs already written are kept.")
    except SystemExit as exit_:  # tyro's --help / its own usage errors
        return int(exit_.code or 0)


if __name__ == "__main__":
    sys.exit(cli())
