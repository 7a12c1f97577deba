"""Action heads on per-frame features: an MLP, optionally a GRU over the block's frames, and a
bag-of-words mission embedding (BabyAI missions are text, not pixels); and the convex check
beside it (:func:`fit_convex_head`: logistic regression on the same frozen features + a mission
one-hot, C tuned on BC-validation), which has no step cap or learning rate to under-fit with."""
from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

MISSION_BUCKETS = 512


def mission_ids(missions: list[str], max_words: int = 12) -> torch.Tensor:
    """Hash each mission's words into ``MISSION_BUCKETS`` buckets: Long [B, max_words], -1 = pad.

    crc32 (not Python's salted ``hash``) so ids are the same in every process.
    """
    out = torch.full((len(missions), max_words), -1, dtype=torch.long)
    for b, m in enumerate(missions):
        words = m.lower().replace(",", " ").split()[:max_words]
        for j, w in enumerate(words):
            out[b, j] = zlib.crc32(w.encode()) % MISSION_BUCKETS
    return out


class ActionHead(nn.Module):
    """features [B, T, D] (+ mission ids [B, W]) -> action logits [B, T, A].

    Args:
        in_dim: Feature width D.
        num_actions: A.
        hidden: MLP width.
        gru: Run a GRU over the block's frames before the output layer.
        mission_dim: Width of the mission embedding (0 = no mission input).
    """

    def __init__(self, *, in_dim: int, num_actions: int, hidden: int = 128, gru: bool = False,
                 mission_dim: int = 0) -> None:
        super().__init__()
        self.mission = nn.Embedding(MISSION_BUCKETS, mission_dim) if mission_dim else None
        self.mlp = nn.Sequential(nn.LayerNorm(in_dim + mission_dim), nn.Linear(in_dim + mission_dim, hidden),
                                 nn.GELU(), nn.Linear(hidden, hidden), nn.GELU())
        self.gru = nn.GRU(hidden, hidden, batch_first=True) if gru else None
        self.out = nn.Linear(hidden, num_actions)

    def forward(self, feats: torch.Tensor, mission: torch.Tensor | None = None,
                h0: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """feats [B, T, D], mission Long [B, W] -> (logits [B, T, A], GRU state [1, B, H] or None)."""
        B, T, _ = feats.shape
        if self.mission is not None:
            if mission is None:
                raise ValueError("This head was built with a mission input; pass mission ids.")
            m = _bag(self.mission, mission)  # [B, M]
            feats = torch.cat([feats, m[:, None].expand(B, T, -1)], dim=-1)
        x = self.mlp(feats)  # [B, T, H]
        h = None
        if self.gru is not None:
            x, h = self.gru(x, h0)
        return self.out(x), h


def _bag(bag: nn.Embedding, ids: torch.Tensor) -> torch.Tensor:
    """Mean embedding of the non-pad (>= 0) ids of each row: Long [B, W] -> [B, M]."""
    emb = bag.weight[ids.clamp_min(0)]  # [B, W, M]
    mask = (ids >= 0).float()[..., None]
    return (emb * mask).sum(1) / mask.sum(1).clamp_min(1.0)


def prior_logits(actions: torch.Tensor, num_actions: int, smoothing: float = 1.0) -> torch.Tensor:
    """Log of the (add-``smoothing``) action frequencies of ``actions`` (Long, -1 = none): the
    output bias every head starts from, so a head begins at the action prior and early stopping
    measures what the features add, not how long a bias takes to reach the prior."""
    a = actions[actions >= 0].reshape(-1)
    counts = torch.bincount(a, minlength=num_actions)[:num_actions].float() + smoothing
    return (counts / counts.sum()).log()


CONVEX_CS = (0.01, 0.1, 1.0)
"""Inverse regularisation strengths the convex head tries (the best BC-validation NLL wins)."""


@dataclass
class ConvexHead:
    """A fitted :func:`fit_convex_head`: scaler, logistic regression, its C and the mission vocabulary."""

    model: Any
    C: float
    missions: list[str]
    num_actions: int

    def design(self, feats: np.ndarray, missions: Sequence[str] | None) -> np.ndarray:
        """Rows [M, D] (+ the one-hot of each row's mission; unseen missions: all zero)."""
        if not self.missions or missions is None:
            return feats
        onehot = np.zeros((len(feats), len(self.missions)), dtype=feats.dtype)
        index = {m: i for i, m in enumerate(self.missions)}
        for r, m in enumerate(missions):
            if m in index:
                onehot[r, index[m]] = 1.0
        return np.concatenate([feats, onehot], 1)

    def proba(self, feats: np.ndarray, missions: Sequence[str] | None) -> np.ndarray:
        """[M, num_actions] action probabilities (actions never seen in training: ~0)."""
        p = np.full((len(feats), self.num_actions), 1e-12)
        p[:, self.model.classes_] = self.model.predict_proba(self.design(feats, missions))
        return p / p.sum(1, keepdims=True)


def convex_metrics(head: ConvexHead, feats: np.ndarray, actions: np.ndarray,
                   missions: Sequence[str] | None) -> dict[str, float]:
    """``acc`` and ``nll`` of the convex head on rows ``feats`` [M, D] with actions [M]."""
    if not len(actions):
        return {"acc": float("nan"), "nll": float("nan")}
    p = head.proba(feats, missions)
    return {"acc": float((p.argmax(1) == actions).mean()),
            "nll": float(-np.log(p[np.arange(len(actions)), actions]).mean())}


def fit_convex_head(train: tuple[np.ndarray, np.ndarray, Sequence[str] | None],
                    val: tuple[np.ndarray, np.ndarray, Sequence[str] | None], *, num_actions: int,
                    Cs: Sequence[float] = CONVEX_CS, seed: int = 0, max_iter: int = 100) -> ConvexHead:
    """Logistic regression (scikit-learn, multinomial, standardised inputs) on frozen per-step
    features + mission one-hot; ``train``/``val``: (rows [M, D], actions [M], mission per row or
    None). C is the one of ``Cs`` with the lowest BC-validation NLL (the test split is never read).
    The Cs are fitted from the most regularised up, each warm-started from the last (the
    path costs a little more than one fit)."""
    import copy
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y, missions = train
    vocab = sorted(set(missions)) if missions is not None else []
    if len(np.unique(y)) < 2:  # one action only: a constant classifier
        return ConvexHead(_Constant(int(y[0]) if len(y) else 0), float(Cs[0]), vocab, num_actions)
    scaler = StandardScaler().fit(ConvexHead(None, 0.0, vocab, num_actions).design(x, missions))
    lr = LogisticRegression(max_iter=max_iter, random_state=seed, warm_start=True, tol=1e-3)
    best: tuple[float, ConvexHead] | None = None
    for C in sorted(Cs):
        head = ConvexHead(None, float(C), vocab, num_actions)
        lr.set_params(C=float(C))
        with warnings.catch_warnings():  # the BC-validation NLL judges a fit stopped at max_iter
            warnings.simplefilter("ignore", ConvergenceWarning)
            lr.fit(scaler.transform(head.design(x, missions)), y)
        head.model = make_pipeline(copy.deepcopy(scaler), copy.deepcopy(lr))
        nll = convex_metrics(head, *val)["nll"]
        if best is None or nll < best[0]:
            best = (nll if math.isfinite(nll) else float("inf"), head)
    assert best is not None
    return best[1]


class _Constant:
    """A classifier of one class (training data with a single action)."""

    def __init__(self, action: int) -> None:
        self.classes_ = np.array([action])

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return np.ones((len(x), 1))


__all__ = ["CONVEX_CS", "MISSION_BUCKETS", "ActionHead", "ConvexHead", "convex_metrics", "fit_convex_head",
           "mission_ids", "prior_logits"]
