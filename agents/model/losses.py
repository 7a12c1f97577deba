"""BYOG losses, cut sampling and the EMA update, as pure functions on tensors.

Every loss returns ``(loss, metrics)``: a scalar tensor (always finite and attached to the
graph, even when no position counts) and a dict of floats.
"""
from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F


def sample_cuts(n_valid: torch.Tensor, *, seed: int, episode_index: torch.Tensor,
                start: torch.Tensor, step: int) -> torch.Tensor:
    """Draw the prefix length c per sequence, uniform in [1, n_valid - 1] frames.

    Each sample has its own RNG seeded from ``(seed, episode_index, start, step)``, so a window
    gets the same cut whichever process or batch position it lands in.

    Args:
        n_valid: Long [B] valid frames per window.
        seed, episode_index (Long [B]), start (Long [B]), step: RNG key parts.

    Returns:
        Long [B] cuts; 0 where a window has fewer than 2 valid frames (no future to predict).
    """
    cuts = torch.zeros_like(n_valid)
    for b in range(n_valid.shape[0]):
        n = int(n_valid[b])
        if n >= 2:
            key = [int(seed), int(episode_index[b]), int(start[b]), int(step)]
            cuts[b] = int(np.random.default_rng([abs(v) for v in key]).integers(1, n))
    return cuts


def row_seed(seed: int, episode_index: int, start: int, step: int, stream: int = 1) -> int:
    """A 63-bit seed for one sample's RNG, from its key ``(seed, episode_index, start, step)``.

    ``stream`` separates independent uses of one key (target sampling uses stream 1, so its
    noise is independent of :func:`sample_cuts`' draw).
    """
    key = [abs(int(v)) for v in (seed, episode_index, start, step, stream)]
    return int(np.random.SeedSequence(key).generate_state(1, np.uint64)[0] >> np.uint64(1))


class RowNoise:
    """Per-sample Exp(1) noise for the exponential race of ``agents.model.lm.sample_tokens``.

    Row b draws from its own ``torch.Generator`` seeded with ``seeds[b]``, so a window's sampled
    tokens depend only on its own seed and the model, never on which batch, batch position or
    DDP rank it lands in. Noise is drawn in blocks of ``block`` positions per row (one generator
    call per row and block; the block depends only on the vocabulary size, so a row's noise
    stream is the same whatever the batch size): for a small vocabulary the whole window's
    noise is drawn at the first call.

    Args:
        seeds: one seed per row (see :func:`row_seed`).
        positions: token positions that will be sampled (the window's T*k).
        device: where the noise lives.
        max_block_elems: bound on one row's block (``block * V`` floats).
    """

    def __init__(self, seeds: list[int], positions: int, device: torch.device | str = "cpu",
                 max_block_elems: int = 1 << 20) -> None:
        self.gens = []
        for s in seeds:
            g = torch.Generator(device=device)
            g.manual_seed(int(s))
            self.gens.append(g)
        self.positions = positions
        self.max_block_elems = max_block_elems
        self.buf: torch.Tensor | None = None  # [B, block, V]
        self.i = 0

    def __call__(self, probs: torch.Tensor) -> torch.Tensor:
        """probs [B, V] -> Exp(1) noise [B, V] (the next position's, per row)."""
        B, V = probs.shape
        if B != len(self.gens):
            raise ValueError(f"RowNoise was built for {len(self.gens)} rows, got probs of {B} rows.")
        if self.buf is None or self.i == self.buf.shape[1]:
            block = max(1, min(self.positions, self.max_block_elems // V))
            self.buf = torch.empty(B, block, V, dtype=probs.dtype, device=probs.device)
            for b, g in enumerate(self.gens):
                self.buf[b].exponential_(1.0, generator=g)
            self.i = 0
        noise = self.buf[:, self.i]
        self.i += 1
        return noise


def frame_mask(frames_mask: torch.Tensor, k: int) -> torch.Tensor:
    """bool [B, T] per frame -> bool [B, T*k] per token position."""
    return frames_mask.repeat_interleave(k, dim=1)


def prefix_masks(cuts: torch.Tensor, valid: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Masks of the prefix mode.

    Args:
        cuts: Long [B] prefix lengths in frames (0 = no usable cut).
        valid: bool [B, T].
        k: tokens per frame.

    Returns:
        (m, target) bool [B, T*k]: m = positions of frames < c (the predictor sees the encoder
        state there); target = positions of valid frames >= c (the loss counts there).
    """
    T = valid.shape[1]
    t = torch.arange(T, device=valid.device)[None, :]
    seen = t < cuts[:, None]  # [B, T]
    future = valid & ~seen & (cuts[:, None] > 0)
    return frame_mask(seen, k), frame_mask(future, k)


def _per_sequence_mean(per_pos: torch.Tensor, mask: torch.Tensor,
                       weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """per_pos [B, L], mask bool [B, L] (weights [B, L]) -> (mean over sequences that count,
    count of them); a sequence's mean is weighted, and one whose counted weight is 0 drops out."""
    m = mask.to(per_pos.dtype)
    if weights is not None:
        m = m * weights
    n = m.sum(1)  # [B]
    has = n > 0
    seq = (per_pos * m).sum(1) / n.clamp_min(1.0 if weights is None else 1e-8)  # [B]
    count = has.sum()
    # multiply by 0 rather than return a constant, so an empty batch keeps the graph alive
    loss = (seq * has).sum() / count.clamp_min(1) if count > 0 else per_pos.sum() * 0.0
    return loss, count


def token_ce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """logits [..., V], targets Long [...] -> CE per position [...] (any target id allowed)."""
    V = logits.shape[-1]
    return F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1).clamp_min(0),
                           reduction="none").view(targets.shape)


def soft_kl(logits: torch.Tensor, target_logits: torch.Tensor, tau: float) -> torch.Tensor:
    """KL(softmax(target/tau) || softmax(logits)) per position: [..., V] -> [...]."""
    q_log = F.log_softmax(target_logits / tau, dim=-1)
    p_log = F.log_softmax(logits, dim=-1)
    q = q_log.exp()
    return (q * (q_log - p_log)).nan_to_num(0.0).sum(-1)  # 0*log0 from banned (-inf) tokens


def byog_target_weights(targets: torch.Tensor, k: int, *, nil_id: int, nil_weight: float = 1.0,
                        later_slots_weight: float = 1.0) -> torch.Tensor:
    """Per-position weights of the BYOG loss: targets Long [B, L] (L = T*k) -> float [B, L].

    ``<nil>`` targets weigh ``nil_weight`` (most slot positions are ``<nil>``); slot positions
    1..k-1 weigh ``later_slots_weight`` (they are largely predictable from the same frame's
    earlier tokens, so the first slot position carries the frame-to-frame prediction). The two
    factors multiply.
    """
    w = torch.where(targets == nil_id, nil_weight, 1.0).to(torch.float32)
    later = (torch.arange(targets.shape[-1], device=targets.device) % k) != 0
    return w * torch.where(later, later_slots_weight, 1.0)


def prefix_loss(logits: torch.Tensor, targets: torch.Tensor, loss_mask: torch.Tensor, *,
                target_logits: torch.Tensor | None = None, tau: float = 1.0,
                weights: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Predictor loss of the prefix mode.

    Args:
        logits: float [B, L, V] predictor logits (position p predicts token p).
        targets: Long [B, L] the target encoder's sampled tokens.
        loss_mask: bool [B, L] positions that count (valid frames after the cut).
        target_logits: float [B, L, V] the target's logits for soft targets (KL at ``tau``);
            None = hard targets (CE on ``targets``).
        tau: soft-target temperature.
        weights: float [B, L] per-position weights (:func:`byog_target_weights`); None = 1.

    Returns:
        Loss = per-sequence (weighted) mean over counted positions, then mean over sequences
        that have any; metrics ``byog/ce`` (unweighted hard CE, for monitoring in both modes),
        ``byog/positions``.
    """
    ce = token_ce(logits, targets)  # [B, L]
    per_pos = ce if target_logits is None else soft_kl(logits, target_logits, tau)
    loss, count = _per_sequence_mean(per_pos, loss_mask, weights)
    ce_mean, _ = _per_sequence_mean(ce.detach(), loss_mask)
    return loss, {"byog/ce": float(ce_mean), "byog/positions": float(loss_mask.sum()),
                  "byog/sequences": float(count)}


def parallel_indices(valid: torch.Tensor, k: int, index: str) -> torch.Tensor:
    """Indices i of the parallel mode: each frame's last slot position, or every position.

    Returns Long [N] positions in [0, T*k) (the same for every sequence; validity is masked).
    """
    T = valid.shape[1]
    if index == "frame":
        return torch.arange(T, device=valid.device) * k + (k - 1)
    return torch.arange(T * k, device=valid.device)


def parallel_windows(ids: torch.Tensor, pos_valid: torch.Tensor, idx: torch.Tensor, K: int,
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gather the teacher-forcing inputs and targets of the parallel mode.

    For index i the predictor reads tokens y[i .. i+K-1] and predicts y[i+1 .. i+K].

    Args:
        ids: Long [B, L] token stream; pos_valid: bool [B, L]; idx: Long [N]; K: horizon.

    Returns:
        (inputs Long [B, N, K], targets Long [B, N, K], mask bool [B, N, K]); the mask is
        False where i is invalid or i+1+j falls past the window or on padding.
    """
    B, L = ids.shape
    j = torch.arange(K, device=ids.device)
    src = idx[:, None] + j[None, :]  # [N, K]
    tgt = src + 1
    inside = tgt < L
    pad_ids = torch.cat([ids, ids[:, -1:].expand(B, K + 1)], dim=1)  # room to gather past L
    pad_valid = torch.cat([pos_valid, pos_valid.new_zeros(B, K + 1)], dim=1)
    inputs = pad_ids[:, src]  # [B, N, K]
    targets = pad_ids[:, tgt]
    mask = pad_valid[:, tgt] & inside[None] & pos_valid[:, idx][:, :, None]
    return inputs, targets, mask


def parallel_loss(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, *,
                  target_logits: torch.Tensor | None = None, tau: float = 1.0,
                  weights: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Mean CE (or soft KL) over valid (i, j) pairs: logits [..., K, V], targets/mask [..., K]
    (weighted by ``weights`` [..., K] when given; ``byog/ce`` stays unweighted)."""
    ce = token_ce(logits, targets)
    per = ce if target_logits is None else soft_kl(logits, target_logits, tau)
    m = mask.to(per.dtype)
    n = m.sum()
    mw = m if weights is None else m * weights
    loss = (per * mw).sum() / mw.sum().clamp_min(1e-8) if bool(mw.sum() > 0) else per.sum() * 0.0
    ce_mean = float((ce.detach() * m).sum() / n.clamp_min(1.0))
    return loss, {"byog/ce": ce_mean, "byog/positions": float(n)}


def grounding_loss(logits: torch.Tensor, targets: torch.Tensor, *, pad_id: int, nil_id: int,
                   nil_weight: float = 1.0) -> tuple[torch.Tensor, dict[str, float]]:
    """Teacher-forced CE of the encoder on annotation tokens.

    Args:
        logits: float [B, L, V]; targets: Long [B, L] slotted annotation ids.
        pad_id: ignored target; nil_id: target weighted by ``nil_weight``.

    Returns:
        Weighted mean CE over non-pad positions; metrics ``ground/ce``, ``ground/accuracy``
        (all non-pad tokens), ``ground/word_accuracy`` (non-nil tokens).
    """
    ce = token_ce(logits, targets)
    keep = targets != pad_id
    w = keep.to(ce.dtype) * torch.where(targets == nil_id, nil_weight, 1.0)
    loss = (ce * w).sum() / w.sum().clamp_min(1e-8) if bool(keep.any()) else ce.sum() * 0.0
    with torch.no_grad():
        hit = logits.argmax(-1) == targets
        word = keep & (targets != nil_id)
        acc = float(hit[keep].float().mean()) if bool(keep.any()) else float("nan")
        wacc = float(hit[word].float().mean()) if bool(word.any()) else float("nan")
        plain = float((ce * keep).sum() / keep.sum().clamp_min(1))
    return loss, {"ground/ce": plain, "ground/accuracy": acc, "ground/word_accuracy": wacc}


def history_dropout(ids: torch.Tensor, valid: torch.Tensor, *, rate: float, seeds: list[int],
                    nil_id: int, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Grounding inputs with some frames' slots silenced, against exposure bias.

    Free-running narration feeds the encoder its own earlier slots; when those say nothing
    (all ``<nil>``), a model trained only on true histories sees a history it never saw and
    tends to stay silent. Here each valid frame's slot is replaced, with probability ``rate``,
    by ``<nil>`` in the teacher-forced *input* stream. The positions inside a silenced slot
    (slot positions 1..k-1, whose inputs are the replaced tokens) are dropped from the targets
    (``pad_id``); every other position keeps its true target, so the following frames learn to
    narrate from the frames after a silent history.

    Args:
        ids: Long [B, T, k] slotted annotation ids.
        valid: bool [B, T] valid frames.
        rate: probability that a frame's slot is silenced.
        seeds: one RNG seed per row (per-sample draws, like the cuts).
        nil_id, pad_id: the special ids.

    Returns:
        (inputs Long [B, T, k], targets Long [B, T, k]).
    """
    B, T, _ = ids.shape
    if rate <= 0:
        return ids, ids
    drop = torch.tensor(np.stack([np.random.default_rng(s).random(T) < rate for s in seeds]),
                        dtype=torch.bool, device=ids.device).reshape(B, T) & valid
    inputs = ids.masked_fill(drop[:, :, None], nil_id)
    targets = ids.clone()
    targets[:, :, 1:] = targets[:, :, 1:].masked_fill(drop[:, :, None], pad_id)
    return inputs, targets


def reinforce_loss(logp: torch.Tensor, mask: torch.Tensor, reward: torch.Tensor,
                   baseline: float) -> tuple[torch.Tensor, dict[str, float]]:
    """REINFORCE on sampled tokens: -(reward - baseline) * sum of their log-probs, batch mean.

    Args:
        logp: float [B, L] log-probability of each sampled token under the policy that
            sampled it (on-policy: no importance weight).
        mask: bool [B, L] tokens credited (the prefix the predictor read, not the future it
            predicted); reward: float [B] (no gradient); baseline: scalar.
    """
    adv = (reward - baseline).detach()  # [B]
    seq_logp = (logp * mask.to(logp.dtype)).sum(1)  # [B]
    loss = -(adv * seq_logp).mean()
    return loss, {"reinforce/reward": float(reward.mean()), "reinforce/advantage": float(adv.mean())}


def entropy_bonus(logits: torch.Tensor, mask: torch.Tensor,
                  banned: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Mean entropy (nats) of softmax(logits) over masked positions, banned ids excluded.

    Args:
        logits: float [B, L, V]; mask: bool [B, L] positions that count; banned: Long [n] ids
            the policy never emits.

    Returns:
        (entropy, a scalar attached to the graph: subtract ``w * entropy`` from the loss to
        oppose collapse), ``{"reinforce/entropy": float}``.
    """
    if banned is not None and banned.numel():
        # a large finite value, not -inf: p = 0 exactly, and p * log p keeps a finite gradient
        logits = logits.index_fill(-1, banned, -1e4)
    logp = F.log_softmax(logits, dim=-1)
    ent = -(logp.exp() * logp).sum(-1)  # [B, L]
    m = mask.to(ent.dtype)
    value = (ent * m).sum() / m.sum() if bool(mask.any()) else ent.sum() * 0.0
    return value, {"reinforce/entropy": float(value.detach())}


def ema_decay(base: float, step: int | None, anneal_steps: int) -> float:
    """The EMA decay at ``step``: ``base`` cosine-annealed to 1 over ``anneal_steps`` (BYOL:
    ``1 - (1 - base) (cos(pi k / K) + 1) / 2``); ``base`` when not annealing (K = 0 or no step).

    >>> ema_decay(0.99, 5, 10), ema_decay(0.99, 10, 10), ema_decay(0.99, 5, 0)
    (0.995, 1.0, 0.99)
    """
    if anneal_steps <= 0 or step is None:
        return base
    frac = min(max(step, 0), anneal_steps) / anneal_steps
    return round(1.0 - (1.0 - base) * (math.cos(math.pi * frac) + 1.0) / 2.0, 12)


@torch.no_grad()
def ema_update(target: Iterable[torch.Tensor], online: Iterable[torch.Tensor], decay: float) -> None:
    """In place: target <- decay * target + (1 - decay) * online, tensor by tensor."""
    tgt, onl = list(target), list(online)
    if len(tgt) != len(onl):
        raise ValueError(f"EMA over {len(tgt)} target tensors but {len(onl)} online tensors.")
    for t, o in zip(tgt, onl):
        if t.shape != o.shape:
            raise ValueError(f"EMA shape mismatch: target {tuple(t.shape)} vs online {tuple(o.shape)}.")
        t.mul_(decay).add_(o.detach(), alpha=1.0 - decay)


def latent_loss(pred: torch.Tensor, target: torch.Tensor, loss_mask: torch.Tensor,
                ) -> tuple[torch.Tensor, dict[str, float], torch.Tensor]:
    """BYOL's normalised regression loss, ``2 - 2 cos(pred, target)``, on counted positions.

    Args:
        pred: float [B, L, D] the predictor's regression of the target's states.
        target: float [B, L, D] the target encoder's hidden states (detached here: the target
            receives no gradient, as in BYOL).
        loss_mask: bool [B, L] positions that count (valid frames after the cut).

    Returns:
        (loss = per-sequence mean over counted positions, then mean over sequences that have
        any; metrics ``byog/latent`` and ``byog/cos``; the per-sequence loss [B], detached).
    """
    cos = F.cosine_similarity(pred, target.detach(), dim=-1)  # [B, L]; both normalised inside
    per_pos = 2.0 - 2.0 * cos
    loss, count = _per_sequence_mean(per_pos, loss_mask)
    m = loss_mask.float()
    per_seq = ((per_pos.detach() * m).sum(1) / m.sum(1).clamp_min(1))
    cos_mean = float((cos.detach() * m).sum() / m.sum()) if bool(loss_mask.any()) else float("nan")
    return loss, {"byog/latent": float(loss.detach()), "byog/cos": cos_mean,
                  "byog/positions": float(loss_mask.sum()), "byog/sequences": float(count)}, per_seq


def scale_grad(x: torch.Tensor, scale: float) -> torch.Tensor:
    """``x`` unchanged in the forward pass, its gradient multiplied by ``scale`` (0 = cut).

    Written as ``x.detach() + scale * (x - x.detach())`` so the forward value is exactly ``x``
    (``x * s + x.detach() * (1 - s)`` would round differently)."""
    if scale == 1.0:
        return x
    return x.detach() + scale * (x - x.detach())


def ramp_weight(weight: float, step: int, warmup_steps: int) -> float:
    """``weight`` ramped linearly from 0 at step 0 to its full value at ``warmup_steps``."""
    if warmup_steps <= 0:
        return weight
    return weight * min(1.0, step / warmup_steps)
