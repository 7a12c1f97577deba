"""Observation encoders behind one interface (see :class:`agents.obs.base.ObsEncoder`), found
through a registry (:mod:`agents.obs.config`; ``python -m agents.obs list``).

``build_obs_encoder(cfg, fitted_path=...)`` is the one factory the model uses. Built-in kinds:

* ``cnn``: trainable CNN, ready at once.
* ``vqvae``: a VQ-VAE fitted on the dataset's frames then frozen. With ``fitted_path`` the
  fitted model is loaded; without it an unfitted encoder comes back (``requires_fit``), to be
  fitted with ``encoder.fit(source, steps=...)`` and saved with ``encoder.save(dir)``.
* ``units``: k-means hidden units over frozen features; same fit/save/load pattern.
* ``precomputed``: reads the dataset's ``embedding`` column (``needs_column == "embedding"``),
  written beforehand by ``python -m agents.obs.embed DIR --encoder SPEC``.

Importing this package is cheap (no torch): the encoders load when first used.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agents.obs.config import (
    ObsConfig,
    ObsEncoderConfig,
    ObsEncoderError,
    obs_config_class,
    obs_config_from_dict,
    register_obs_encoder,
    registered_obs_encoders,
)

if TYPE_CHECKING:
    from agents.obs.base import ObsEncoder
    from agents.obs.cnn import CNNEncoder


def encoder_class(cfg: ObsConfig) -> type[ObsEncoder]:
    """Import the encoder class ``cfg``'s kind names (its ``"module:Class"`` entry point)."""
    module, _, name = type(cfg).encoder.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise ObsEncoderError(
            f"The {cfg.kind!r} observation encoder's class {type(cfg).encoder!r} cannot be "
            f"imported ({type(e).__name__}: {e}); install its package or fix its registration."
        ) from None


def build_obs_encoder(cfg: ObsConfig | dict[str, Any], *,
                      fitted_path: str | Path | None = None) -> ObsEncoder:
    """Build the observation encoder ``cfg`` describes.

    Args:
        cfg: The encoder's config (or a dict for :func:`obs_config_from_dict`).
        fitted_path: Directory of a fitted encoder (written by its ``save``); its saved config
            wins over ``cfg``'s options, and ``cfg.out_dim`` (if set) must agree with it. Only
            for encoders that are fitted on data (``requires_fit``).

    Returns:
        The encoder; ``encoder.requires_fit`` is True when it still has to be fitted.

    Raises:
        ObsEncoderError: bad kind/config, a missing checkpoint, or an incompatible one.
    """
    cfg = obs_config_from_dict(cfg)
    cls = encoder_class(cfg)
    if fitted_path is not None:
        if not cfg.requires_fit:
            raise ObsEncoderError(
                f"fitted_path is only for encoders fitted on data (vqvae, units); kind "
                f"{cfg.kind!r} is built from its config (a cnn is trained with the model and "
                "saved in its checkpoint).")
        from agents.obs.base import read_fitted_config

        read_fitted_config(fitted_path, cfg.kind)  # a clear error for another kind's directory
        enc = cls.load(fitted_path)  # type: ignore[attr-defined]
    else:
        enc = cls.from_config(cfg)
    if cfg.out_dim is not None and enc.out_dim is not None and enc.out_dim != cfg.out_dim:
        raise ObsEncoderError(
            f"The {cfg.kind} encoder gives features of width {enc.out_dim} but out_dim="
            f"{cfg.out_dim} was asked; leave out_dim unset (None) to use the encoder's width."
        )
    return enc


_LAZY = {"ObsEncoder": "agents.obs.base", "CNNEncoder": "agents.obs.cnn"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'agents.obs' has no attribute {name!r}")


__all__ = [
    "CNNEncoder",
    "ObsConfig",
    "ObsEncoder",
    "ObsEncoderConfig",
    "ObsEncoderError",
    "build_obs_encoder",
    "encoder_class",
    "obs_config_class",
    "obs_config_from_dict",
    "register_obs_encoder",
    "registered_obs_encoders",
]
