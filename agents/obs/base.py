"""The one interface every observation encoder implements: uint8 frames -> feature vectors.

Calling convention (what the model relies on):

* ``encoder(frames)`` with ``frames: uint8 [B, T, H, W, 3]`` returns ``float [B, T, out_dim]``.
* Encoders that read a dataset column instead of (or besides) pixels set ``needs_column``
  (``"embedding"``); the model then builds its ``WindowDataset`` with
  ``columns=(encoder.needs_column,)`` and calls ``encoder(frames, embedding=batch["embedding"])``
  (``float32 [B, T, D]``).
* ``valid: bool [B, T]`` may be passed so clip-level statistics (the ``units`` encoder's clip
  mean) ignore padded frames, and frame deltas never cross padding; encoders that work frame by
  frame ignore it.
* Encoders that read the previous frame too (``uses_previous_frame``: the ``cnn`` with
  ``cnn_frame_delta``) also take ``prev_frame: uint8 [B, H, W, 3] | None``, the frame just
  before the clip's first (live narration passes the last frame narrated); ``None`` means the
  clip starts an episode or a window (zero delta at its first frame). Callers pass it only to
  encoders that set ``uses_previous_frame``.
* ``trainable`` says whether the BYOG loss may update the encoder's weights; ``requires_fit``
  says the encoder must be fitted on data (``fit``) or loaded (``load``) before use.
"""
from __future__ import annotations

import torch
from torch import nn

from agents.errors import ObsEncoderError  # re-exported: the old import path


class ObsEncoder(nn.Module):
    """Maps frames ``uint8 [B, T, H, W, 3]`` to features ``float [B, T, out_dim]``.

    Subclasses set ``out_dim`` and implement :meth:`encode_frames` on a flat batch of frames.
    Encoders that must be fitted on data before use (VQ-VAE, k-means units) implement ``fit``
    and set ``requires_fit``; ``trainable`` says whether the BYOG loss may update the encoder's
    weights; ``needs_column`` names a dataset column the encoder reads (``None``: pixels only).
    """

    out_dim: int
    uses_previous_frame: bool = False
    trainable: bool = True
    requires_fit: bool = False
    needs_column: str | None = None

    def mark_fitted(self) -> None:
        """Declare the fitted state present because the caller loads it next (from an agent's
        weights); only encoders with ``requires_fit`` implement it."""
        raise ObsEncoderError(f"{type(self).__name__} is not fitted on data; nothing to mark.")

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """frames uint8 [N, H, W, 3] -> float [N, out_dim]."""
        raise NotImplementedError

    def forward(
        self,
        frames: torch.Tensor | None,
        *,
        embedding: torch.Tensor | None = None,
        valid: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Encode a batch of clips.

        Args:
            frames: uint8 [B, T, H, W, 3].
            embedding: float [B, T, D], the dataset's ``embedding`` column (only read by
                encoders whose ``needs_column`` is ``"embedding"``).
            valid: bool [B, T], False on padded frames (only read by clip-level encoders).

        Returns:
            float [B, T, out_dim].
        """
        self.check_frames(frames)
        B, T = frames.shape[:2]
        feats = self.encode_frames(frames.reshape(B * T, *frames.shape[2:]))  # [B*T, D]
        return feats.reshape(B, T, -1)

    def check_frames(self, frames: torch.Tensor | None) -> None:
        """Raise :class:`ObsEncoderError` unless ``frames`` is a [B, T, H, W, 3] clip batch."""
        if frames is None or frames.ndim != 5 or frames.shape[-1] != 3:
            shape = None if frames is None else tuple(frames.shape)
            raise ObsEncoderError(
                f"{type(self).__name__} expects frames uint8 [B, T, H, W, 3], got {shape}; "
                "pass the batch's 'frames' tensor from collate_windows."
            )


class FittedObsEncoder(ObsEncoder):
    """An encoder fitted on data (``fit``) before use, its fitted state in a ``fitted`` buffer
    (so it travels in the agent's weights): ``requires_fit`` until fitted or loaded."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("fitted", torch.tensor(False))

    @property
    def requires_fit(self) -> bool:  # type: ignore[override]
        return not bool(self.fitted)

    def mark_fitted(self) -> None:
        """Declare the fitted state present: the caller loads it next (an agent's weights)."""
        self.fitted.fill_(True)


def to_float_chw(frames: torch.Tensor) -> torch.Tensor:
    """uint8 [N, H, W, 3] -> float [N, 3, H, W] in [0, 1]."""
    return frames.permute(0, 3, 1, 2).float().div_(255.0)
