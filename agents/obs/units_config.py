"""Options of the ``units`` observation encoder (torch-free; the encoder is agents.obs.units)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from agents.obs.config import ObsConfig, ObsEncoderError, one_of, positive, register_obs_encoder

UNIT_WORD = "unit"


def unit_sentence(unit: int) -> str:
    """The pseudo-language sentence of a unit id: ``"unit 17"``."""
    return f"{UNIT_WORD} {unit}"


@register_obs_encoder("units", encoder="agents.obs.units:UnitsEncoder",
                      summary="k-means hidden units over frozen frame features, fitted first")
@dataclass
class UnitsConfig(ObsConfig):
    """k-means hidden units over frozen features, fitted before training; ``out_dim`` None =
    dim (learned), k (onehot) or the source feature width (centroid)."""

    requires_fit = True

    k: int = 64
    """Number of hidden units (k-means clusters)."""
    source: Literal["pixels", "vqvae", "embedding"] = "pixels"
    """Frozen features clustered: downsampled pixels, a fitted VQ-VAE's pre-quantization
    output (vqvae_path), or the dataset's precomputed 'embedding' column."""
    pixel_size: int = 8
    """Side of the downsampled frame for source='pixels' (features = 3*size^2)."""
    vqvae_path: str | None = None
    """Directory of a fitted VQ-VAE (VQVAEEncoder.save) for source='vqvae'."""
    subtract_mean: bool = False
    """Subtract the running mean of the stream's features so far (causal: frame t sees frames
    <= t of its clip or live stream) before clustering."""
    deltas: bool = False
    """Cluster frame deltas f_t - f_{t-1} (the previous frame from the window or the live
    stream; 0 at an episode's first frame)."""
    temperature: float = 0.0
    """Stochastic assignment in training mode: sample a unit from softmax(-d^2 / T) over squared
    distances to the centroids; 0 = nearest centroid (argmax). Eval mode always uses argmax."""
    embedding: Literal["learned", "onehot", "centroid"] = "learned"
    """Feature of a unit: a learned embedding (trainable), its one-hot vector, or its
    centroid (both frozen)."""
    dim: int = 64
    """Width of the learned unit embedding (embedding='learned'); out_dim overrides."""
    seed: int = 0
    fit_max_frames: int = 20000
    """At most this many training frames for the k-means fit (the encoder's own budget;
    ``--obs_fit.units_max_frames`` still overrides it)."""
    """Seed of k-means (scikit-learn random_state)."""
    pseudo_language: bool = False
    """Co-train on unit words where no annotations exist: the trainer labels each unlabelled
    window with ``"unit <id>"`` on the frames where the unit changes (the design's units as a
    pseudo-language), and the tokenizer gets the k unit sentences."""

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(self, "pixel_size", "dim")
        if self.k < 2:
            raise ObsEncoderError(f"units.k must be >= 2 clusters, got {self.k}.")
        one_of(self, "source", ("pixels", "vqvae", "embedding"))
        if self.source == "vqvae" and not self.vqvae_path:
            raise ObsEncoderError(
                "units.source='vqvae' needs units.vqvae_path, the directory of a fitted VQ-VAE "
                "(fit one with kind='vqvae' and save it).")
        if self.temperature < 0:
            raise ObsEncoderError(
                f"units.temperature must be >= 0 (0 = nearest centroid), got {self.temperature}.")
        one_of(self, "embedding", ("learned", "onehot", "centroid"))

    def pseudo_vocabulary(self) -> list[str]:
        return [unit_sentence(i) for i in range(self.k)] if self.pseudo_language else []

    @property
    def needs_column(self) -> str | None:  # type: ignore[override]
        return "embedding" if self.source == "embedding" else None

    @property
    def uses_previous_frame(self) -> bool:  # type: ignore[override]
        return self.deltas
