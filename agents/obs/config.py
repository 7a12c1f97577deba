"""The observation-encoder registry and the base of every encoder's config (torch-free).

Each encoder is a plugin: a config dataclass (a subclass of :class:`ObsConfig`, in a module
that imports no torch) registered under a kind with :func:`register_obs_encoder`, naming its
encoder class by import path (a string entry point, as gymnasium's ``register`` does), so the
heavy module is imported only when the encoder is built::

    @register_obs_encoder("toy", encoder="my_pkg.toy:ToyEncoder", summary="mean colour")
    @dataclass
    class ToyConfig(ObsConfig):
        gain: float = 1.0

A saved config names its kind and the module that registers it (``"plugin"``), so a checkpoint
reloaded in a fresh process, a spawned worker or a Ray actor imports the plugin by itself; a
kind given as ``"my_pkg.toy:toy"`` imports ``my_pkg.toy`` first (gymnasium's ``"module:Env"``).
The built-in kinds (``cnn``, ``vqvae``, ``units``, ``precomputed``) are imported on first use.
``python -m agents.obs list`` prints the registry.
"""
from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from agents.errors import ObsEncoderError
from byog_core.registry import Registry

OBS_ENCODERS: Registry = Registry(
    "observation encoder", error=ObsEncoderError,
    hint="Add one with @register_obs_encoder(kind, encoder='module:Class') on an ObsConfig "
         "dataclass in a module of yours and name it as 'your.module:kind' (docs/architecture.md).")
"""Observation-encoder kinds -> their config classes (``python -m agents.obs list``)."""
BUILTIN_OBS_ENCODERS: dict[str, str] = {
    "cnn": "agents.obs.cnn_config:CNNConfig",
    "vqvae": "agents.obs.vqvae_config:VQVAEConfig",
    "units": "agents.obs.units_config:UnitsConfig",
    "precomputed": "agents.obs.precomputed_config:PrecomputedConfig",
}
for _kind, _entry in BUILTIN_OBS_ENCODERS.items():  # string entry points: imported on first use
    OBS_ENCODERS.register(_kind, _entry)


@dataclass
class ObsConfig:
    """Options shared by every observation encoder; each plugin subclasses it with its own.

    Class attributes set by :func:`register_obs_encoder`: ``kind``, ``encoder`` (the encoder's
    ``"module:Class"`` entry point), ``summary``; set by the subclass: ``requires_fit`` (fitted
    on data before training), ``uses_previous_frame``, ``needs_column`` (may be properties).
    """

    kind: ClassVar[str] = ""
    encoder: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    requires_fit: ClassVar[bool] = False
    """The encoder must be fitted on data (``fit``) before an agent can use it."""
    uses_previous_frame: ClassVar[bool] = False
    """The encoder reads the frame before each frame (frame deltas)."""
    needs_column: ClassVar[str | None] = None
    """A dataset column the encoder reads instead of pixels (``"embedding"``), or None."""

    out_dim: int | None = None
    """Feature width; None = the encoder's natural width (an error at build time when the
    encoder cannot give the width asked)."""

    def __post_init__(self) -> None:
        if self.out_dim is not None and self.out_dim < 1:
            raise ObsEncoderError(f"out_dim must be a positive width or None, got {self.out_dim}.")

    def __getattr__(self, name: str) -> Any:
        return legacy_attribute(self, name)  # old flat names: cfg.units_k -> cfg.k

    def pseudo_vocabulary(self) -> list[str]:
        """Sentences of the encoder's pseudo-language (``ObsEncoder.pseudo_annotations``), for
        the tokenizer, known before fitting; [] = the encoder has none (the default)."""
        return []

    @property
    def plugin(self) -> str:
        """The module that registers this kind (imported to find it in a fresh process)."""
        return type(self).__module__

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict naming the kind and its plugin; :func:`obs_config_from_dict` inverts it."""
        d = {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}
        return {"kind": self.kind, "plugin": self.plugin, **d}


C = TypeVar("C", bound=type[ObsConfig])


def register_obs_encoder(kind: str, *, encoder: str, summary: str = "") -> Callable[[C], C]:
    """Class decorator: register a config dataclass as the options of encoder ``kind``.

    Args:
        kind: The name configs and flags use (``--model.obs.kind KIND``).
        encoder: ``"module:Class"`` of the encoder (an ``agents.obs.base.ObsEncoder``), imported
            when one is built; its ``from_config(cfg)`` builds it.
        summary: One line for ``python -m agents.obs list``.
    """
    if ":" not in encoder:
        raise ObsEncoderError(f"encoder must be a 'module:Class' entry point, got {encoder!r}.")

    def deco(cls: C) -> C:
        if not (isinstance(cls, type) and issubclass(cls, ObsConfig)):
            raise ObsEncoderError(f"register_obs_encoder({kind!r}) decorates ObsConfig subclasses.")
        cls.kind, cls.encoder, cls.summary = kind, encoder, summary
        where = f"{cls.__module__}:{cls.__qualname__}"
        # a built-in replaces its own string entry; a re-imported plugin module its old class
        old = None if kind in BUILTIN_OBS_ENCODERS or kind not in OBS_ENCODERS else OBS_ENCODERS[kind]
        again = BUILTIN_OBS_ENCODERS.get(kind) == where or (
            old is not None and f"{old.__module__}:{old.__qualname__}" == where)
        OBS_ENCODERS.register(kind, cls, overwrite=again)
        return cls

    return deco


def obs_config_class(kind: str, plugin: str | None = None) -> type[ObsConfig]:
    """The config class registered as ``kind`` (``"module:kind"`` imports ``module`` first).

    Args:
        kind: A registered kind, a built-in one, or ``"module:kind"``.
        plugin: The module that registers ``kind`` (a saved config's ``"plugin"``), imported
            when the kind is not registered yet.

    Raises:
        ObsEncoderError: the plugin cannot be imported, or the kind is unknown (the message
            lists the known kinds).
    """
    if ":" not in kind and kind not in OBS_ENCODERS and plugin:
        kind = f"{plugin}:{kind}"
    return OBS_ENCODERS[kind]


def registered_obs_encoders() -> dict[str, type[ObsConfig]]:
    """Every registered kind (the built-ins imported) -> its config class, sorted by kind."""
    return {kind: OBS_ENCODERS[kind] for kind in OBS_ENCODERS}


def fitted_obs_kinds() -> tuple[str, ...]:
    """The registered kinds whose encoders are fitted on data before training."""
    return tuple(k for k, c in registered_obs_encoders().items() if c.requires_fit)


def obs_config_from_dict(d: dict[str, Any] | ObsConfig) -> ObsConfig:
    """Build the config a dict describes: ``to_dict`` output, a partial dict (defaults fill the
    rest) or an old flat ``ObsEncoderConfig`` dict (``units_k``, ``cnn_frame_delta``, ...).

    Raises:
        ObsEncoderError: an unknown kind, unknown fields (named, with the known ones) or an
            invalid value.
    """
    if isinstance(d, ObsConfig):
        return d
    d = dict(d)
    cls = obs_config_class(str(d.pop("kind", "cnn")), d.pop("plugin", None))
    d = translate_flat_fields(cls.kind, d)
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(d) - set(known))
    if unknown:
        raise ObsEncoderError(
            f"Unknown option(s) {unknown} for the {cls.kind!r} observation encoder; its options "
            f"are {known} (python -m agents.obs list shows every kind's)."
        )
    hints = {f.name: f.type for f in dataclasses.fields(cls)}
    return cls(**{k: tuple(v) if isinstance(v, list) and "tuple" in str(hints[k]) else v
                  for k, v in d.items()})


def ObsEncoderConfig(kind: str = "cnn", **fields: Any) -> ObsConfig:
    """The old flat constructor, kept for callers: ``ObsEncoderConfig(kind="units", units_k=8)``
    builds the ``units`` plugin's config (old ``kind_`` prefixed names or the new ones)."""
    return obs_config_from_dict({"kind": kind, **fields})


ObsEncoderConfig.from_dict = obs_config_from_dict  # type: ignore[attr-defined]


# ---------------------------------------------------------------- old flat names
# Until the registry one flat config held every kind's options behind a prefix (cnn_arch,
# vqvae_hidden, units_k, precomputed_dim) and a tri-state cnn_frame_delta; saved configs still
# use them. <kind>_<field> of the chosen kind becomes <field>; another built-in kind's prefixed
# option is dropped (the flat config stored every kind's defaults, inert). Flags: legacy.py.
def _fields(kind: str) -> set[str]:
    return {f.name for f in dataclasses.fields(obs_config_class(kind))}


def flat_owner(name: str) -> tuple[str, str] | None:
    """``"units_k"`` -> ``("units", "k")`` when it is an old prefixed built-in option."""
    for kind in BUILTIN_OBS_ENCODERS:
        if name.startswith(kind + "_") and name[len(kind) + 1:] in _fields(kind):
            return kind, name[len(kind) + 1:]
    return None


def translate_flat_fields(kind: str, d: dict[str, Any]) -> dict[str, Any]:
    """A dict of ``kind``'s options with old flat names translated (new names win)."""
    out = {k: v for k, v in d.items() if flat_owner(k) is None or k in _fields(kind)}
    for key, value in d.items():
        owner = flat_owner(key) if key not in out else None
        if owner is None or owner[0] != kind:
            continue  # a new name, or another kind's inert old option
        if key == "cnn_frame_delta" and value is None:
            continue  # old tri-state: None meant "on for the cnn", today's default
        out.setdefault(owner[1], value)
    return out


def legacy_attribute(cfg: ObsConfig, name: str) -> Any:
    """``cfg.units_k`` on a units config -> ``cfg.k`` (old attribute names keep reading)."""
    owner = None if name.startswith("__") else flat_owner(name)
    if owner is None or owner[0] != cfg.kind:
        raise AttributeError(f"{type(cfg).__name__!r} object has no attribute {name!r}")
    return getattr(cfg, owner[1])


def positive(cfg: ObsConfig, *names: str) -> None:
    """Raise unless each named integer field of ``cfg`` is >= 1."""
    for name in names:
        value = getattr(cfg, name)
        if value < 1:
            raise ObsEncoderError(f"{cfg.kind}.{name} must be a positive integer, got {value}.")


def one_of(cfg: ObsConfig, name: str, choices: tuple[Any, ...]) -> None:
    """Raise unless field ``name`` of ``cfg`` is one of ``choices``."""
    value = getattr(cfg, name)
    if value not in choices:
        raise ObsEncoderError(
            f"{cfg.kind}.{name} must be one of {', '.join(map(repr, choices))}, got {value!r}.")


def import_obs_plugin(module: str) -> None:
    """Import ``module`` (a plugin registers its kinds on import); one clear error if it fails."""
    try:
        importlib.import_module(module)
    except ImportError as e:
        raise ObsEncoderError(f"Module {module!r} cannot be imported ({type(e).__name__}: {e}); "
                              "install it or put it on PYTHONPATH.") from None


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
