"""Hidden units: k-means clusters over frozen frame features (the seed's "units" encoder).

Pipeline per clip ``[B, T]``: frozen features ``f_t`` (downsampled pixels, a fitted VQ-VAE's
pre-quantization output pooled to its grid, or the dataset's ``embedding`` column) ->
optional frame deltas ``f_t - f_{t-1}`` (0 at the clip's first frame and next to padding) ->
optional subtraction of the clip mean (over valid frames) -> unit id = nearest k-means centroid
(scikit-learn ``KMeans``/``MiniBatchKMeans`` fits them; torch assigns). With ``units_temperature = T > 0``
and the module in training mode, the unit is sampled from ``softmax(-||f - c_k||^2 / T)``
(squared Euclidean distances); T -> 0 is the argmax; eval mode always takes the nearest centroid.

Features for the LM (``units_embedding``): a learned ``nn.Embedding(k, units_dim)`` initialised
N(0, 1) (the only trainable part: the frozen features cannot pass a gradient through the
discrete assignment), the unit's one-hot vector, or its centroid.

The unit ids double as a pseudo-language: ``unit_sentences(ids)`` gives per-frame annotations
``["unit 17"]`` in the dataset's annotation format, so the model can co-train on them (as
grounding targets) where a dataset has no annotations; ``unit_vocabulary(k)`` lists every
sentence for tokenizer training, ``parse_unit_sentence`` inverts one.
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn
from tqdm.auto import tqdm

from agents.obs.base import FittedObsEncoder, ObsEncoderError, to_float_chw
from agents.obs.config import ObsEncoderConfig
from agents.obs.data import iter_clip_batches
from agents.obs.vqvae import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    VQVAEEncoder,
    read_fitted_config,
    write_fitted,
)

UNIT_WORD = "unit"


# ---------------------------------------------------------------------------------------------
# Pure functions
# ---------------------------------------------------------------------------------------------
def clip_transform(
    feats: torch.Tensor,
    valid: torch.Tensor | None = None,
    *,
    deltas: bool = False,
    subtract_mean: bool = False,
) -> torch.Tensor:
    """Apply the seed's clip-level options to features of a batch of clips.

    Args:
        feats: float [B, T, D].
        valid: bool [B, T] (None = all valid); invalid frames come out as 0.
        deltas: Replace ``f_t`` by ``f_t - f_{t-1}``; 0 where t = 0 or either frame is invalid.
        subtract_mean: Subtract the clip's mean over its valid frames (after the deltas).

    Returns:
        float [B, T, D].
    """
    B, T, _ = feats.shape
    v = (torch.ones(B, T, dtype=torch.bool, device=feats.device) if valid is None
         else valid.to(feats.device, torch.bool))
    x = feats * v[..., None]
    if deltas:
        both = torch.zeros_like(v)
        both[:, 1:] = v[:, 1:] & v[:, :-1]
        d = torch.zeros_like(x)
        d[:, 1:] = x[:, 1:] - x[:, :-1]
        x = d * both[..., None]
    if subtract_mean:
        n = v.sum(1, keepdim=True).clamp(min=1)[..., None]        # [B, 1, 1]
        x = (x - x.sum(1, keepdim=True) / n) * v[..., None]
    return x


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


def unit_sentences(
    ids: torch.Tensor, valid: torch.Tensor | None = None, *, change_only: bool = False
) -> list[list[list[str]]]:
    """Unit ids [B, T] -> annotations in the dataset's format: B lists of T sentence lists.

    Args:
        ids: long [B, T].
        valid: bool [B, T]; padded frames get no sentence.
        change_only: Only emit ``"unit k"`` on frames whose unit differs from the previous
            frame's (sparser, event-like narration); the first frame always gets one.
    """
    ids_l = ids.tolist()
    valid_l = valid.tolist() if valid is not None else [[True] * len(r) for r in ids_l]
    out: list[list[list[str]]] = []
    for row, vrow in zip(ids_l, valid_l):
        sents: list[list[str]] = []
        prev = None
        for u, ok in zip(row, vrow):
            emit = ok and not (change_only and u == prev)
            sents.append([f"{UNIT_WORD} {u}"] if emit else [])
            prev = u if ok else None
        out.append(sents)
    return out


def unit_vocabulary(k: int) -> list[str]:
    """Every unit sentence (``"unit 0"`` .. ``"unit k-1"``), e.g. to train a tokenizer on."""
    return [f"{UNIT_WORD} {i}" for i in range(k)]


def parse_unit_sentence(sentence: str) -> int:
    """``"unit 17"`` -> 17; anything else raises ``ValueError``."""
    parts = sentence.split()
    if len(parts) != 2 or parts[0] != UNIT_WORD or not parts[1].isdigit():
        raise ValueError(f"Not a unit sentence: {sentence!r} (expected 'unit <id>').")
    return int(parts[1])


# ---------------------------------------------------------------------------------------------
# Encoder
# ---------------------------------------------------------------------------------------------
class UnitsEncoder(FittedObsEncoder):
    """k-means hidden units over frozen frame features; see the module docstring."""

    def __init__(self, cfg: ObsEncoderConfig, *, source_vqvae: VQVAEEncoder | None = None) -> None:
        super().__init__()
        self.cfg = replace(cfg, kind="units")
        self.k = cfg.units_k
        self.trainable = cfg.units_embedding == "learned"
        self.needs_column = "embedding" if cfg.units_source == "embedding" else None
        self.source_vqvae: VQVAEEncoder | None = None
        if cfg.units_source == "vqvae":
            self.source_vqvae = source_vqvae or VQVAEEncoder.load(cfg.units_vqvae_path)  # type: ignore[arg-type]
            self.source_vqvae.freeze()
            self.feature_dim: int | None = self.source_vqvae.feature_dim("pre_quant")
        elif cfg.units_source == "pixels":
            self.feature_dim = 3 * cfg.units_pixel_size ** 2
        else:
            self.feature_dim = None  # the embedding column's width, known once fitted
        self.register_buffer("centroids", torch.zeros(self.k, self.feature_dim or 0))
        self.embedding: nn.Embedding | None = None
        if cfg.units_embedding == "learned":
            self.embedding = nn.Embedding(self.k, cfg.out_dim or cfg.units_dim)
        self.out_dim = self._out_dim()

    def _out_dim(self) -> int | None:
        if self.cfg.units_embedding == "learned":
            return self.cfg.out_dim or self.cfg.units_dim
        if self.cfg.units_embedding == "onehot":
            return self.k
        return self.feature_dim

    # -- features -----------------------------------------------------------------------------
    def frame_features(
        self, frames: torch.Tensor | None, *, embedding: torch.Tensor | None = None,
        valid: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Frozen features after the clip options: float [B, T, feature_dim]."""
        src = self.cfg.units_source
        with torch.no_grad():
            if src == "embedding":
                if embedding is None:
                    raise ObsEncoderError(
                        "The units encoder clusters the dataset's 'embedding' column but got none; "
                        "build the WindowDataset with columns=('embedding',) (after "
                        "`python -m agents.embed DIR --encoder SPEC`) and pass "
                        "embedding=batch['embedding']."
                    )
                feats = embedding.float()
            else:
                if frames is None or frames.ndim != 5:
                    raise ObsEncoderError(
                        "The units encoder expects frames uint8 [B, T, H, W, 3], got "
                        f"{None if frames is None else tuple(frames.shape)}."
                    )
                B, T = frames.shape[:2]
                flat = frames.reshape(B * T, *frames.shape[2:])
                if src == "pixels":
                    s = self.cfg.units_pixel_size
                    f = F.interpolate(to_float_chw(flat), size=(s, s), mode="area").flatten(1)
                else:
                    f = self.source_vqvae.features(flat, "pre_quant")  # type: ignore[union-attr]
                feats = f.reshape(B, T, -1)
            return clip_transform(feats, valid, deltas=self.cfg.units_deltas,
                                  subtract_mean=self.cfg.units_subtract_mean)

    def unit_ids(
        self, frames: torch.Tensor | None, *, embedding: torch.Tensor | None = None,
        valid: torch.Tensor | None = None, temperature: float | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Unit id per frame: long [B, T].

        Args:
            frames: uint8 [B, T, H, W, 3] (unused with ``units_source='embedding'``).
            embedding: float [B, T, D], the dataset's embedding column.
            valid: bool [B, T] for the clip mean / deltas.
            temperature: Override; None = the config's in training mode, 0 in eval mode.
            generator: Seeds stochastic assignment.
        """
        self._check_fitted()
        feats = self.frame_features(frames, embedding=embedding, valid=valid)  # [B, T, D]
        if feats.shape[-1] != self.centroids.shape[1]:
            raise ObsEncoderError(
                f"Features of width {feats.shape[-1]} do not match the fitted centroids' width "
                f"{self.centroids.shape[1]}; use the dataset/encoder the units were fitted on."
            )
        if temperature is None:
            temperature = self.cfg.units_temperature if self.training else 0.0
        B, T, D = feats.shape
        ids = assign_units(feats.reshape(B * T, D), self.centroids, temperature=temperature,
                           generator=generator)
        return ids.view(B, T)

    def unit_features(self, ids: torch.Tensor) -> torch.Tensor:
        """Unit ids long [...] -> features float [..., out_dim]."""
        kind = self.cfg.units_embedding
        if kind == "learned":
            return self.embedding(ids)  # type: ignore[misc]
        if kind == "onehot":
            return F.one_hot(ids, self.k).float()
        return self.centroids[ids]

    def forward(self, frames: torch.Tensor | None, *, embedding: torch.Tensor | None = None,
                valid: torch.Tensor | None = None) -> torch.Tensor:
        """frames uint8 [B, T, H, W, 3] (or embedding [B, T, D]) -> float [B, T, out_dim]."""
        return self.unit_features(self.unit_ids(frames, embedding=embedding, valid=valid))

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """Flat frames uint8 [N, H, W, 3] as ONE clip -> float [N, out_dim]."""
        return self.forward(frames[None])[0]

    def pseudo_annotations(
        self, frames: torch.Tensor | None, *, embedding: torch.Tensor | None = None,
        valid: torch.Tensor | None = None, change_only: bool = False,
    ) -> list[list[list[str]]]:
        """The clip's unit ids as annotations (``[["unit 17"], ...]`` per clip) to co-train on."""
        ids = self.unit_ids(frames, embedding=embedding, valid=valid)
        return unit_sentences(ids, valid, change_only=change_only)

    # -- fit / save / load ----------------------------------------------------------------------
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
        max_frames: int = 20000,
        window: int = 16,
        batch_size: int = 16,
        kmeans_batch_size: int = 1024,
        n_init: int = 3,
        exact_below: int = 20000,
        progress: bool = True,
    ) -> dict[str, float]:
        """Fit the centroids with scikit-learn's k-means on the source's frames.

        ``KMeans`` (exact Lloyd) below ``exact_below`` frames, where it is faster and better;
        ``MiniBatchKMeans`` above, where memory and time matter.

        Args:
            source: Dataset dir, ``WindowDataset``, iterable of window batches (dicts with
                ``frames``/``valid``/``embedding``) or a uint8 frame array (one clip).
            max_frames: Stop gathering features after this many valid frames.
            window: Window length when ``source`` is a dataset directory (the clip for the
                clip mean and deltas).
            batch_size: Windows per batch read from a dataset.
            kmeans_batch_size: ``MiniBatchKMeans`` batch size.
            n_init: k-means restarts (the best inertia is kept).
            exact_below: Use exact ``KMeans`` when fewer frames than this were gathered.
            progress: Show a tqdm bar.

        Returns:
            ``{"units/inertia_per_frame": .., "units/frames": .., "units/used": ..}``.
        """
        from sklearn.cluster import KMeans, MiniBatchKMeans

        columns = ("embedding",) if self.needs_column else ()
        chunks: list[np.ndarray] = []
        n = 0
        bar = tqdm(total=max_frames, desc="units features", disable=not progress)
        for clip in iter_clip_batches(source, batch_size=batch_size, window=window,
                                      columns=columns):
            feats = self.frame_features(clip["frames"], embedding=clip.get("embedding"),
                                        valid=clip["valid"])
            x = feats[clip["valid"]].cpu().numpy().astype(np.float32)  # [n_valid, D]
            chunks.append(x[: max_frames - n])
            n += len(chunks[-1])
            bar.update(len(chunks[-1]))
            if n >= max_frames:
                break
        bar.close()
        if n < self.k:
            raise ObsEncoderError(
                f"Only {n} valid frames to fit {self.k} units; use a larger dataset or a smaller "
                "units_k."
            )
        X = np.concatenate(chunks)
        if len(X) < exact_below:
            km = KMeans(n_clusters=self.k, random_state=self.cfg.units_seed, n_init=n_init)
        else:
            km = MiniBatchKMeans(n_clusters=self.k, random_state=self.cfg.units_seed,
                                 batch_size=kmeans_batch_size, n_init=n_init)
        km.fit(X)
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

    def save(self, path: str | Path) -> Path:
        """Write ``config.json`` and ``model.safetensors`` (the source VQ-VAE included)."""
        self._check_fitted()
        extra = {} if self.source_vqvae is None else {
            "source_vqvae_config": self.source_vqvae.cfg.to_dict()}
        return write_fitted(self, path, "units", **extra)

    @classmethod
    def load(cls, path: str | Path) -> UnitsEncoder:
        """Load a fitted encoder written by :meth:`save` (self-contained: no other paths read)."""
        cfg = read_fitted_config(path, "units")
        meta = json.loads((Path(path) / CONFIG_FILE).read_text())
        state = load_file(str(Path(path) / WEIGHTS_FILE))
        source = None
        if cfg.units_source == "vqvae":
            source = VQVAEEncoder(ObsEncoderConfig.from_dict(meta["source_vqvae_config"]))
        enc = cls(cfg, source_vqvae=source)
        enc.centroids = torch.zeros_like(state["centroids"])
        enc.feature_dim = int(state["centroids"].shape[1])
        enc.load_state_dict(state)
        enc.out_dim = enc._out_dim()
        if enc.source_vqvae is not None:
            enc.source_vqvae.freeze()
        return enc
