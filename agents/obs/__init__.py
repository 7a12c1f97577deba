"""Observation encoders behind one interface (see :class:`agents.obs.base.ObsEncoder`).

``build_obs_encoder(cfg, fitted_path=...)`` is the one factory the model uses:

* ``cnn``: trainable CNN, ready at once.
* ``vqvae``: a VQ-VAE fitted on the dataset's frames then frozen. With ``fitted_path`` the
  fitted model is loaded; without it an unfitted encoder comes back (``requires_fit``), to be
  fitted with ``encoder.fit(source, steps=...)`` and saved with ``encoder.save(dir)``.
* ``units``: k-means hidden units over frozen features; same fit/save/load pattern.
* ``precomputed``: reads the dataset's ``embedding`` column (``needs_column == "embedding"``),
  written beforehand by ``python -m agents.embed DIR --encoder SPEC``.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from agents.errors import ObsEncoderError
from agents.obs.config import ObsEncoderConfig

if TYPE_CHECKING:
    from agents.obs.base import ObsEncoder

# torch-heavy names load on first use, so the torch-free agents.config can import
# agents.obs.config (which runs this file first) without pulling in torch
_LAZY = {"ObsEncoder": "agents.obs.base", "CNNEncoder": "agents.obs.cnn"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'agents.obs' has no attribute {name!r}")


def build_obs_encoder(cfg: ObsEncoderConfig, *, fitted_path: str | Path | None = None) -> ObsEncoder:
    """Build the observation encoder ``cfg`` describes.

    Args:
        cfg: Encoder config.
        fitted_path: Directory of a fitted ``vqvae``/``units`` encoder (written by its ``save``);
            its saved config wins over ``cfg``'s options of that kind, and ``cfg.out_dim`` (if
            set) must agree with it. Not allowed for ``cnn``/``precomputed``.

    Returns:
        The encoder; ``encoder.requires_fit`` is True when it still has to be fitted.

    Raises:
        ObsEncoderError: bad kind/config, a missing checkpoint, or an incompatible one.
    """
    if fitted_path is not None and cfg.kind in ("cnn", "precomputed"):
        raise ObsEncoderError(
            f"fitted_path is only for 'vqvae' and 'units' encoders; kind {cfg.kind!r} is built "
            "from its config (a cnn is trained with the model and saved in its checkpoint)."
        )
    if cfg.kind == "cnn":
        from agents.obs.cnn import CNNEncoder

        enc: ObsEncoder = CNNEncoder(out_dim=cfg.out_dim or 256, channels=cfg.cnn_channels,
                                     frame_delta=cfg.cnn_frame_delta is not False,
                                     arch=cfg.cnn_arch, patch=cfg.cnn_patch, grid=cfg.cnn_grid)
    elif cfg.kind == "vqvae":
        from agents.obs.vqvae import VQVAEEncoder

        enc = VQVAEEncoder.load(fitted_path) if fitted_path is not None else VQVAEEncoder(cfg)
    elif cfg.kind == "units":
        from agents.obs.units import UnitsEncoder

        enc = UnitsEncoder.load(fitted_path) if fitted_path is not None else UnitsEncoder(cfg)
    else:
        from agents.obs.precomputed import PrecomputedEncoder

        enc = PrecomputedEncoder(cfg)
    if cfg.out_dim is not None and enc.out_dim is not None and enc.out_dim != cfg.out_dim:
        raise ObsEncoderError(
            f"The {cfg.kind} encoder gives features of width {enc.out_dim} but out_dim="
            f"{cfg.out_dim} was asked; leave out_dim unset (None) to use the encoder's width."
        )
    return enc


__all__ = [
    "CNNEncoder",
    "ObsEncoder",
    "ObsEncoderConfig",
    "ObsEncoderError",
    "build_obs_encoder",
]
