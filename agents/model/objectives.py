"""Predictor objectives: how the predictor is trained to forecast the target encoder's tokens.

Each objective is a function ``fn(inp: ObjectiveInputs) -> ObjectiveOutput`` registered by
name in :data:`OBJECTIVES` (``PredictorConfig.mode`` names it); ``BYOGAgent`` looks the name up
and never asks "which mode?". Built in:

* ``prefix``: the predictor reads the encoder states of the frames before a sampled cut
  (masked input, see :class:`agents.model.predictor.Predictor`) and predicts the tokens after it.
* ``parallel``: from the state at each index i alone it predicts the next ``horizon`` tokens,
  all indices folded into one batch.
* ``latent``: the prefix mode's input, but the predictor regresses the EMA target encoder's
  hidden states after the cut (BYOL's cosine loss; VL-JEPA, LLM-JEPA) instead of its tokens.
  It sets ``needs_target_hidden``, so the model computes those states (no gradient).

Adding one is one new module that calls :func:`register_objective` when imported, plus its
test; name it in configs as ``"your.module:name"`` so a fresh process (a reloaded checkpoint)
imports it (see ``docs/architecture.md``).

An objective returns the loss and its float metrics, plus the per-sequence NLL that the
optional REINFORCE term reads as its reward, as explicit tensors (never inside the metrics).
Its metrics carry ``byog/ce`` (hard CE, for monitoring), ``monitor/unigram_nll`` (the
context-free baseline on the same targets) and ``monitor/prefix_gain`` (how much worse the
predictor does with its encoder conditioning zeroed).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import torch

from agents.config import OBJECTIVES
from agents.model import losses as L
from agents.model import monitors as M

if TYPE_CHECKING:
    from agents.config import ModelConfig
    from agents.model.predictor import Predictor


@dataclass
class ObjectiveInputs:
    """What an objective reads: the predictor, the encoder's features and the sampled targets."""

    predictor: Predictor
    x: torch.Tensor
    """float [B, L, Dx] encoder features the predictor reads (L = T * k)."""
    targets: torch.Tensor
    """Long [B, L] the target encoder's sampled token ids."""
    valid: torch.Tensor
    """bool [B, T] valid frames."""
    k: int
    """Tokens per frame."""
    cfg: ModelConfig
    """The model config (``predictor`` and ``loss`` sections)."""
    step: int
    """Training step (part of the per-window RNG key of the cuts)."""
    episode_index: torch.Tensor
    """Long [B] episode of each window (RNG key)."""
    start: torch.Tensor
    """Long [B] first frame of each window (RNG key)."""
    soft_logits: torch.Tensor | None = None
    """float [B, L, V] the target's logits for soft targets; None = hard targets."""
    nil_id: int | None = None
    """The ``<nil>`` id, for the loss's ``byog_nil_weight`` (None: no nil weighting)."""
    target_hidden: torch.Tensor | None = None
    """float [B, L, D] the target encoder's hidden states on ``targets`` (no gradient), for
    objectives that set ``needs_target_hidden``; None otherwise."""

    def weights(self) -> torch.Tensor | None:
        """float [B, L] per-position loss weights (``loss.byog_nil_weight`` and
        ``loss.byog_later_slots_weight``); None when both are 1 (unweighted)."""
        lc = self.cfg.loss
        if lc.byog_nil_weight == 1.0 and lc.byog_later_slots_weight == 1.0:
            return None
        return L.byog_target_weights(self.targets, self.k, nil_id=-1 if self.nil_id is None
                                     else self.nil_id, nil_weight=lc.byog_nil_weight,
                                     later_slots_weight=lc.byog_later_slots_weight)


class ObjectiveOutput(NamedTuple):
    """``(loss, metrics)`` first, then the tensors the REINFORCE term reads."""

    loss: torch.Tensor
    """Scalar predictor loss (attached to the graph)."""
    metrics: dict[str, float]
    """Float metrics (``byog/*``, ``monitor/unigram_nll``, ``monitor/prefix_gain``)."""
    per_seq_nll: torch.Tensor
    """float [B] hard-target NLL per sequence (no gradient): the REINFORCE reward is its negative."""
    has_target: torch.Tensor
    """bool [B] sequences with any counted target position."""
    credit: torch.Tensor | None = None
    """bool [B, L] the tokens REINFORCE credits: those the predictor read (the prefix), not the
    future it predicted. None (a plugin objective): every valid position."""


Objective = Callable[[ObjectiveInputs], ObjectiveOutput]


def register_objective(name: str, fn: Objective | str | None = None, *, overwrite: bool = False):
    """Register a predictor objective under ``name`` (also usable as a decorator)."""
    return OBJECTIVES.register(name, fn, overwrite=overwrite)


def get_objective(name: str) -> Objective:
    """The objective ``name`` (or ``"module:name"``) names; ModelError listing the known ones."""
    return OBJECTIVES[name]


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> float:
    return float((x * mask).sum() / mask.sum()) if bool(mask.any()) else float("nan")


def _monitors(ce: torch.Tensor, ce0: torch.Tensor, ce_shuf: torch.Tensor, first: torch.Tensor,
              mask: torch.Tensor, targets: torch.Tensor, vocab: int) -> dict[str, float]:
    """Predictor NLL vs the unigram baseline, per token over the counted positions ``mask``,
    and the prefix gains on each future frame's first slot position ``first``.

    The baseline is the plug-in entropy of the counted targets' own unigram distribution (no
    smoothing: +1 smoothing over a 50k vocabulary from one batch reads 3 nats for a constant
    stream, which any predictor "beats"); it is optimistic, a floor for a context-free
    predictor. ``prefix_gain``: CE with the encoder conditioning zeroed minus CE with it;
    ``prefix_gain_shuffled``: with another window's conditioning (rolled across the batch),
    a control that, unlike a zeroed prefix, has the statistics the predictor trained on.
    """
    with_prefix = _masked_mean(ce, first)
    return {"monitor/prefix_gain": M.prefix_gain(_masked_mean(ce0, first), with_prefix),
            "monitor/prefix_gain_shuffled": M.prefix_gain(_masked_mean(ce_shuf, first), with_prefix),
            "monitor/predictor_nll": _masked_mean(ce, mask),
            "monitor/unigram_nll": M.unigram_nll(targets[mask], None, vocab, smoothing=0.0)}


def prefix_objective(inp: ObjectiveInputs) -> ObjectiveOutput:
    """Prefix mode: states of frames before a per-window cut in, the tokens after it out."""
    pred, x, y, valid, k = inp.predictor, inp.x, inp.targets, inp.valid, inp.k
    T = valid.shape[1]
    cuts = L.sample_cuts(valid.sum(1), seed=inp.cfg.loss.seed, episode_index=inp.episode_index,
                         start=inp.start, step=inp.step)  # [B]
    m, tmask = L.prefix_masks(cuts, valid, k)  # [B, L] seen, counted
    logits = pred.forward_prefix(x, y, m)  # [B, L, V]
    loss, metrics = L.prefix_loss(logits, y, tmask, target_logits=inp.soft_logits,
                                  tau=inp.cfg.loss.tau, weights=inp.weights())
    with torch.no_grad():
        ce = L.token_ce(logits, y)  # [B, L]
        per_seq = (ce * tmask).sum(1) / tmask.sum(1).clamp_min(1)
        first = tmask & (torch.arange(T * k, device=y.device) % k == 0)[None]
        ce0 = L.token_ce(pred.forward_prefix(x, y, torch.zeros_like(m)), y)
        ce_shuf = L.token_ce(pred.forward_prefix(x.roll(1, 0), y, m), y)
        metrics.update(_monitors(ce, ce0, ce_shuf, first, tmask, y, logits.shape[-1]))
    metrics["byog/mean_cut"] = float(cuts.float().mean())
    credit = m & L.frame_mask(valid, k) & tmask.any(1, keepdim=True)  # the prefix read
    return ObjectiveOutput(loss, metrics, per_seq, tmask.any(1), credit)


def parallel_objective(inp: ObjectiveInputs) -> ObjectiveOutput:
    """Parallel mode: from the state at each index i, the next ``horizon`` tokens."""
    pred, x, y, valid, k = inp.predictor, inp.x, inp.targets, inp.valid, inp.k
    B, T = valid.shape
    K = inp.cfg.predictor.horizon
    idx = L.parallel_indices(valid, k, inp.cfg.predictor.index)  # [N]
    inputs, targets, pmask = L.parallel_windows(y, L.frame_mask(valid, k), idx, K)  # [B, N, K]
    N = idx.shape[0]
    x_i = x[:, idx].reshape(B * N, -1)
    logits = pred.forward_parallel(x_i, inputs.reshape(B * N, K)).view(B, N, K, -1)
    tgt_pos = (idx[:, None] + 1 + torch.arange(K, device=idx.device)).clamp_max(T * k - 1)  # [N, K]
    soft = None if inp.soft_logits is None else inp.soft_logits[:, tgt_pos]  # [B, N, K, V]
    w = inp.weights()
    loss, metrics = L.parallel_loss(logits, targets, pmask, target_logits=soft, tau=inp.cfg.loss.tau,
                                    weights=None if w is None else w[:, tgt_pos])
    with torch.no_grad():
        ce = L.token_ce(logits, targets)  # [B, N, K]
        per_seq = (ce * pmask).sum((1, 2)) / pmask.sum((1, 2)).clamp_min(1)
        first = pmask.clone()  # j = 0 of indices that end a frame: the next frame's first token
        first[..., 1:] = False
        first &= ((idx + 1) % k == 0)[None, :, None]
        ce0 = L.token_ce(pred.forward_parallel(x_i, inputs.reshape(B * N, K), 0.0)
                         .view(B, N, K, -1), targets)
        x_shuf = x.roll(1, 0)[:, idx].reshape(B * N, -1)  # another window's state at each index
        ce_shuf = L.token_ce(pred.forward_parallel(x_shuf, inputs.reshape(B * N, K))
                             .view(B, N, K, -1), targets)
        metrics.update(_monitors(ce, ce0, ce_shuf, first, pmask, targets, logits.shape[-1]))
        # credit: every token up to the last index whose future counted (the states read)
        read = torch.zeros(B, T * k, dtype=torch.long, device=y.device)
        read[:, idx] = pmask.any(-1).long()  # [B, L] 1 at indices with a counted future
        credit = read.flip(1).cummax(1).values.flip(1).bool() & L.frame_mask(valid, k)
    return ObjectiveOutput(loss, metrics, per_seq, pmask.any((1, 2)), credit)


def latent_objective(inp: ObjectiveInputs) -> ObjectiveOutput:
    """Latent mode: states of frames before a per-window cut in, the target encoder's
    (normalised) hidden states after it out; the same cuts as the prefix mode."""
    pred, x, y, valid, k = inp.predictor, inp.x, inp.targets, inp.valid, inp.k
    if inp.target_hidden is None:
        raise ValueError("latent objective: ObjectiveInputs.target_hidden is None; the model "
                         "must compute the target's hidden states (needs_target_hidden).")
    cuts = L.sample_cuts(valid.sum(1), seed=inp.cfg.loss.seed, episode_index=inp.episode_index,
                         start=inp.start, step=inp.step)  # [B]
    m, tmask = L.prefix_masks(cuts, valid, k)  # [B, L] seen, counted
    target = inp.target_hidden.detach()
    guess = pred.forward_latent(x, y, m)  # [B, L, D]
    loss, metrics, per_seq = L.latent_loss(guess, target, tmask)
    with torch.no_grad():
        T = valid.shape[1]
        first = tmask & (torch.arange(T * k, device=y.device) % k == 0)[None]

        def dist(g: torch.Tensor) -> torch.Tensor:
            return 2.0 - 2.0 * torch.cosine_similarity(g, target, dim=-1)  # [B, L]

        with_p = dist(guess.detach())
        zero = dist(pred.forward_latent(x, y, torch.zeros_like(m)))
        shuf = dist(pred.forward_latent(x.roll(1, 0), y, m))
        on_first = _masked_mean(with_p, first)
        metrics["monitor/prefix_gain"] = M.prefix_gain(_masked_mean(zero, first), on_first)
        metrics["monitor/prefix_gain_shuffled"] = M.prefix_gain(_masked_mean(shuf, first), on_first)
        metrics["monitor/predictor_latent"] = _masked_mean(with_p, tmask)
    metrics["byog/mean_cut"] = float(cuts.float().mean())
    credit = m & L.frame_mask(valid, k) & tmask.any(1, keepdim=True)
    return ObjectiveOutput(loss, metrics, per_seq, tmask.any(1), credit)


latent_objective.needs_target_hidden = True  # type: ignore[attr-defined]
latent_objective.predictor_latent = True  # type: ignore[attr-defined]


__all__ = ["OBJECTIVES", "Objective", "ObjectiveInputs", "ObjectiveOutput", "get_objective",
           "latent_objective", "parallel_objective", "prefix_objective", "register_objective"]
