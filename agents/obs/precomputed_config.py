"""Options of the ``precomputed`` observation encoder (torch-free; the encoder is
agents.obs.precomputed): features read from the dataset's ``embedding`` column."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from agents.obs.config import ObsConfig, ObsEncoderError, one_of, register_obs_encoder


@register_obs_encoder("precomputed", encoder="agents.obs.precomputed:PrecomputedEncoder",
                      summary="the dataset's 'embedding' column (python -m agents.obs.embed)")
@dataclass
class PrecomputedConfig(ObsConfig):
    """The dataset's ``embedding`` column through an optional trainable adapter; ``out_dim``
    None = the column's width, or 256 with a linear adapter."""

    needs_column = "embedding"

    dim: int | None = None
    """Width D of the dataset's embedding column (None = read from the dataset/batch)."""
    adapter: Literal["none", "linear", "layernorm", "layernorm+linear"] = "none"
    """Optional trainable adapter on the column: a Linear to out_dim, a LayerNorm, or both."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.dim is not None and self.dim < 1:
            raise ObsEncoderError(f"precomputed.dim must be a positive width or None, got {self.dim}.")
        one_of(self, "adapter", ("none", "linear", "layernorm", "layernorm+linear"))
