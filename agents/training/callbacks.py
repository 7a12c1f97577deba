"""The training loop's callbacks (like Stable-Baselines3's): logging, validation, checkpoints.

The loop (:func:`agents.training.loop.run_loop`) only steps the optimizer; everything done
"every N steps" or "at the end" is a :class:`Callback` reading the shared :class:`TrainState`.
Adding one (e.g. an early stop, a custom probe) is a new class passed to ``run_loop``; the loop
is not edited.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from agents.training import checkpoint as C
from agents.training.config import TrainConfig, config_to_dict
from agents.training.data import DataBundle, validation_batches
from agents.training.distributed import DistInfo
from agents.training.evaluate import format_examples, validate
from agents.training.logs import MetricLog


@dataclass
class TrainState:
    """Everything the loop and its callbacks share (was 13 positional parameters)."""

    cfg: TrainConfig
    info: DistInfo
    run: Path
    agent: Any
    data: DataBundle
    identity: dict[str, Any]
    """The dataset identity recorded with checkpoints and the summary."""
    opt: torch.optim.Optimizer
    sched: Any
    log: MetricLog
    obs: Any = None
    """The fitted observation encoder saved with checkpoints (None: built with the agent)."""
    step: int = 0
    start_step: int = 0
    elapsed: float = 0.0
    """Training seconds of earlier segments of a resumed run."""
    waited: float = 0.0
    """Seconds this segment spent waiting for data."""
    busy: float = 0.0
    """Seconds this segment spent in training steps."""
    t_start: float = field(default_factory=time.perf_counter)
    per_epoch: int = 1
    """Optimizer steps per epoch of the first sampler (recorded with checkpoints)."""
    windows_per_step: int = 0
    """Windows one optimizer step reads, every stream and rank (0: ``loader.batch_size``)."""
    results: dict[str, Any] = field(default_factory=dict)
    """What callbacks hand the loop's summary: ``final`` (the last validation's metrics),
    ``checkpoint`` (the newest checkpoint written), or a plugin's own keys."""

    @property
    def frames_per_s(self) -> float:
        """Training frames per second of this segment (waiting for data included)."""
        per_step = self.windows_per_step or self.cfg.loader.batch_size
        frames = per_step * self.cfg.loader.window * (self.step - self.start_step)
        return frames / max(self.waited + self.busy, 1e-9)

    @property
    def data_wait_frac(self) -> float:
        return self.waited / max(self.waited + self.busy, 1e-9)


class Callback:
    """Hooks the loop calls (Stable-Baselines3's ``BaseCallback`` shape); override what you need.
    The loop never asks which callback is which: results go to ``t.results``."""

    def on_step(self, t: TrainState, loss: float, metrics: dict[str, float]) -> bool | None:
        """After optimizer step ``t.step`` (already counted); return False to stop training
        (an early stop: the loop ends as after its last step). Under DDP every rank must return
        the same answer (decide on reduced values), or the ranks part at the next collective."""

    def on_interrupt(self, t: TrainState) -> None:
        """Ctrl-C asked the loop to stop at this step boundary (before it raises)."""

    def on_end(self, t: TrainState) -> None:
        """After the last step (not on an interrupt)."""


class LogCallback(Callback):
    """Every ``logging.log_every`` steps: the step's metrics plus throughput and lr; a progress bar."""

    def __init__(self, t: TrainState) -> None:
        cfg = t.cfg
        self.bar = tqdm(total=cfg.steps, initial=t.step, desc="train", dynamic_ncols=True,
                        disable=not (t.info.is_main and cfg.logging.progress))

    def on_step(self, t: TrainState, loss: float, metrics: dict[str, float]) -> None:
        if t.step % t.cfg.logging.log_every == 0 or t.step == t.cfg.steps:
            metrics.update({"perf/frames_per_s": t.frames_per_s,
                            "perf/data_wait_frac": t.data_wait_frac,
                            "optim/lr": t.sched.get_last_lr()[0]})
            t.log.log(t.step, metrics)
            self.bar.set_postfix(loss=f"{loss:.3f}")
        self.bar.update(1)

    def on_end(self, t: TrainState) -> None:
        self.bar.close()


class EvalCallback(Callback):
    """Validation every ``logging.eval_every`` steps and at the end (``final`` holds it)."""

    def __init__(self, t: TrainState) -> None:
        info, cfg = t.info, t.cfg
        self.vals = validation_batches(t.data.val, cfg.logging.val_windows,
                                       cfg.logging.val_batches) if info.is_main else []
        self.final: dict[str, float] = {}

    def evaluate(self, t: TrainState, final: bool = False) -> dict[str, float]:
        if not self.vals:
            return {}
        cfg = t.cfg
        metrics, preds = validate(t.agent, self.vals, step=t.step, tolerance=cfg.logging.tolerance,
                                  device=t.info.device)
        t.log.log(t.step, metrics)
        if cfg.logging.examples:
            nan = float("nan")
            head = "final validation" if final else f"validation at step {t.step}"
            tqdm.write(f"{head}: token acc {metrics.get('val/token_accuracy', nan):.3f} "
                       f"(majority {metrics.get('val/majority_token_accuracy', nan):.3f}), "
                       f"event F1 {metrics.get('val/event_f1', nan):.3f}\n"
                       + format_examples(t.agent, self.vals, preds, windows=cfg.logging.examples,
                                         lines=cfg.logging.example_lines))
        return metrics

    def on_step(self, t: TrainState, loss: float, metrics: dict[str, float]) -> None:
        every = t.cfg.logging.eval_every
        if every and t.step % every == 0 and t.step < t.cfg.steps:
            self.evaluate(t)

    def on_end(self, t: TrainState) -> None:
        self.final = t.results["final"] = self.evaluate(t, final=True)


class CheckpointCallback(Callback):
    """A checkpoint every ``checkpoint.every`` steps and at the end (``last`` is the newest)."""

    def __init__(self, t: TrainState) -> None:
        data = t.data
        self.meta = {"config": config_to_dict(t.cfg), "dataset": t.identity,
                     "episodes": {"train": data.train_ids, "val": data.val_ids,
                                  "labelled": data.labelled_ids}}
        self.last: Path | None = None

    def save(self, t: TrainState) -> Path | None:
        """Write a checkpoint at ``t.step`` (rank 0; every rank's RNG state is gathered)."""
        rngs = [C.rng_state()]
        if t.info.active:
            import torch.distributed as dist

            gathered: list[Any] = [None] * t.info.world
            dist.all_gather_object(gathered, rngs[0])
            rngs = gathered
        if not t.info.is_main:
            return None
        state = {"optimizer": t.opt.state_dict(), "scheduler": t.sched.state_dict(), "rng": rngs,
                 "sampler": {"epoch": t.step // t.per_epoch, "batch": t.step % t.per_epoch},
                 "elapsed": t.elapsed + (time.perf_counter() - t.t_start)}
        self.last = t.results["checkpoint"] = C.save_checkpoint(
            t.run, t.step, agent=t.agent, trainer_state=state, meta=self.meta, obs_encoder=t.obs,
            keep_last=t.cfg.checkpoint.keep_last)
        return self.last

    def on_step(self, t: TrainState, loss: float, metrics: dict[str, float]) -> None:
        every = t.cfg.checkpoint.every
        if every and t.step % every == 0 and t.step < t.cfg.steps:
            self.save(t)

    def on_interrupt(self, t: TrainState) -> None:
        self.save(t)

    def on_end(self, t: TrainState) -> None:
        self.save(t)


__all__ = ["Callback", "CheckpointCallback", "EvalCallback", "LogCallback", "TrainState"]
