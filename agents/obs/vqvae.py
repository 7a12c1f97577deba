"""VQ-VAE (van den Oord et al., 2017) fitted on the dataset's frames, then frozen.

Loss (per frame, means over elements rather than the paper's sums, so ``beta`` keeps its scale):
``L = ||x - D(z_q)||^2 + ||sg[z_e] - e||^2 + beta * ||z_e - sg[e]||^2`` with the decoder fed
``z_e + sg[z_q - z_e]`` (the straight-through estimator: forward = quantized, gradient copied
to the encoder). With ``codebook_update='ema'`` the codebook term is dropped and the codebook
follows exponential moving averages of the encoder outputs assigned to each code (the paper's
appendix A.1, with Laplace smoothing of the counts). Either way, codes left unused during a
refresh interval of ``fit`` are restarted on random encoder outputs of the current batch.

Features for the LM are the quantized vectors (or the pre-quantization outputs) average-pooled
to a ``pool x pool`` grid and flattened, or a frame's normalised histogram of codes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from agents.obs.base import (  # noqa: F401  (the fitted-encoder files' helpers, re-exported)
    CONFIG_FILE,
    FORMAT_VERSION,
    WEIGHTS_FILE,
    FittedObsEncoder,
    ObsEncoderError,
    read_fitted_config,
    to_float_chw,
    write_fitted,
)
from agents.obs.data import cycle_clip_batches, valid_frames
from agents.obs.vqvae_config import VQVAEConfig


# ---------------------------------------------------------------------------------------------
# Pure functions: quantization, losses, EMA codebook update
# ---------------------------------------------------------------------------------------------
def quantize(z_e: torch.Tensor, codebook: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest codebook vector per row.

    Args:
        z_e: float [N, D] encoder outputs.
        codebook: float [K, D].

    Returns:
        ``(indices long [N], z_q float [N, D])`` with ``z_q = codebook[indices]``.
    """
    d2 = (z_e.pow(2).sum(1, keepdim=True) - 2 * z_e @ codebook.t()
          + codebook.pow(2).sum(1)[None])  # [N, K] squared distances
    idx = d2.argmin(1)
    return idx, codebook[idx]


def straight_through(z_e: torch.Tensor, z_q: torch.Tensor) -> torch.Tensor:
    """Value of ``z_q``, gradient of the identity into ``z_e`` (and none into ``z_q``)."""
    return z_e + (z_q - z_e).detach()


def vq_loss(
    z_e: torch.Tensor, z_q: torch.Tensor, *, beta: float, codebook_loss: bool = True
) -> tuple[torch.Tensor, dict[str, float]]:
    """Codebook + commitment loss: ``mse(z_q, sg[z_e]) + beta * mse(z_e, sg[z_q])``.

    Args:
        z_e: float [..., D] encoder outputs.
        z_q: float [..., D] their quantized vectors (``codebook[indices]``, with gradient to the
            codebook).
        beta: Commitment weight.
        codebook_loss: False for EMA codebooks (the codebook term is then left out).

    Returns:
        ``(loss, {"vq/codebook": .., "vq/commitment": ..})``.
    """
    commit = F.mse_loss(z_e, z_q.detach())
    book = F.mse_loss(z_q, z_e.detach())
    loss = beta * commit + (book if codebook_loss else 0.0)
    return loss, {"vq/codebook": float(book.detach()), "vq/commitment": float(commit.detach())}


@torch.no_grad()
def ema_codebook_update(
    cluster_size: torch.Tensor,
    embed_sum: torch.Tensor,
    z_e: torch.Tensor,
    indices: torch.Tensor,
    *,
    decay: float,
    eps: float = 1e-5,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One EMA step of the codebook (van den Oord et al., appendix A.1).

    ``N_k <- decay N_k + (1-decay) n_k``; ``m_k <- decay m_k + (1-decay) sum_{i: k_i=k} z_i``;
    ``e_k = m_k / N~_k`` with Laplace-smoothed ``N~_k = (N_k + eps) / (N + K eps) * N``.

    Args:
        cluster_size: float [K] running counts N_k.
        embed_sum: float [K, D] running sums m_k.
        z_e: float [N, D] encoder outputs of this batch.
        indices: long [N] their codes.
        decay: EMA decay in (0, 1).
        eps: Laplace smoothing.

    Returns:
        ``(cluster_size, embed_sum, codebook)``, new tensors.
    """
    K = cluster_size.shape[0]
    onehot = F.one_hot(indices, K).type_as(z_e)  # [N, K]
    cluster_size = decay * cluster_size + (1 - decay) * onehot.sum(0)
    embed_sum = decay * embed_sum + (1 - decay) * onehot.t() @ z_e
    n = cluster_size.sum()
    smoothed = (cluster_size + eps) / (n + K * eps) * n
    return cluster_size, embed_sum, embed_sum / smoothed[:, None]


# ---------------------------------------------------------------------------------------------
# Modules
# ---------------------------------------------------------------------------------------------
class ResBlock(nn.Module):
    """``x + conv1x1(relu(conv3x3(relu(x))))`` as in the paper."""

    def __init__(self, *, channels: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1),
                                 nn.ReLU(), nn.Conv2d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class VQVAE(nn.Module):
    """Conv encoder -> codebook -> conv decoder; ``n_down`` stride-2 stages each way."""

    def __init__(self, *, hidden: int, n_down: int, codebook_size: int, code_dim: int,
                 beta: float, ema: bool, ema_decay: float) -> None:
        super().__init__()
        enc: list[nn.Module] = []
        c_in = 3
        for i in range(n_down):
            enc += [nn.Conv2d(c_in, hidden, 4, stride=2, padding=1)]
            if i < n_down - 1:
                enc += [nn.ReLU()]
            c_in = hidden
        enc += [ResBlock(channels=hidden), ResBlock(channels=hidden), nn.ReLU(),
                nn.Conv2d(hidden, code_dim, 1)]
        self.encoder = nn.Sequential(*enc)
        dec: list[nn.Module] = [nn.Conv2d(code_dim, hidden, 3, padding=1),
                                ResBlock(channels=hidden), ResBlock(channels=hidden)]
        for i in range(n_down):
            last = i == n_down - 1
            dec += [nn.ReLU(), nn.ConvTranspose2d(hidden, 3 if last else hidden, 4, stride=2,
                                                  padding=1)]
        self.decoder = nn.Sequential(*dec)
        self.n_down, self.beta, self.ema, self.ema_decay = n_down, beta, ema, ema_decay
        codebook = torch.empty(codebook_size, code_dim).uniform_(-1 / codebook_size,
                                                                 1 / codebook_size)
        if ema:
            self.register_buffer("codebook", codebook)
            self.register_buffer("ema_cluster_size", torch.zeros(codebook_size))
            self.register_buffer("ema_embed_sum", codebook.clone())
        else:
            self.codebook = nn.Parameter(codebook)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """float [N, 3, H, W] in [0, 1] -> z_e float [N, D, h, w] (H, W padded to 2^n_down)."""
        m = 2 ** self.n_down
        H, W = x.shape[-2:]
        x = F.pad(x - 0.5, (0, (-W) % m, 0, (-H) % m))
        return self.encoder(x)

    def quantize_map(self, z_e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z_e [N, D, h, w] -> (indices long [N, h, w], z_q [N, D, h, w])."""
        N, D, h, w = z_e.shape
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, D)  # [N*h*w, D]
        idx, zq = quantize(flat, self.codebook)
        return idx.view(N, h, w), zq.view(N, h, w, D).permute(0, 3, 1, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, Any]]:
        """Training forward: x float [N, 3, H, W] in [0, 1] -> (loss, outputs incl. metrics)."""
        H, W = x.shape[-2:]
        z_e = self.encode(x)                       # [N, D, h, w]
        idx, z_q = self.quantize_map(z_e)          # [N, h, w], [N, D, h, w]
        recon = self.decoder(straight_through(z_e, z_q))[..., :H, :W] + 0.5
        rec = F.mse_loss(recon, x)
        vq, metrics = vq_loss(z_e, z_q, beta=self.beta, codebook_loss=not self.ema)
        metrics["vq/recon"] = float(rec.detach())
        return rec + vq, {"z_e": z_e, "indices": idx, "recon": recon, "metrics": metrics}


class VQVAEEncoder(FittedObsEncoder):
    """A VQ-VAE fitted on frames (``fit``), then frozen; features per ``cfg.features``."""

    def __init__(self, cfg: VQVAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.vqvae = VQVAE(hidden=cfg.hidden, n_down=cfg.downsample,
                           codebook_size=cfg.codebook_size, code_dim=cfg.code_dim,
                           beta=cfg.beta, ema=cfg.codebook_update == "ema",
                           ema_decay=cfg.ema_decay)
        self.out_dim = self.feature_dim(cfg.features)

    def feature_dim(self, kind: str) -> int:
        """Width of the features of ``kind`` (quantized / pre_quant / codes)."""
        if kind == "codes":
            return self.cfg.codebook_size
        return self.cfg.code_dim * self.cfg.pool ** 2

    def _check_fitted(self) -> None:
        if not bool(self.fitted):
            raise ObsEncoderError(
                "This VQ-VAE encoder has not been fitted; call encoder.fit(dataset_dir, "
                "steps=...) or build it with fitted_path=<dir written by encoder.save>."
            )

    def codes(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 [N, H, W, 3] -> code ids long [N, h, w]."""
        self._check_fitted()
        with torch.no_grad():
            return self.vqvae.quantize_map(self.vqvae.encode(to_float_chw(frames)))[0]

    def features(self, frames: torch.Tensor, kind: str | None = None) -> torch.Tensor:
        """uint8 [N, H, W, 3] -> float [N, feature_dim(kind)] (kind defaults to the config's)."""
        self._check_fitted()
        kind = kind or self.cfg.features
        with torch.no_grad():
            z_e = self.vqvae.encode(to_float_chw(frames))          # [N, D, h, w]
            idx, z_q = self.vqvae.quantize_map(z_e)
            if kind == "codes":
                K = self.cfg.codebook_size
                return F.one_hot(idx.flatten(1), K).float().mean(1)  # [N, K]
            z = z_q if kind == "quantized" else z_e
            return F.adaptive_avg_pool2d(z, self.cfg.pool).flatten(1)  # [N, D*p*p]

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        return self.features(frames)

    def fit(
        self,
        source: Any,
        *,
        steps: int | None = None,
        batch_size: int = 64,
        lr: float = 3e-4,
        window: int = 16,
        restart_every: int = 100,
        seed: int = 0,
        progress: bool = True,
        max_frames: int | None = None,
    ) -> dict[str, list[float]]:
        """Train the VQ-VAE on frames from ``source``, then freeze it.

        Args:
            source: Dataset dir, ``WindowDataset``, iterable of window batches, or a uint8
                frame array (see :mod:`agents.obs.data`).
            steps: Optimiser steps (None: the config's ``fit_steps``).
            batch_size: Frames per step (sampled from the valid frames of the source's clips).
            lr: Adam learning rate.
            window: Window length when ``source`` is a dataset directory.
            restart_every: Every this many steps, restart codes unused since the last restart
                on random encoder outputs of the current batch (0 = never).
            seed: Seed of initialisation and sampling.
            progress: Show a tqdm bar.
            max_frames: Unused (the budget is ``steps``); accepted so every fitted encoder
                takes the trainer's one ``fit`` call.

        Returns:
            History ``{"loss": [...], "vq/recon": [...], "vq/perplexity": [...], ...}`` per step.
        """
        steps = self.cfg.fit_steps if steps is None else steps  # its own budget by default
        if steps < 1 or batch_size < 1:
            raise ObsEncoderError(f"steps and batch_size must be >= 1, got {steps}, {batch_size}.")
        gen = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        self.requires_grad_(True)
        self.train()
        vq = self.vqvae
        opt = torch.optim.Adam([p for p in vq.parameters() if p.requires_grad], lr=lr)
        clips = cycle_clip_batches(source, batch_size=max(1, batch_size // window),
                                   window=window, shuffle=True, seed=seed)
        pool = torch.empty(0, dtype=torch.uint8)
        used = torch.zeros(self.cfg.codebook_size, dtype=torch.bool)
        history: dict[str, list[float]] = {}
        for step in tqdm(range(steps), desc="fit vqvae", disable=not progress):
            batch, pool = _draw_frames(pool, clips, batch_size, gen)
            metrics, idx, z_e = self._fit_step(opt, batch)
            used[idx.unique()] = True
            if restart_every and (step + 1) % restart_every == 0 and step + 1 < steps:
                self._restart_dead_codes(~used, z_e, gen)
                used.zero_()
            for k, v in metrics.items():
                history.setdefault(k, []).append(v)
        self.fitted.fill_(True)
        self.freeze()
        return history

    def _fit_step(self, opt: torch.optim.Optimizer, batch: torch.Tensor
                  ) -> tuple[dict[str, float], torch.Tensor, torch.Tensor]:
        """One optimiser step on a uint8 frame batch (and the EMA codebook update): the step's
        metrics, the code index of every cell and the encoder outputs (for dead-code restarts)."""
        vq = self.vqvae
        loss, out = vq(to_float_chw(batch))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        idx = out["indices"].flatten()
        if vq.ema:
            z = out["z_e"].detach().permute(0, 2, 3, 1).reshape(-1, vq.codebook.shape[1])
            cs, es, cb = ema_codebook_update(vq.ema_cluster_size, vq.ema_embed_sum, z, idx,
                                             decay=vq.ema_decay)
            vq.ema_cluster_size.copy_(cs)
            vq.ema_embed_sum.copy_(es)
            vq.codebook.copy_(cb)
        probs = torch.bincount(idx, minlength=self.cfg.codebook_size).float() / idx.numel()
        metrics = dict(out["metrics"], loss=float(loss.detach()),
                       **{"vq/perplexity": float(torch.exp(-(probs * (probs + 1e-10).log()).sum()))})
        return metrics, idx, out["z_e"].detach()

    @torch.no_grad()
    def _restart_dead_codes(self, dead: torch.Tensor, z_e: torch.Tensor,
                            gen: torch.Generator) -> None:
        n_dead = int(dead.sum())
        if n_dead == 0:
            return
        z = z_e.permute(0, 2, 3, 1).reshape(-1, z_e.shape[1])
        pick = z[torch.randint(z.shape[0], (n_dead,), generator=gen)]
        vq = self.vqvae
        vq.codebook.data[dead] = pick
        if vq.ema:
            vq.ema_embed_sum[dead] = pick
            vq.ema_cluster_size[dead] = 1.0

    def freeze(self) -> VQVAEEncoder:
        """Stop gradients and switch to eval mode (the fitted encoder is frozen)."""
        self.requires_grad_(False)
        return self.eval()

    @classmethod
    def load(cls, path: str | Path) -> VQVAEEncoder:
        """Load a fitted, frozen encoder written by :meth:`save`."""
        read_fitted_config(path, "vqvae")  # a clear error for another kind's directory
        return super().load(path).freeze()  # type: ignore[attr-defined]


def _draw_frames(pool: torch.Tensor, clips: Any, batch_size: int, gen: torch.Generator
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_size`` valid frames drawn at random from ``pool`` (refilled from the ``clips``
    iterator first when it holds too few), and what is left of the pool."""
    while pool.shape[0] < batch_size:  # gather enough valid frames for one step
        pool = torch.cat([pool, valid_frames(next(clips))]) if pool.numel() else \
            valid_frames(next(clips))
    perm = torch.randperm(pool.shape[0], generator=gen)
    return pool[perm[:batch_size]], pool[perm[batch_size:]]
