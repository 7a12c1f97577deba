"""Frozen frame embedders loaded from a LOCAL checkpoint, named by a spec string.

Specs (what ``python -m agents.obs.embed --encoder`` takes):

* ``vqvae:<dir>`` -- our fitted VQ-VAE (``VQVAEEncoder.save``); its configured features.
* ``units:<dir>`` -- a fitted units encoder with a frozen feature (onehot/centroid), per frame.
* ``<kind>:<dir>`` / ``<module>:<kind>:<dir>`` -- any fitted observation encoder of the registry
  (``FittedObsEncoder.save``) whose features are per frame (``encoder.per_frame``).
* ``hf:<dir>`` -- a ``transformers`` vision model saved with ``save_pretrained`` together with
  its image processor (CLIP, CLIPVision, ViT, DINOv2, ...), loaded with ``AutoModel`` /
  ``AutoImageProcessor`` (``local_files_only=True``, float32). Features: CLIP-style models'
  ``get_image_features`` (the projected image embedding), otherwise ``pooler_output``, otherwise
  the mean of ``last_hidden_state`` over tokens.
* ``torchscript:<file.pt>`` -- a scripted module mapping float ``[N, 3, H, W]`` in [0, 1] to
  ``[N, D]``; the module does its own resizing/normalisation (see ``agents.obs.embed`` for the
  VPT recipe). **Trusted files only:** ``torch.jit.load`` runs the code the file contains, so
  name only a file you made or trust as you would a program; BYOG never loads one a dataset
  or checkpoint names, only the one you pass.

Each loader returns a :class:`FrameEmbedder`: ``embedder(frames uint8 [N, H, W, 3]) -> float32
[N, D]`` with ``embedder.dim`` and ``embedder.fingerprint`` (hash of spec and checkpoint bytes,
so a dataset can tell which checkpoint wrote its column).
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from agents.obs.base import ObsEncoderError, to_float_chw

SPEC_KINDS = ("hf", "torchscript")  # and every fitted observation-encoder kind (vqvae, units, ...)


@dataclass
class FrameEmbedder:
    """A frozen ``uint8 [N, H, W, 3] -> float32 [N, D]`` function with its identity."""

    spec: str
    fn: Callable[[torch.Tensor], torch.Tensor]
    dim: int
    fingerprint: str
    device: str = "cpu"

    @torch.no_grad()
    def __call__(self, frames: torch.Tensor | np.ndarray) -> torch.Tensor:
        """frames uint8 [N, H, W, 3] -> float32 [N, dim] on CPU."""
        x = torch.as_tensor(frames)
        if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[-1] != 3:
            raise ObsEncoderError(
                f"Frames must be uint8 [N, H, W, 3], got {x.dtype} {tuple(x.shape)}; the dataset's "
                "frames are RGB uint8."
            )
        out = self.fn(x.to(self.device)).float().cpu()
        if out.ndim != 2 or out.shape[0] != x.shape[0]:
            raise ObsEncoderError(
                f"The embedder {self.spec!r} returned shape {tuple(out.shape)} for {x.shape[0]} "
                "frames; it must return [N, D] (one vector per frame)."
            )
        return out


def parse_spec(spec: str) -> tuple[str, Path]:
    """``"kind:path"`` -> (kind, path), checking the kind and that the path exists; a plugin's
    fitted encoder is ``"module:kind:path"``."""
    parts = spec.split(":", 2)
    kind, rest = parts[0], spec.partition(":")[2]
    if len(parts) == 3 and kind not in SPEC_KINDS and not _fitted_kind(kind):
        kind, rest = f"{parts[0]}:{parts[1]}", parts[2]  # module:kind:path
    if len(parts) < 2 or not rest or not (kind in SPEC_KINDS or _fitted_kind(kind)):
        raise ObsEncoderError(
            f"Bad encoder spec {spec!r}; use one of vqvae:<dir>, units:<dir>, hf:<local dir>, "
            "torchscript:<file.pt>, or <kind>:<dir> of a fitted observation encoder."
        )
    path = Path(rest).expanduser()
    if not path.exists():
        raise ObsEncoderError(
            f"Checkpoint {path} for spec {spec!r} does not exist; give a local path "
            "(nothing is downloaded)."
        )
    if kind == "torchscript" and not path.is_file():
        raise ObsEncoderError(f"torchscript:{path} must be a file written by torch.jit.save.")
    if kind != "torchscript" and not path.is_dir():
        raise ObsEncoderError(f"{kind}:{path} must be a checkpoint directory.")
    return kind, path


def _fitted_kind(kind: str) -> bool:
    """Whether ``kind`` names a registered observation encoder that is fitted on data."""
    from agents.obs.config import obs_config_class

    try:
        return obs_config_class(kind).requires_fit
    except ObsEncoderError:
        return False


def checkpoint_fingerprint(spec: str, path: Path) -> str:
    """sha256 over the spec's kind and the checkpoint's file names and bytes (16 hex chars)."""
    h = hashlib.sha256(spec.partition(":")[0].encode())
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        h.update(f.name.encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def load_embedder(spec: str, *, device: str = "cpu", probe_shape: tuple[int, int] = (64, 64)
                  ) -> FrameEmbedder:
    """Load the frozen embedder ``spec`` names (see the module docstring).

    Args:
        spec: ``vqvae:<dir>``, ``units:<dir>``, ``hf:<dir>``, ``torchscript:<file.pt>`` or
            ``<kind>:<dir>`` of any fitted observation encoder.
        device: Torch device to run it on.
        probe_shape: Frame size used to measure the output width ``dim`` with one dummy frame.

    Raises:
        ObsEncoderError: bad spec, missing or unreadable checkpoint.
    """
    kind, path = parse_spec(spec)
    loaders = {"hf": _load_hf, "torchscript": _load_torchscript}
    fn = loaders[kind](path, device) if kind in loaders else _load_fitted(kind, path, device)
    probe = torch.zeros(1, *probe_shape, 3, dtype=torch.uint8, device=device)
    with torch.no_grad():
        out = fn(probe)
    if out.ndim != 2:
        raise ObsEncoderError(
            f"The embedder {spec!r} returned shape {tuple(out.shape)} for one frame; it must "
            "return [N, D]."
        )
    return FrameEmbedder(spec=spec, fn=fn, dim=int(out.shape[1]),
                         fingerprint=checkpoint_fingerprint(spec, path), device=device)


def _load_fitted(kind: str, path: Path, device: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """A fitted observation encoder of the registry, frame by frame."""
    from agents.obs import build_obs_encoder

    enc = build_obs_encoder({"kind": kind}, fitted_path=path).to(device).eval()
    if not enc.per_frame:
        raise ObsEncoderError(
            f"The {kind} encoder at {path} reads more than the frame (the stream before it or a "
            "dataset column); only encoders whose features are per frame can write a column."
        )
    return enc.encode_frames


def _load_hf(path: Path, device: str) -> Callable[[torch.Tensor], torch.Tensor]:
    from transformers import AutoImageProcessor, AutoModel

    try:
        model = AutoModel.from_pretrained(str(path), local_files_only=True, dtype=torch.float32)
    except (OSError, ValueError) as e:
        raise ObsEncoderError(
            f"Could not load a transformers model from {path} ({e}); save one there with "
            "model.save_pretrained(dir)."
        ) from e
    try:
        processor = AutoImageProcessor.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as e:
        raise ObsEncoderError(
            f"No image processor in {path} ({e}); save the model's processor next to it with "
            "AutoImageProcessor.from_pretrained(name).save_pretrained(dir)."
        ) from e
    model = model.to(device).eval()

    def embed(frames: torch.Tensor) -> torch.Tensor:
        images = list(frames.cpu().numpy())  # N x [H, W, 3] uint8
        pixel_values = processor(images=images, return_tensors="pt")["pixel_values"]
        pixel_values = pixel_values.to(device, torch.float32)
        if hasattr(model, "get_image_features"):
            out = model.get_image_features(pixel_values=pixel_values)
            return out if isinstance(out, torch.Tensor) else out.pooler_output
        out = model(pixel_values=pixel_values)
        pooled = getattr(out, "pooler_output", None)
        if pooled is not None:
            return pooled.flatten(1)
        h = out.last_hidden_state
        return h.mean(1) if h.ndim == 3 else h.flatten(2).mean(2)  # tokens or [N, C, h, w]

    return embed


def _load_torchscript(path: Path, device: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """Loads a user-named TorchScript file. TRUSTED FILES ONLY: a TorchScript file is a program
    (``torch.jit.load`` runs its code), unlike the safetensors every other loader reads."""
    import warnings

    try:
        with warnings.catch_warnings():  # torch >= 2.10 deprecates TorchScript; it still loads
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(path), map_location=device).eval()
    except RuntimeError as e:
        raise ObsEncoderError(
            f"{path} is not a TorchScript file ({str(e).splitlines()[0]}); write one with "
            "torch.jit.save(torch.jit.script(module), path)."
        ) from e
    return lambda frames: module(to_float_chw(frames))
