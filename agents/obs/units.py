"""Hidden units: k-means clusters over frozen frame features (the seed's "units" encoder).

Pipeline per clip ``[B, T]``: frozen features ``f_t`` (downsampled pixels, a fitted VQ-VAE's
pre-quantization output pooled to its grid, or the dataset's ``embedding`` column) ->
optional frame deltas ``f_t - f_{t-1}`` (the previous frame from the window or the live
stream; 0 at a stream's first frame and next to padding) -> optional subtraction of the running
mean of the stream so far -> unit id = nearest k-means centroid (scikit-learn
``KMeans``/``MiniBatchKMeans`` fits them; torch assigns). Both options are causal: frame t's
unit depends on frames <= t only, and a live stream stepped one frame at a time
(:meth:`UnitsEncoder.step`, the per-stream state hook) gets the units of the offline clip
that starts where the stream started. Offline, the running mean restarts at each window.
With ``temperature = T > 0`` and the module in training mode, the unit is sampled from
``softmax(-||f - c_k||^2 / T)`` (squared Euclidean distances); T -> 0 is the argmax; eval mode
always takes the nearest centroid.

With ``pseudo_language`` the unit ids double as a pseudo-language for co-training where no
annotations exist (:meth:`UnitsEncoder.pseudo_annotations`, applied by the trainer through
:func:`agents.obs.base.with_pseudo_annotations`).

Features for the LM (``embedding``): a learned ``nn.Embedding(k, dim)`` initialised N(0, 1)
(the only trainable part: the frozen features cannot pass a gradient through the discrete
assignment), the unit's one-hot vector, or its centroid.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn
from tqdm.auto import tqdm

from agents.obs.base import FittedObsEncoder, ObsEncoderError, StreamState, to_float_chw
from agents.obs.config import obs_config_from_dict
from agents.obs.data import iter_clip_batches
from agents.obs.units_config import UnitsConfig, unit_sentence
from agents.obs.vqvae import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    VQVAEEncoder,
    read_fitted_config,
    write_fitted,
)


# ---------------------------------------------------------------------------------------------
# Pure functions
# ---------------------------------------------------------------------------------------------
def clip_transform(
    feats: torch.Tensor,
    valid: torch.Tensor | None = None,
    *,
    deltas: bool = False,
    subtract_mean: bool = False,
    carry: dict[str, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Apply the seed's clip options to features of a batch of clips, causally: frame t's
    output depends on frames <= t only, so a clip encoded whole and a stream encoded one frame
    at a time (passing ``carry`` along) give the same features.

    Args:
        feats: float [B, T, D].
        valid: bool [B, T] (None = all valid); invalid frames come out as 0.
        deltas: Replace ``f_t`` by ``f_t - f_{t-1}``: 0 at a stream's first frame and where
            either frame is invalid; the clip's first frame uses ``carry["prev_feat"]``.
        subtract_mean: Subtract the running mean of the (delta) features over the stream's
            valid frames so far, frame t included (``carry`` holds the sum and count).
        carry: The stream's state before the clip: ``started`` bool [B] (a frame came before),
            ``prev_feat`` [B, D], ``mean_sum`` [B, D], ``mean_count`` [B]; missing = fresh.

    Returns:
        ``(float [B, T, D], the carry after the clip)``.
    """
    B, T, D = feats.shape
    v = (torch.ones(B, T, dtype=torch.bool, device=feats.device) if valid is None
         else valid.to(feats.device, torch.bool))
    carry = dict(carry or {})
    started = carry.get("started", torch.zeros(B, dtype=torch.bool)).to(feats.device)
    prev = carry.get("prev_feat", torch.zeros(B, D)).to(feats)
    x = feats * v[..., None]
    out = x
    if deltas:
        first = torch.where(started[:, None], prev, x[:, 0])  # a fresh stream: zero delta
        before = torch.cat([first[:, None], x[:, :-1]], 1)     # [B, T, D]
        ok = v.clone()
        ok[:, 1:] &= v[:, :-1]
        out = (x - before) * ok[..., None]
    if subtract_mean:
        csum = carry.get("mean_sum", torch.zeros(B, D)).to(feats)[:, None] + out.cumsum(1)
        count = carry.get("mean_count", torch.zeros(B)).to(feats)[:, None] + v.float().cumsum(1)
        out = (out - csum / count.clamp(min=1)[..., None]) * v[..., None]
        carry["mean_sum"], carry["mean_count"] = csum[:, -1], count[:, -1]
    has = v.any(1)
    last = (v.long() * torch.arange(1, T + 1, device=v.device)).argmax(1)  # last valid frame
    carry["prev_feat"] = torch.where(has[:, None], x[torch.arange(B), last], prev)
    carry["started"] = started | has
    return out, carry


def squared_distances(x: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """x [N, D], centroids [K, D] -> squared Euclidean distances [N, K] (clamped at 0)."""
    return (x.pow(2).sum(1, keepdim=True) - 2 * x @ centroids.t()
            + centroids.pow(2).sum(1)[None]).clamp_(min=0)


def assign_units(
    x: torch.Tensor,
    centroids: torch.Tensor,
    *,
    temperature: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Nearest centroid (temperature 0) or a sample from ``softmax(-d^2 / temperature)``.

    Args:
        x: float [N, D].
        centroids: float [K, D].
        temperature: 0 = argmax; larger spreads the assignment over farther centroids.
        generator: Seeds the sampling.

    Returns:
        long [N] unit ids.
    """
    d2 = squared_distances(x, centroids)  # [N, K]
    if temperature <= 0:
        return d2.argmin(1)
    probs = torch.softmax(-d2 / temperature, dim=1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


# ---------------------------------------------------------------------------------------------
# Encoder
# ---------------------------------------------------------------------------------------------
class UnitsEncoder(FittedObsEncoder):
    """k-means hidden units over frozen frame features; see the module docstring."""

    def __init__(self, cfg: UnitsConfig, *, source_vqvae: VQVAEEncoder | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.k = cfg.k
        self.needs_column = cfg.needs_column
        self.uses_previous_frame = cfg.uses_previous_frame
        self.source_vqvae: VQVAEEncoder | None = None
        if cfg.source == "vqvae":
            self.source_vqvae = source_vqvae or VQVAEEncoder.load(cfg.vqvae_path)  # type: ignore[arg-type]
            self.source_vqvae.freeze()
            self.feature_dim: int | None = self.source_vqvae.feature_dim("pre_quant")
        elif cfg.source == "pixels":
            self.feature_dim = 3 * cfg.pixel_size ** 2
        else:
            self.feature_dim = None  # the embedding column's width, known once fitted
        self.register_buffer("centroids", torch.zeros(self.k, self.feature_dim or 0))
        self.embedding: nn.Embedding | None = None
        if cfg.embedding == "learned":
            self.embedding = nn.Embedding(self.k, cfg.out_dim or cfg.dim)
        self.out_dim = self._out_dim()

    @property
    def per_frame(self) -> bool:
        """Units of a frame read the stream before it with ``deltas`` or ``subtract_mean``."""
        return super().per_frame and not self.cfg.subtract_mean

    def _out_dim(self) -> int | None:
        if self.cfg.embedding == "learned":
            return self.cfg.out_dim or self.cfg.dim
        if self.cfg.embedding == "onehot":
            return self.k
        return self.feature_dim

    # -- features -----------------------------------------------------------------------------
    def raw_features(self, frames: torch.Tensor | None, embedding: torch.Tensor | None = None
                     ) -> torch.Tensor:
        """Frozen per-frame features before the clip options: float [B, T, feature_dim]."""
        if self.cfg.source == "embedding":
            if embedding is None:
                raise ObsEncoderError(
                    "The units encoder clusters the dataset's 'embedding' column but got none; "
                    "build the WindowDataset with columns=('embedding',) (after "
                    "`python -m agents.obs.embed DIR --encoder SPEC`) and pass "
                    "embedding=batch['embedding'].")
            return embedding.float()
        if frames is None or frames.ndim != 5:
            raise ObsEncoderError(
                "The units encoder expects frames uint8 [B, T, H, W, 3], got "
                f"{None if frames is None else tuple(frames.shape)}.")
        B, T = frames.shape[:2]
        flat = frames.reshape(B * T, *frames.shape[2:])
        with torch.no_grad():
            if self.cfg.source == "pixels":
                s = self.cfg.pixel_size
                f = F.interpolate(to_float_chw(flat), size=(s, s), mode="area").flatten(1)
            else:
                f = self.source_vqvae.features(flat, "pre_quant")  # type: ignore[union-attr]
        return f.reshape(B, T, -1)

    def frame_features(
        self, frames: torch.Tensor | None, *, embedding: torch.Tensor | None = None,
        valid: torch.Tensor | None = None, prev_frame: torch.Tensor | None = None,
        carry: dict[str, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Frozen features after the (causal) clip options: (float [B, T, feature_dim], carry).

        ``prev_frame`` uint8 [B, H, W, 3]: the frame before the clip (deltas read it; a window
        at an episode's start passes its first frame, a zero delta); ``carry``: a live stream's
        state (:meth:`step`) instead."""
        with torch.no_grad():
            feats = self.raw_features(frames, embedding)
            if carry is None and prev_frame is not None and self.cfg.deltas \
                    and self.cfg.source != "embedding":
                prev = self.raw_features(prev_frame[:, None])[:, 0]
                carry = {"prev_feat": prev, "started": torch.ones(len(prev), dtype=torch.bool)}
            return clip_transform(feats, valid, deltas=self.cfg.deltas,
                                  subtract_mean=self.cfg.subtract_mean, carry=carry)

    def assign(self, feats: torch.Tensor, *, temperature: float | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Features float [B, T, D] (after the clip options) -> unit ids long [B, T].

        ``temperature`` None = the config's in training mode, 0 (nearest) in eval mode."""
        self._check_fitted()
        if feats.shape[-1] != self.centroids.shape[1]:
            raise ObsEncoderError(
                f"Features of width {feats.shape[-1]} do not match the fitted centroids' width "
                f"{self.centroids.shape[1]}; use the dataset/encoder the units were fitted on.")
        if temperature is None:
            temperature = self.cfg.temperature if self.training else 0.0
        B, T, D = feats.shape
        return assign_units(feats.reshape(B * T, D), self.centroids, temperature=temperature,
                            generator=generator).view(B, T)

    def unit_ids(
        self, frames: torch.Tensor | None, *, embedding: torch.Tensor | None = None,
        valid: torch.Tensor | None = None, temperature: float | None = None,
        generator: torch.Generator | None = None, prev_frame: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Unit id per frame: long [B, T].

        Args:
            frames: uint8 [B, T, H, W, 3] (unused with ``source='embedding'``).
            embedding: float [B, T, D], the dataset's embedding column.
            valid: bool [B, T] for the running mean / deltas.
            temperature: Override; None = the config's in training mode, 0 in eval mode.
            generator: Seeds stochastic assignment.
            prev_frame: uint8 [B, H, W, 3], the frame before the clip (deltas).
        """
        self._check_fitted()
        feats, _ = self.frame_features(frames, embedding=embedding, valid=valid,
                                       prev_frame=prev_frame)
        return self.assign(feats, temperature=temperature, generator=generator)

    def unit_features(self, ids: torch.Tensor) -> torch.Tensor:
        """Unit ids long [...] -> features float [..., out_dim]."""
        kind = self.cfg.embedding
        if kind == "learned":
            return self.embedding(ids)  # type: ignore[misc]
        if kind == "onehot":
            return F.one_hot(ids, self.k).float()
        return self.centroids[ids]

    def forward(self, frames: torch.Tensor | None, *, embedding: torch.Tensor | None = None,
                valid: torch.Tensor | None = None,
                prev_frame: torch.Tensor | None = None) -> torch.Tensor:
        """frames uint8 [B, T, H, W, 3] (or embedding [B, T, D]) -> float [B, T, out_dim]."""
        return self.unit_features(self.unit_ids(frames, embedding=embedding, valid=valid,
                                                prev_frame=prev_frame))

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """Flat frames uint8 [N, H, W, 3] as ONE clip -> float [N, out_dim]."""
        return self.forward(frames[None])[0]

    def pseudo_annotations(self, batch: dict[str, Any]) -> list[list[list[str]]] | None:
        """With ``pseudo_language``: ``"unit <id>"`` on each frame whose (nearest) unit differs
        from the previous frame's, the first frame always; padding gets none."""
        if not self.cfg.pseudo_language:
            return None
        valid = batch["valid"].bool()
        with torch.no_grad():
            ids = self.unit_ids(batch.get("frames"), embedding=batch.get("embedding"), valid=valid,
                                prev_frame=batch.get("prev_frame"), temperature=0.0)  # [B, T]
        changed = torch.ones_like(valid)
        changed[:, 1:] = ids[:, 1:] != ids[:, :-1]
        return [[[unit_sentence(u)] if ok and new else [] for u, ok, new in zip(*row)]
                for row in zip(ids.tolist(), valid.tolist(), changed.tolist())]

    def step(self, state: StreamState, frame: torch.Tensor | None, *,
             embedding: torch.Tensor | None = None) -> tuple[torch.Tensor, StreamState]:
        """One frame per stream with the stream's running mean and previous features carried
        in ``state`` (see :class:`~agents.obs.base.ObsEncoder`): float [N, out_dim]."""
        clip = None if frame is None else frame[:, None]
        emb = None if embedding is None else embedding[:, None]
        feats, carry = self.frame_features(clip, embedding=emb, carry=state)
        return self.unit_features(self.assign(feats))[:, 0], carry

    def _check_fitted(self) -> None:
        if not bool(self.fitted):
            raise ObsEncoderError(
                "This units encoder has not been fitted; call encoder.fit(dataset_dir) or build "
                "it with fitted_path=<dir written by encoder.save>."
            )

    def fit(
        self,
        source: Any,
        *,
        max_frames: int | None = None,
        window: int = 16,
        batch_size: int = 16,
        kmeans_batch_size: int = 1024,
        n_init: int = 3,
        exact_below: int = 20000,
        progress: bool = True,
        steps: int | None = None,
        seed: int | None = None,
    ) -> dict[str, float]:
        """Fit the centroids with scikit-learn's k-means on the source's frames.

        ``KMeans`` (exact Lloyd) below ``exact_below`` frames, where it is faster and better;
        ``MiniBatchKMeans`` above, where memory and time matter.

        Args:
            source: Dataset dir, ``WindowDataset``, iterable of window batches (dicts with
                ``frames``/``valid``/``embedding``) or a uint8 frame array (one clip).
            max_frames: Stop gathering features after this many valid frames (None: the
                config's ``fit_max_frames``).
            window: Window length when ``source`` is a dataset directory (the clip for the
                clip mean and deltas).
            batch_size: Windows per batch read from a dataset.
            kmeans_batch_size: ``MiniBatchKMeans`` batch size.
            n_init: k-means restarts (the best inertia is kept).
            exact_below: Use exact ``KMeans`` when fewer frames than this were gathered.
            progress: Show a tqdm bar.
            steps, seed: Unused (k-means runs to convergence, seeded by the config's ``seed``);
                accepted so every fitted encoder takes the trainer's one ``fit`` call.

        Returns:
            ``{"units/inertia_per_frame": .., "units/frames": .., "units/used": ..}``.
        """
        max_frames = self.cfg.fit_max_frames if max_frames is None else max_frames  # its own budget
        X = self._gather_features(source, max_frames, window, batch_size, progress)
        if len(X) < self.k:
            raise ObsEncoderError(
                f"Only {len(X)} valid frames to fit {self.k} units; use a larger dataset or a "
                "smaller k."
            )
        km = _kmeans(self.k, len(X), self.cfg.seed, n_init, exact_below, kmeans_batch_size).fit(X)
        self.centroids = torch.as_tensor(km.cluster_centers_, dtype=torch.float32).to(
            self.centroids.device)
        self.feature_dim = X.shape[1]
        self.out_dim = self._out_dim()
        self.fitted.fill_(True)
        if self.source_vqvae is not None:
            self.source_vqvae.freeze()
        used = len(np.unique(km.labels_))
        return {"units/inertia_per_frame": float(km.inertia_) / len(X),
                "units/frames": float(len(X)), "units/used": float(used)}

    def _gather_features(self, source: Any, max_frames: int, window: int, batch_size: int,
                         progress: bool) -> np.ndarray:
        """Per-frame features ``float32 [n, D]`` of the source's valid frames, at most
        ``max_frames`` of them (the k-means input)."""
        columns = ("embedding",) if self.needs_column else ()
        chunks: list[np.ndarray] = []
        n = 0
        bar = tqdm(total=max_frames, desc="units features", disable=not progress)
        for clip in iter_clip_batches(source, batch_size=batch_size, window=window,
                                      columns=columns):
            feats, _ = self.frame_features(clip["frames"], embedding=clip.get("embedding"),
                                           valid=clip["valid"], prev_frame=clip.get("prev_frame"))
            x = feats[clip["valid"]].cpu().numpy().astype(np.float32)  # [n_valid, D]
            chunks.append(x[: max_frames - n])
            n += len(chunks[-1])
            bar.update(len(chunks[-1]))
            if n >= max_frames:
                break
        bar.close()
        return np.concatenate(chunks) if chunks else np.zeros((0, 0), dtype=np.float32)

    def save(self, path: str | Path) -> Path:
        """Write ``config.json`` and ``model.safetensors`` (the source VQ-VAE included)."""
        self._check_fitted()
        extra = {} if self.source_vqvae is None else {
            "source_vqvae_config": self.source_vqvae.cfg.to_dict()}
        return write_fitted(self, path, "units", **extra)

    @classmethod
    def load(cls, path: str | Path) -> UnitsEncoder:
        """Load a fitted encoder written by :meth:`save` (self-contained: no other paths read)."""
        from agents.model.weights import check_weights

        cfg = read_fitted_config(path, "units")
        meta = json.loads((Path(path) / CONFIG_FILE).read_text())

        def build() -> UnitsEncoder:
            source = None
            if cfg.source == "vqvae":
                source = VQVAEEncoder(obs_config_from_dict(  # type: ignore[arg-type]
                    {**meta["source_vqvae_config"], "kind": "vqvae"}))
            return cls(cfg, source_vqvae=source)

        # the centroids are sized by the file (k x the fitted feature width)
        check_weights(build, Path(path) / WEIGHTS_FILE, what="Units-encoder weights",
                      error=ObsEncoderError, skip=("centroids",))
        state = load_file(str(Path(path) / WEIGHTS_FILE))
        enc = build()
        enc.centroids = torch.zeros_like(state["centroids"])
        enc.feature_dim = int(state["centroids"].shape[1])
        enc.load_state_dict(state)
        enc.out_dim = enc._out_dim()
        if enc.source_vqvae is not None:
            enc.source_vqvae.freeze()
        return enc


def _kmeans(k: int, n: int, seed: int, n_init: int, exact_below: int, batch_size: int) -> Any:
    """scikit-learn's exact ``KMeans`` below ``exact_below`` frames (faster and better there),
    ``MiniBatchKMeans`` above (memory and time)."""
    from sklearn.cluster import KMeans, MiniBatchKMeans

    if n < exact_below:
        return KMeans(n_clusters=k, random_state=seed, n_init=n_init)
    return MiniBatchKMeans(n_clusters=k, random_state=seed, batch_size=batch_size, n_init=n_init)
