"""Features read from the dataset's ``embedding`` column (e.g. VPT or CLIP features).

The column is written beforehand by ``python -m agents.obs.embed DIR --encoder SPEC``. The encoder
sets ``needs_column = "embedding"``: the model builds its ``WindowDataset`` with
``columns=("embedding",)`` and calls ``encoder(frames, embedding=batch["embedding"])`` with
``embedding: float32 [B, T, D]``; ``frames`` is not read (it may be None). An optional trainable
adapter (``adapter``) maps the column: ``linear`` (D -> out_dim), ``layernorm``
(over D), or ``layernorm+linear``; with no adapter the encoder has no weights.
"""
from __future__ import annotations

import torch
from torch import nn

from agents.obs.base import ObsEncoder, ObsEncoderError
from agents.obs.precomputed_config import PrecomputedConfig


class PrecomputedEncoder(ObsEncoder):
    """Passes the dataset's embedding column through an optional adapter."""

    needs_column = "embedding"

    def __init__(self, cfg: PrecomputedConfig) -> None:
        super().__init__()
        if cfg.dim is None:
            raise ObsEncoderError(
                "The precomputed obs encoder needs its dim option (--model.obs.dim), the width of the dataset's "
                "embedding column; read it with agents.obs.embed.embedding_dim(DATASET_DIR) (it is "
                "printed by `python -m agents.obs.embed`)."
            )
        self.in_dim = cfg.dim
        layers: list[nn.Module] = []
        if "layernorm" in cfg.adapter:
            layers.append(nn.LayerNorm(self.in_dim))
        if "linear" in cfg.adapter:
            self.out_dim = cfg.out_dim or 256
            layers.append(nn.Linear(self.in_dim, self.out_dim))
        else:
            if cfg.out_dim is not None and cfg.out_dim != self.in_dim:
                raise ObsEncoderError(
                    f"out_dim={cfg.out_dim} differs from the column width {self.in_dim} but no "
                    "linear adapter is set; use adapter='linear' or leave out_dim unset."
                )
            self.out_dim = self.in_dim
        self.adapter = nn.Sequential(*layers)

    def forward(self, frames: torch.Tensor | None, *, embedding: torch.Tensor | None = None,
                valid: torch.Tensor | None = None) -> torch.Tensor:
        """embedding float [B, T, D] -> float [B, T, out_dim] (frames unused)."""
        if embedding is None:
            raise ObsEncoderError(
                "The precomputed obs encoder reads the dataset's 'embedding' column but got none; "
                "run `python -m agents.obs.embed DIR --encoder SPEC`, build the WindowDataset with "
                "columns=('embedding',) and pass embedding=batch['embedding']."
            )
        if embedding.ndim != 3 or embedding.shape[-1] != self.in_dim:
            raise ObsEncoderError(
                f"Expected an embedding column float [B, T, {self.in_dim}], got "
                f"{tuple(embedding.shape)}; set precomputed.dim to the dataset's embedding width."
            )
        return self.adapter(embedding.float())

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        raise ObsEncoderError(
            "The precomputed obs encoder cannot encode raw frames; it reads the dataset's "
            "embedding column (call it with embedding=...). To embed live frames, use the "
            "embedder that wrote the column (agents.obs.embed.load_embedder(SPEC))."
        )
