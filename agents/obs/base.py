"""The one interface every observation encoder implements: uint8 frames -> feature vectors.

Calling convention (what the model relies on):

* ``encoder(frames)`` with ``frames: uint8 [B, T, H, W, 3]`` returns ``float [B, T, out_dim]``.
* Encoders that read a dataset column instead of (or besides) pixels set ``needs_column``
  (``"embedding"``); the model then builds its ``WindowDataset`` with
  ``columns=(encoder.needs_column,)`` and calls ``encoder(frames, embedding=batch["embedding"])``
  (``float32 [B, T, D]``).
* ``valid: bool [B, T]`` may be passed so clip-level statistics (the ``units`` encoder's running
  mean) ignore padded frames, and frame deltas never cross padding; encoders that work frame by
  frame ignore it.
* Encoders that read the previous frame too (``uses_previous_frame``: the ``cnn`` with
  ``frame_delta``, ``units`` with ``deltas``) also take ``prev_frame: uint8 [B, H, W, 3] | None``,
  the frame just before the clip's first (live narration passes the last frame narrated);
  ``None`` means the clip starts an episode or a window (zero delta at its first frame).
  Callers pass it only to encoders that set ``uses_previous_frame``.
* ``requires_fit`` says the encoder must be fitted on data (``fit``) or loaded (``load``)
  before use.

Live use, one frame per stream at a time (per env of a vector env), goes through the
per-stream state hook: ``state = enc.init_state(N)``; ``feats, state = enc.step(state, frame)``
for ``frame: uint8 [N, H, W, 3]`` -> ``feats: float [N, out_dim]``; ``state =
enc.reset_state(state, done)`` when some streams start a new episode (``done: bool [N]``).
A stream stepped from an episode's first frame gets exactly the features an offline clip of
that episode gets (the previous frame for deltas, the units encoder's running mean).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from agents.obs.config import ObsConfig, ObsEncoderError, obs_config_from_dict

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"

__all__ = ["FittedObsEncoder", "ObsEncoder", "ObsEncoderError", "StreamState", "read_fitted_config",
           "to_float_chw", "with_pseudo_annotations", "write_fitted"]

StreamState = dict[str, torch.Tensor]
"""Per-stream state of an encoder: tensors whose first dimension is the stream."""


class ObsEncoder(nn.Module):
    """Maps frames ``uint8 [B, T, H, W, 3]`` to features ``float [B, T, out_dim]``.

    Subclasses set ``out_dim`` and implement :meth:`encode_frames` on a flat batch of frames
    (or override :meth:`forward`), and :meth:`from_config` when their constructor does not take
    their config. Encoders that must be fitted on data before use (VQ-VAE, k-means units)
    subclass :class:`FittedObsEncoder`; ``needs_column`` names a dataset column the encoder
    reads (``None``: pixels only).
    """

    out_dim: int
    uses_previous_frame: bool = False
    requires_fit: bool = False
    needs_column: str | None = None

    @property
    def per_frame(self) -> bool:
        """Whether a frame's features depend on that frame alone (no previous frame, no stream
        statistics, no dataset column): what a per-frame embedding column can hold."""
        return not self.uses_previous_frame and self.needs_column is None

    @classmethod
    def from_config(cls, cfg: ObsConfig) -> ObsEncoder:
        """Build from the kind's registered config (:func:`agents.obs.build_obs_encoder`)."""
        return cls(cfg)  # type: ignore[call-arg]

    def pseudo_annotations(self, batch: dict[str, Any]) -> list[list[list[str]]] | None:
        """The encoder's pseudo-language for a ``collate_windows`` batch (B lists of T sentence
        lists, in the dataset's annotation format), to co-train on where windows have no
        annotations; None = the encoder has none (the default). See
        :func:`with_pseudo_annotations`."""
        return None

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

    # ---------------------------------------------------------------- per-stream state hook
    def init_state(self, num_streams: int) -> StreamState:
        """The state of ``num_streams`` streams before their first frame."""
        return {"started": torch.zeros(num_streams, dtype=torch.bool)}

    def step(self, state: StreamState, frame: torch.Tensor | None, *,
             embedding: torch.Tensor | None = None) -> tuple[torch.Tensor, StreamState]:
        """Encode one new frame per stream: frame uint8 [N, H, W, 3] (embedding float [N, D]
        for column readers) -> (float [N, out_dim], the new state). The state is not modified.

        The default runs :meth:`forward` on one-frame clips, with each stream's previous frame
        when the encoder ``uses_previous_frame`` (a stream's first frame: zero delta)."""
        x = frame if frame is not None else embedding
        if x is None:
            raise ObsEncoderError(f"{type(self).__name__}.step needs a frame (or an embedding).")
        started = state["started"].to(x.device)
        kw: dict[str, Any] = {}
        new = dict(state, started=torch.ones_like(started))
        if self.uses_previous_frame:
            last = state.get("prev_frame")
            kw["prev_frame"] = frame if last is None else torch.where(
                started[:, None, None, None], last.to(frame.device), frame)
            new["prev_frame"] = frame
        emb = None if embedding is None else embedding[:, None]
        clip = None if frame is None else frame[:, None]
        return self(clip, embedding=emb, **kw)[:, 0], new

    def reset_state(self, state: StreamState, done: torch.Tensor) -> StreamState:
        """The state with the streams where ``done`` (bool [N]) is True started afresh: their
        rows are zeroed (every state is laid out so that a zero row is a fresh stream)."""
        d = torch.as_tensor(done, dtype=torch.bool)
        return {key: value.masked_fill(d.to(value.device).view(-1, *[1] * (value.dim() - 1)), 0)
                for key, value in state.items()}

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
    (so it travels in the agent's weights): ``requires_fit`` until fitted or loaded.

    ``fit(source, *, steps, max_frames, window, batch_size, seed, progress)`` is the call the
    trainer makes (each encoder reads the budget that applies to it: optimiser ``steps`` or a
    ``max_frames`` sample); ``save(dir)`` / ``load(dir)`` write and read the fitted state.
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("fitted", torch.tensor(False))

    @property
    def requires_fit(self) -> bool:  # type: ignore[override]
        if self.fitted.is_meta:  # a shape-only build (weights checked against a file): no value
            return False
        return not bool(self.fitted)

    cfg: ObsConfig

    def mark_fitted(self) -> None:
        """Declare the fitted state present: the caller loads it next (an agent's weights)."""
        self.fitted.fill_(True)

    def save(self, path: str | Path) -> Path:
        """Write ``config.json`` (the kind, its plugin and options) and ``model.safetensors``."""
        if self.requires_fit:
            raise ObsEncoderError(f"This {self.cfg.kind} encoder has not been fitted; fit it "
                                  "(encoder.fit(dataset_dir)) before saving it.")
        return write_fitted(self, path, self.cfg.kind)

    @classmethod
    def load(cls, path: str | Path) -> FittedObsEncoder:
        """Load a fitted encoder written by :meth:`save` (its plugin imported if need be)."""
        from agents.model.weights import check_weights

        cfg = read_fitted_config(path)
        check_weights(lambda: cls.from_config(cfg), Path(path) / WEIGHTS_FILE,
                      what="Observation-encoder weights", error=ObsEncoderError)
        enc = cls.from_config(cfg)
        enc.load_state_dict(load_file(str(Path(path) / WEIGHTS_FILE)))
        return enc  # type: ignore[return-value]


def with_pseudo_annotations(batch: dict[str, Any], encoder: ObsEncoder) -> dict[str, Any]:
    """``batch`` with its unlabelled windows (``labelled`` False) annotated in the encoder's
    pseudo-language and marked labelled, so grounding trains on them; ``batch`` itself when
    every window is labelled or the encoder has no pseudo-language."""
    labelled = batch.get("labelled")
    if labelled is None or bool(torch.as_tensor(labelled).all()):
        return batch
    pseudo = encoder.pseudo_annotations(batch)
    if pseudo is None:
        return batch
    lab = torch.as_tensor(labelled).bool()
    ann = [real if ok else fake for real, fake, ok in zip(batch["annotations"], pseudo, lab.tolist())]
    return {**batch, "annotations": ann, "labelled": torch.ones_like(lab)}


def write_fitted(encoder: nn.Module, path: str | Path, kind: str, **extra: Any) -> Path:
    """Write a fitted encoder's ``model.safetensors`` and ``config.json`` (its ``cfg``, ``kind``
    and ``extra`` metadata) to directory ``path``; the inverse of :func:`read_fitted_config`."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in encoder.state_dict().items()}
    save_file(state, str(path / WEIGHTS_FILE))
    meta = {"kind": kind, "format_version": FORMAT_VERSION, "config": encoder.cfg.to_dict(), **extra}
    (path / CONFIG_FILE).write_text(json.dumps(meta, indent=2))
    return path


def read_fitted_config(path: str | Path, kind: str | None = None) -> ObsConfig:
    """The config saved in a fitted encoder's directory, checked to be ``kind`` (None: any)."""
    from agents.model.weights import check_dir

    path = check_dir(path, what="Observation-encoder directory", error=ObsEncoderError)
    meta_file, weights = path / CONFIG_FILE, path / WEIGHTS_FILE
    if not meta_file.is_file() or not weights.is_file():
        raise ObsEncoderError(
            f"No fitted {kind} encoder at {path} (expected {CONFIG_FILE} and {WEIGHTS_FILE}); "
            f"fit one and save it with encoder.save('{path}')."
        )
    try:
        meta = json.loads(meta_file.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise ObsEncoderError(f"{meta_file} is not valid JSON ({e}); re-save the encoder.") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
        raise ObsEncoderError(f"{meta_file} has no config object; re-save the encoder.")
    kind = kind or str(meta.get("kind"))
    if meta.get("kind") != kind:
        raise ObsEncoderError(
            f"{path} holds a {meta.get('kind')!r} encoder, not a {kind!r} one; point to the "
            f"directory of a fitted {kind} encoder."
        )
    if meta.get("format_version") != FORMAT_VERSION:
        raise ObsEncoderError(
            f"{path} has encoder format {meta.get('format_version')}, this code reads "
            f"{FORMAT_VERSION}; re-fit the encoder."
        )
    cfg = obs_config_from_dict({**meta["config"], "kind": kind})  # old flat configs too
    return cfg


def to_float_chw(frames: torch.Tensor) -> torch.Tensor:
    """uint8 [N, H, W, 3] -> float [N, 3, H, W] in [0, 1]."""
    return frames.permute(0, 3, 1, 2).float().div_(255.0)
