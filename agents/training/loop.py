"""``train(cfg)``: the training loop, built from the small factories of this package.

``train`` opens the run, builds data, obs encoder and agent (factories below and in
``data``/``checkpoint``), then :func:`run_loop` steps the optimizer and calls the callbacks of
:mod:`agents.training.callbacks` (log, validation, checkpoints) after each step and at the end.
"""
from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.errors import TrainDiverged
from agents.obs.base import with_pseudo_annotations
from agents.training import checkpoint as C
from agents.training.callbacks import (
    Callback,
    CheckpointCallback,
    EvalCallback,
    LogCallback,
    TrainState,
)
from agents.training.config import TrainConfig, TrainError, config_to_dict, save_yaml
from agents.training.data import (
    DataBundle,
    build_data,
    build_tokenizer,
    combine_batches,
    dataset_identity,
    train_streams,
)
from agents.training.distributed import (
    DistInfo,
    average_gradients,
    barrier,
    broadcast_module,
    init_distributed,
    mean_over_ranks,
    shutdown,
    weight_hashes,
)
from agents.training.evaluate import to_device
from agents.training.logs import MetricLog, plot_curves

SUMMARY = "summary.json"


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_optimizer(agent: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW over the trainable parameters; no weight decay on vectors and embeddings."""
    decay, no_decay = [], []
    for name, p in agent.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 or "embed" in name else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.optim.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.optim.lr, betas=(cfg.optim.beta1, cfg.optim.beta2))


def lr_factor(step: int, total: int, warmup: int, decay: str, min_ratio: float) -> float:
    """Learning-rate multiplier: linear warm-up, then cosine/linear decay to ``min_ratio``."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    if decay == "constant" or total <= warmup:
        return 1.0
    frac = min(1.0, (step - warmup) / max(1, total - warmup))
    shape = 0.5 * (1 + math.cos(math.pi * frac)) if decay == "cosine" else 1.0 - frac
    return min_ratio + (1.0 - min_ratio) * shape


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """The schedule of ``cfg.schedule`` over ``cfg.steps``."""
    s = cfg.schedule
    total = s.total_steps or cfg.steps
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: lr_factor(step, total, s.warmup_steps, s.decay, s.min_lr_ratio))


# comparing a resumed run's config with its checkpoint's: these may change between segments
_MAY_CHANGE = {"steps", "resume", "logging", "checkpoint", "threads", "device", "data", "out",
               "precision", "compile"}
_MAY_CHANGE_LOADER = {"num_workers", "prefetch_factor"}


def check_resume_config(cfg: TrainConfig, saved: dict[str, Any], where: Path) -> None:
    """A resumed run must have the checkpoint's config (except steps, logging, workers, ...)."""
    now = config_to_dict(cfg)
    diffs = []
    for key, value in saved.items():
        if key in _MAY_CHANGE:
            continue
        new = now.get(key)
        if key == "model" and isinstance(value, dict):  # saved before the obs registry: map on
            value = _saved_model_dict(value)
        if key == "loader":
            value = {k: v for k, v in value.items() if k not in _MAY_CHANGE_LOADER}
            new = {k: v for k, v in (new or {}).items() if k not in _MAY_CHANGE_LOADER}
        if json.dumps(value, sort_keys=True, default=str) != json.dumps(new, sort_keys=True, default=str):
            diffs.append(key)
    if diffs:
        raise TrainError(
            f"--resume: the config differs from checkpoint {where} in {diffs}; resume with the "
            "run's own config (it is read from RUNDIR/config.yaml unless you pass --config) or "
            "start a new run in another --out."
        )


def _saved_model_dict(d: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's model config as today's ``to_dict`` writes it (old flat obs names)."""
    from agents.config import ModelConfig

    try:
        return ModelConfig.from_saved(d).to_dict()
    except ValueError:
        return d  # unreadable: compared as saved, so the resume check names it


def prepare_obs_encoder(cfg: TrainConfig, data: DataBundle, ckpt: Path | None, run: Path,
                        info: DistInfo) -> Any:
    """Fit (rank 0) or load the obs encoder on training frames when it ``requires_fit``
    (vqvae, units); None for the others (built with the agent)."""
    from torch.utils.data import DataLoader

    from agents.obs import build_obs_encoder
    from collect.dataset import WindowDataset, collate_windows

    ocfg = cfg.model.obs
    if not ocfg.requires_fit:
        return None
    fitted = run / C.OBS
    if ckpt is not None and (ckpt / C.OBS).is_dir():
        return build_obs_encoder(ocfg, fitted_path=ckpt / C.OBS)
    if info.is_main and not (fitted / "config.json").is_file():
        enc = build_obs_encoder(ocfg)
        windows = WindowDataset(cfg.data, window=cfg.fit_window, episodes=data.train_ids,
                                columns=data.columns)
        # training episodes only, shuffled with a fixed seed, read lazily batch by batch
        frames = DataLoader(windows, batch_size=cfg.obs_fit.batch_size, shuffle=True,
                            collate_fn=collate_windows,
                            generator=torch.Generator().manual_seed(cfg.seed))
        # one call for every fitted encoder: each owns its budget (its config's fit_*), which
        # the old --obs_fit.vqvae_steps / units_max_frames flags still override when given
        budget = {k: v for k, v in (("steps", cfg.obs_fit.vqvae_steps),
                                    ("max_frames", cfg.obs_fit.units_max_frames)) if v is not None}
        enc.fit(frames, batch_size=cfg.obs_fit.batch_size, window=cfg.fit_window, seed=cfg.seed,
                progress=cfg.logging.progress, **budget)
        enc.save(fitted)
    barrier(info)
    return build_obs_encoder(ocfg, fitted_path=fitted)


def _open_run(cfg: TrainConfig, info: DistInfo) -> tuple[Path, Path | None, dict[str, Any]]:
    run = Path(cfg.out)
    if cfg.resume:
        ckpt = C.intact_checkpoint(run, resume=True)  # corrupt newer ones: warned about, left in place
        if ckpt is None:
            what = "only corrupt checkpoints" if C.list_checkpoints(run) else "no checkpoint"
            raise TrainError(f"--resume was given but {run} holds {what}; drop --resume "
                             "and choose another --out to start a new run.")
        meta = C.read_meta(ckpt)
        check_resume_config(cfg, meta.get("config", {}), ckpt)
        return run, ckpt, meta
    if C.list_checkpoints(run):
        raise TrainError(f"{run} already holds a training run; pass --resume to continue it or "
                         "choose another --out.")
    return run, None, {}


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Train an agent as ``cfg`` says; returns the summary (also written to RUNDIR/summary.json).

    Raises:
        TrainError: a bad dataset, run directory or checkpoint (the message names the fix).
    """
    from agents.model.agent import BYOGAgent
    from agents.model.text import load_tokenizer, vocab_hash

    cfg.check_paths()
    info = init_distributed(cfg.device)
    try:
        if cfg.threads:  # the CLI resolves 0 to the cores this process may use
            from byog_env.threads import set_threads

            set_threads(cfg.threads, import_torch=True)
        run, ckpt, meta = _open_run(cfg, info)
        seed_everything(cfg.seed)
        init = C.resolve_checkpoint(cfg.init_from) if cfg.init_from and ckpt is None else None
        source = ckpt or init  # a resumed run's tokenizer, or the run it starts from
        tok = load_tokenizer(source / C.AGENT / "tokenizer") if source else None
        col = cfg.model.obs.needs_column
        obs_cols = (col,) if col else ()
        pseudo = cfg.model.obs.pseudo_vocabulary()  # the obs encoder's pseudo-language, if any
        data = build_data(cfg.data, cfg.loader, label_fraction=cfg.label_fraction,
                          label_seed=cfg.label_seed, columns=obs_cols, tokenizer=tok,
                          labelled_only=cfg.model.loss.w_byog == 0 and not pseudo,
                          extra_sentences=pseudo)
        identity = dataset_identity(data.dataset, data.tokenizer)
        C.warn_unannotated(data.dataset, data.labelled_ids, data.val_ids)
        if source is not None:
            fresh = data.tokenizer if cfg.loader.tokenizer_path else \
                build_tokenizer(data.dataset, data.labelled_ids, cfg.loader, pseudo)
            C.check_compatible(meta.get("dataset", {}) if ckpt else C.read_meta(init).get("dataset", {}),
                               {**identity, "vocab_hash": vocab_hash(fresh), "vocab_size": len(fresh)},
                               where=str(source))
        if info.is_main:
            run.mkdir(parents=True, exist_ok=True)
            save_yaml(cfg, run / "config.yaml")
        obs = prepare_obs_encoder(cfg, data, ckpt, run, info)
        # the agent's config carries the window it trains on (saved with the weights)
        agent = BYOGAgent(replace(cfg.model, window=cfg.loader.window), data.tokenizer, obs_encoder=obs)
        if ckpt is not None:
            C.load_weights(agent, ckpt)  # strict: every tensor, same names, same shapes
        elif init is not None:
            C.load_init_weights(agent, init)  # the encoder at least; the target starts as it
        agent.to(info.device)
        broadcast_module(agent, info)
        if cfg.compile:
            from agents.model.accel import compile_agent

            compile_agent(agent)
        t = _make_state(cfg, info, run, agent, data, obs, identity, ckpt, meta)
        callbacks = [LogCallback(t), EvalCallback(t), CheckpointCallback(t)]
        with C.InterruptGuard() as guard:  # Ctrl-C: stop at a step boundary, save, exit 130
            return run_loop(t, callbacks, guard)
    finally:
        shutdown(info)


def _make_state(cfg: TrainConfig, info: DistInfo, run: Path, agent: Any, data: DataBundle,
                obs: Any, identity: dict[str, Any], ckpt: Path | None,
                meta: dict[str, Any]) -> TrainState:
    """The loop's state: optimizer and schedule (restored from ``ckpt`` when resuming), log."""
    opt = make_optimizer(agent, cfg)
    sched = make_scheduler(opt, cfg)
    step, elapsed = 0, 0.0
    if ckpt is not None:
        state = C.load_trainer_state(ckpt)
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        C.set_rng_state(state["rng"][min(info.rank, len(state["rng"]) - 1)])
        step, elapsed = int(meta["step"]), float(state.get("elapsed", 0.0))
    log = MetricLog(run, tensorboard=cfg.logging.tensorboard, enabled=info.is_main,
                    resume_step=step if ckpt is not None else None)
    return TrainState(cfg=cfg, info=info, run=run, agent=agent, data=data, identity=identity,
                      opt=opt, sched=sched, log=log, obs=obs, step=step, start_step=step,
                      elapsed=elapsed)


def run_loop(t: TrainState, callbacks: list[Callback], guard: C.InterruptGuard) -> dict[str, Any]:
    """Step the optimizer from ``t.step`` to ``cfg.steps``; the callbacks do the rest.

    Returns the summary (rank 0; written to RUNDIR/summary.json), or raises
    :class:`~agents.training.checkpoint.TrainInterrupted` after saving on Ctrl-C.
    """
    cfg, info, agent = t.cfg, t.info, t.agent
    params = [p for p in agent.parameters() if p.requires_grad]
    streams = make_streams(t)
    t.per_epoch = streams[0].per_epoch
    t.windows_per_step = sum(st.loader.batch_size for st in streams) * info.world
    t.t_start = time.perf_counter()
    stopping = False
    # resumable: every stream's position follows from the step count alone
    sources = [st.batches(t.step) for st in streams]
    while t.step < cfg.steps and not stopping:
        t0 = time.perf_counter()
        raw = combine_batches(streams, [next(src) for src in sources])
        t1 = time.perf_counter()
        loss, metrics = _train_step(agent, t.opt, t.sched, params, to_device(raw, info.device),
                                    t.step, cfg, info)
        metrics["data/labelled_windows_per_step"] = float(raw["true_labelled"] * info.world)
        t.step += 1
        t.waited, t.busy = t.waited + (t1 - t0), t.busy + (time.perf_counter() - t1)
        # every callback sees the step; any one returning False ends the run (an early stop)
        if False in [cb.on_step(t, loss, metrics) for cb in callbacks]:
            break
        stopping = guard.stop(info)
    if stopping:
        for cb in callbacks:
            cb.on_interrupt(t)
        raise C.TrainInterrupted(t.step, t.results.get("checkpoint"), cfg.out)
    train_time = time.perf_counter() - t.t_start
    for cb in callbacks:
        cb.on_end(t)
    final = t.results.get("final", {})
    hashes = weight_hashes(agent, info)
    summary = None
    if info.is_main:
        summary = RunSummary.of(t, final, t.elapsed + train_time, t.results.get("checkpoint"), hashes).to_dict()
        if cfg.logging.plots:
            summary["plots"] = [str(p) for p in plot_curves(t.log, t.run / "plots")]
        (t.run / SUMMARY).write_text(json.dumps(_finite(summary), indent=2))
        t.log.close()
    barrier(info)
    return summary or {}


def make_streams(t: TrainState) -> list[Any]:
    """The run's samplers (:func:`agents.training.data.train_streams`): a labelled batch for
    grounding, an unlabelled one for BYOG (or the obs encoder's pseudo-language), a
    pseudo-labelled one for the self-training captioner."""
    cfg = t.cfg
    return train_streams(t.data, cfg.loader, seed=cfg.seed, rank=t.info.rank, world=t.info.world,
                         ground=cfg.model.loss.w_ground > 0,
                         unlabelled=cfg.model.uses_predictor or bool(cfg.model.obs.pseudo_vocabulary()),
                         pseudo=cfg.pseudo_labels)


def encoder_grad_norms(agent: Any, terms: dict[str, torch.Tensor]) -> dict[str, float]:
    """The gradient norm each loss term puts on the narrating encoder's parameters
    (``grad/encoder_<term>``) and the BYOG/grounding ratio: separate backward passes through
    the same graph, so the logged figures do not depend on how the terms are summed."""
    params = [p for p in agent.encoder.parameters() if p.requires_grad]
    out: dict[str, float] = {}
    for name, term in terms.items():
        if not term.requires_grad:
            continue
        grads = torch.autograd.grad(term, params, retain_graph=True, allow_unused=True)
        sq = sum(float(g.pow(2).sum()) for g in grads if g is not None)
        out[f"grad/encoder_{name}"] = sq ** 0.5
    if "grad/encoder_ground" in out and "grad/encoder_byog" in out:
        out["grad/byog_over_ground"] = out["grad/encoder_byog"] / max(out["grad/encoder_ground"], 1e-12)
    return out


def clip_groups(agent: Any, params: list[torch.nn.Parameter], cfg: TrainConfig) -> dict[str, float]:
    """Separate clips of the encoder's and the predictor's gradients (``optim.grad_clip_encoder``
    / ``grad_clip_predictor``), then the global clip; returns the norms before each clip."""
    out: dict[str, float] = {}
    o = cfg.optim
    for name, module, limit in (("encoder", agent.encoder, o.grad_clip_encoder),
                                ("predictor", agent.predictor, o.grad_clip_predictor)):
        if limit and module is not None:
            group = [p for p in module.parameters() if p.requires_grad]
            out[f"optim/grad_norm_{name}"] = float(torch.nn.utils.clip_grad_norm_(group, limit))
    if o.grad_clip:
        out["optim/grad_norm"] = float(torch.nn.utils.clip_grad_norm_(params, o.grad_clip))
    return out


def _train_step(agent: Any, opt: torch.optim.Optimizer, sched: Any, params: list[torch.nn.Parameter],
                batch: dict[str, Any], step: int, cfg: TrainConfig, info: DistInfo,
                ) -> tuple[float, dict[str, float]]:
    """Forward, backward, gradient average over ranks, clip, optimizer and EMA steps."""
    agent.train()
    # unlabelled windows annotated in the obs encoder's pseudo-language (units' unit words)
    batch = with_pseudo_annotations(batch, agent.encoder.obs)
    from agents.model.accel import autocast

    with autocast(cfg.precision, info.device):  # bf16: matmuls/convs in bf16, weights fp32
        terms, metrics = agent.training_terms(batch, step=step)
        loss = sum(terms.values())
    metrics["loss/total"] = float(loss.detach())
    if not torch.isfinite(loss):
        raise TrainDiverged(f"The loss became {float(loss)} at step {step}; lower optim.lr or "
                         "check the data (run with --logging.log_every 1 to see the metrics).")
    if step % cfg.logging.log_every == cfg.logging.log_every - 1 and len(terms) > 1:
        metrics.update(encoder_grad_norms(agent, terms))  # logged at the next log step
    opt.zero_grad(set_to_none=True)
    loss.backward()
    average_gradients(params, info)
    metrics.update(clip_groups(agent, params, cfg))
    opt.step()
    sched.step()
    metrics["optim/target_ema"] = agent.update_target(step)  # annealed when configured
    shared = mean_over_ranks({k: metrics[k] for k in ("loss/total",) if k in metrics}, info)
    metrics.update(shared)
    return metrics["loss/total"], metrics


@dataclass
class RunSummary:
    """What ``summary.json`` holds (its keys are stable: scripts and studies read them)."""

    steps: int
    steps_this_run: int
    wall_clock_s: float
    frames_per_s: float
    data_wait_frac: float
    val_token_accuracy: float | None
    val_majority_token_accuracy: float | None
    val_accuracy_over_majority: float | None
    val_event_f1: float | None
    val_teacher_forced_token_accuracy: float | None
    val_prefix_gain: float | None
    train: dict[str, float | None]
    """The last logged value of the main training losses and monitors."""
    val: dict[str, float]
    """The final validation, every metric."""
    episodes: dict[str, int]
    windows: dict[str, int]
    params: int
    trainable_params: int
    world_size: int
    dataset: dict[str, Any]
    size: str
    preset: str
    checkpoint: str | None
    weight_hash: str
    ranks_identical: bool

    TRAIN_KEYS = ("loss/total", "loss/ground", "loss/byog", "monitor/prefix_gain",
                  "monitor/predictor_nll", "monitor/unigram_nll")

    @classmethod
    def of(cls, t: TrainState, final: dict[str, float], wall: float, last_ckpt: Path | None,
           hashes: list[str]) -> RunSummary:
        data, agent = t.data, t.agent
        return cls(
            steps=t.step, steps_this_run=t.step - t.start_step, wall_clock_s=wall,
            frames_per_s=t.frames_per_s, data_wait_frac=t.data_wait_frac,
            **{f"val_{k}": final.get(f"val/{k}") for k in (
                "token_accuracy", "majority_token_accuracy", "accuracy_over_majority",
                "event_f1", "teacher_forced_token_accuracy", "prefix_gain")},
            train={k: t.log.last(k) for k in cls.TRAIN_KEYS}, val=final,
            episodes={"train": len(data.train_ids), "val": len(data.val_ids),
                      "labelled": len(data.labelled_ids)},
            windows={"train": len(data.train), "val": len(data.val) if data.val else 0},
            params=sum(p.numel() for p in agent.parameters()),
            trainable_params=sum(p.numel() for p in agent.parameters() if p.requires_grad),
            world_size=t.info.world, dataset=t.identity, size=t.cfg.size, preset=t.cfg.preset,
            checkpoint=str(last_ckpt) if last_ckpt else None, weight_hash=hashes[0],
            ranks_identical=len(set(hashes)) == 1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _finite(obj: Any) -> Any:
    """NaN/inf -> None so summary.json is strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj
