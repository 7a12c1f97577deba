"""Registries of env families and annotators, by import path (gymnasium's ``register`` style).

An **env family** (:class:`EnvFamily`) is a factory that builds annotated envs, the ids it
offers (short name, ``byog/…`` gymnasium id, aliases), its annotator, and the info keys its
episodes carry into the dataset (``info_columns``). Everything is named by ``"module:attr"``
strings, so registering imports nothing heavy and a spawned process finds a plugin again from
the env name alone: ``make("my_pkg.envs:toy")`` imports ``my_pkg.envs`` (which registers the
``toy`` family) and then builds ``toy`` — the same rule as ``gymnasium.make("module:Env-v0")``.

Every family id is registered with gymnasium too (``byog/Crafter-v0``,
``byog/BabyAI-GoToLocal-v0``, …; MineRL ids only when ``minerl`` is installed), and the env
:func:`make` returns carries that ``spec``, so ``gymnasium.make(env.spec)`` (or Minari's
``recover_environment``) rebuilds the same annotated env.
"""
from __future__ import annotations

import difflib
import importlib
import importlib.util
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import gymnasium as gym
from gymnasium.envs.registration import EnvSpec, load_env_creator

from byog_core.registry import Registry
from byog_core.registry import entry_point as entry_point_of
from byog_env.errors import EnvError, PluginImportError, RegistryError, UnknownEnvError

_VERSION = re.compile(r"-v(\d+)$")


@dataclass(frozen=True)
class EnvId:
    """One env a family offers."""

    name: str
    """Short name (``crafter``, ``babyai-gotolocal``); several versions may share one, the
    newest wins."""
    gym_id: str
    """The gymnasium id it is registered under (``byog/Crafter-v0``)."""
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    """Passed to the family's entry point before the caller's kwargs."""
    aliases: tuple[str, ...] = ()
    """More names ``make`` accepts (e.g. the unannotated upstream id ``BabyAI-GoToLocal-v0``)."""

    @property
    def version(self) -> int:
        m = _VERSION.search(self.gym_id)
        return int(m.group(1)) if m else 0


@dataclass(frozen=True)
class EnvFamily:
    """A registered env family; see :func:`register_family`."""

    name: str
    entry_point: str
    """``"module:callable"`` building one annotated env from ``EnvId.kwargs`` + caller kwargs."""
    ids: str | tuple[EnvId, ...]
    """The family's ids, or ``"module:callable"`` returning them (for long, computed lists)."""
    annotator: str
    """Name of the registered annotator the family's envs apply (see :func:`register_annotator`)."""
    info_columns: tuple[str, ...] = ()
    """Info keys of the last step recorded per episode in the dataset (``achievements``,
    ``mission``); a dict of counts is recorded as the sorted names with a positive count."""
    success: Literal["info_or_reward", "none"] = "info_or_reward"
    """How an episode's ``success`` is recorded: ``info["success"]`` when the env gives it,
    else "terminated with a positive last reward"; ``none``: the family has no notion of success."""
    requires: str | None = None
    """Top-level module the simulator needs; its ids are registered with gymnasium only when it
    is installed (``make`` then raises ``DependencyNotInstalled`` with the install command)."""
    tile_size: int | None = None
    """Side in pixels of the square tiles the family's frames are drawn from, aligned with the
    frame's top-left corner, at its default frame size (Crafter: 7, a 9x9 grid of 7x7 tiles in
    its 64x64 frame); None when frames have no fixed pixel grid. Read by the grid tokenizer of
    the imagination world model (``--world-model.tokens grid``)."""
    daylight: str | None = None
    """``"module:callable"`` mapping an episode's step indices (int array) to the daylight its
    frames are drawn at (1 day .. 0 night); None when the family has no day cycle. Results
    read it to report day and night frames separately."""

    policy: str | None = None
    """The registered collector policy a study collects this family's expert episodes with
    (``crafter-scripted``, ``babyai-bot``); None: no expert, and a study refuses the family."""
    symbolic: str | None = None
    """``"module:callable"`` mapping a live env to its symbolic state (a float32 vector: what a
    perfect perception would give an action head; the studies' ``oracle-symbolic`` arm)."""
    live_step_cap: int | None = None
    """Most steps of a live evaluation when a study sets none (Crafter: 500, its own limit being
    10,000); None: the env's own limit."""
    collect_step_s: float = 0.003
    """About how many seconds one collected step (policy + render + annotation) costs on one
    core: a study's ETA hint, never a result."""

    def expert_policy(self) -> str:
        """:attr:`policy`, or one error naming how to register it."""
        if self.policy is None:
            raise EnvError(f"Env family {self.name!r} registers no expert policy, so a study cannot "
                           "collect its episodes; pass policy='NAME' (a registered collector policy) "
                           "to register_family.")
        return self.policy

    def symbolic_state(self) -> Callable[[Any], Any]:
        """The :attr:`symbolic` function, or one error naming how to register it."""
        if self.symbolic is None:
            raise EnvError(f"Env family {self.name!r} registers no symbolic state; pass "
                           "symbolic='module:callable' (env -> float32 vector) to register_family.")
        return _load(self.symbolic, f"the symbolic state of env family {self.name!r}")

    def daylight_at(self, steps: Any) -> Any:
        """Daylight (float array) of frames at episode ``steps``, or None without a day cycle."""
        if self.daylight is None:
            return None
        return _load(self.daylight, f"the daylight of env family {self.name!r}")(steps)

    def env_ids(self) -> tuple[EnvId, ...]:
        """The family's ids (imports the ``ids`` callable's module if given by path)."""
        if isinstance(self.ids, str):
            return tuple(_load(self.ids, f"the ids of env family {self.name!r}")())
        return self.ids

    def installed(self) -> bool:
        return self.requires is None or importlib.util.find_spec(self.requires) is not None

    def episode_fields(self, info: Mapping[str, Any], *, terminated: bool,
                       reward: float) -> dict[str, Any]:
        """Per-episode dataset fields from the episode's last step.

        Args:
            info: The last step's info.
            terminated: Whether the episode terminated (not truncated) there.
            reward: The last step's reward.

        Returns:
            ``success`` (bool or None) plus each of ``info_columns`` the info holds.

        >>> from byog_env import family
        >>> family("crafter").episode_fields({"achievements": {"wake_up": 1, "eat_cow": 0}},
        ...                                   terminated=False, reward=0.0)
        {'achievements': ['wake_up'], 'success': None}
        """
        out: dict[str, Any] = {}
        for key in self.info_columns:
            if key in info:
                out[key] = _record_value(info[key])
        if self.success == "none":
            out["success"] = None
        else:
            out["success"] = (bool(info["success"]) if "success" in info
                              else bool(terminated and reward > 0))
        return out


def _record_value(value: Any) -> Any:
    """An info value as a JSON-friendly episode field (counts dict -> names with count > 0)."""
    if isinstance(value, Mapping):
        return sorted(str(k) for k, v in value.items() if int(v) > 0)
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


_FAMILIES: Registry[EnvFamily] = Registry(
    "env family", error=RegistryError, unknown=UnknownEnvError,
    hint="Register one with byog_env.register_family (docs/architecture.md, \"How to add an env\").")
_ANNOTATORS: Registry[Any] = Registry(
    "annotator", error=RegistryError, unknown=UnknownEnvError,
    hint="Register one with byog_env.register_annotator(name, 'module:Class').")
_INDEX: dict[str, tuple[EnvFamily, EnvId]] | None = None
GENERIC = "generic"


def register_annotator(name: str, entry_point: str, *, replace: bool = False) -> None:
    """Registers an annotator class (``"module:Class"``, built with no arguments) under ``name``.

    Raises:
        RegistryError: ``name`` is taken by another entry point (pass ``replace=True``), or the
            entry point is not ``"module:attr"``.
    """
    _check_entry_point(entry_point, f"annotator {name!r}")
    if not replace and name in _ANNOTATORS and entry_point_of(_ANNOTATORS.entry(name)) != entry_point:
        raise RegistryError(f"Annotator {name!r} is already registered as "
                            f"{entry_point_of(_ANNOTATORS.entry(name))!r}; pick another name or pass replace=True.")
    _ANNOTATORS.register(name, entry_point, overwrite=True)


def make_annotator(name: str) -> Callable[..., list[str]]:
    """A fresh annotator registered under ``name`` (or given as ``"module:Class"``).

    Raises:
        UnknownEnvError: No such annotator; the message lists the registered ones.
    """
    if ":" in name and name not in _ANNOTATORS:  # a class by import path, registered or not
        return _load(name, f"annotator {name!r}")()
    return _load(entry_point_of(_ANNOTATORS.entry(name)), f"annotator {name!r}")()


def list_annotators() -> dict[str, str]:
    """Registered annotators: name -> ``"module:Class"``."""
    return {name: entry_point_of(_ANNOTATORS.entry(name)) for name in _ANNOTATORS}


def register_family(
    name: str, entry_point: str, *, ids: str | Iterable[EnvId], annotator: str,
    info_columns: Iterable[str] = (), success: Literal["info_or_reward", "none"] = "info_or_reward",
    requires: str | None = None, tile_size: int | None = None, daylight: str | None = None,
    policy: str | None = None, symbolic: str | None = None, live_step_cap: int | None = None,
    collect_step_s: float = 0.003, replace: bool = False,
) -> EnvFamily:
    """Registers an env family and its ids (with gymnasium too, where installed).

    Args:
        name: Family name (``crafter``, ``babyai``).
        entry_point: ``"module:callable"``; called with ``EnvId.kwargs`` and the caller's
            kwargs, it returns an env whose info carries ``annotations`` (wrap the raw env in
            :class:`byog_env.AnnotatedEnv` with the family's annotator).
        ids: :class:`EnvId` s, or ``"module:callable"`` returning them.
        annotator: A registered annotator name.
        info_columns, success, requires, tile_size, daylight: See :class:`EnvFamily`.
        policy, symbolic, live_step_cap, collect_step_s: The facts a study reads (see
            :class:`EnvFamily`).
        replace: Allow re-registering ``name`` with different settings.

    Raises:
        RegistryError: Malformed entry point, unknown annotator, or a clashing registration.

    >>> import byog_env
    >>> byog_env.family("babyai").info_columns
    ('mission',)
    """
    global _INDEX
    _check_entry_point(entry_point, f"env family {name!r}")
    if tile_size is not None and (isinstance(tile_size, bool) or not isinstance(tile_size, int)
                                  or tile_size < 1):
        raise RegistryError(f"Env family {name!r}: tile_size must be a positive int or None, got "
                            f"{tile_size!r}.")
    for path, what in ((daylight, "daylight"), (symbolic, "symbolic state")):
        if path is not None:
            _check_entry_point(path, f"the {what} of env family {name!r}")
    if live_step_cap is not None and (isinstance(live_step_cap, bool) or not isinstance(live_step_cap, int)
                                      or live_step_cap < 1):
        raise RegistryError(f"Env family {name!r}: live_step_cap must be a positive int or None, got "
                            f"{live_step_cap!r}.")
    if annotator not in _ANNOTATORS:
        raise RegistryError(f"Env family {name!r} names annotator {annotator!r}, which is not "
                            f"registered; call register_annotator first (registered: {', '.join(sorted(_ANNOTATORS))}).")
    fam = EnvFamily(name, entry_point, ids if isinstance(ids, str) else tuple(ids), annotator,
                    tuple(info_columns), success, requires, tile_size, daylight, policy, symbolic,
                    live_step_cap, float(collect_step_s))
    if not replace and name in _FAMILIES and _FAMILIES[name] != fam:
        raise RegistryError(f"Env family {name!r} is already registered with other settings; "
                            "pick another name or pass replace=True.")
    _FAMILIES.register(name, fam, overwrite=True)
    _INDEX = None
    if fam.installed():
        _register_with_gymnasium(fam)
    return fam


def _register_with_gymnasium(fam: EnvFamily) -> None:
    for eid in fam.env_ids():
        spec = gym.registry.get(eid.gym_id)
        if spec is None or spec.entry_point != fam.entry_point:
            gym.registry.pop(eid.gym_id, None)
            gym.register(eid.gym_id, entry_point=fam.entry_point, kwargs=dict(eid.kwargs))


def families() -> dict[str, EnvFamily]:
    """Registered env families by name, in registration order."""
    return {name: _FAMILIES[name] for name in _FAMILIES.registration_order()}


def family(name: str) -> EnvFamily:
    """The family registered as ``name``, or the family of env name ``name`` (``make``'s rules).

    Raises:
        UnknownEnvError: Neither a family nor an env name.
    """
    if name in _FAMILIES:
        return _FAMILIES[name]
    return resolve(name)[0]


def _index() -> dict[str, tuple[EnvFamily, EnvId]]:
    """Lower-cased name -> (family, id): gymnasium ids and aliases, then short names (newest)."""
    global _INDEX
    if _INDEX is None:
        index: dict[str, tuple[EnvFamily, EnvId]] = {}
        newest: dict[str, tuple[EnvFamily, EnvId]] = {}
        for fam in families().values():
            for eid in fam.env_ids():
                for key in (eid.gym_id, *eid.aliases):
                    index.setdefault(key.lower(), (fam, eid))
                best = newest.get(eid.name.lower())
                if best is None or eid.version > best[1].version:
                    newest[eid.name.lower()] = (fam, eid)
        _INDEX = {**newest, **index}
    return _INDEX


def resolve(name: str) -> tuple[EnvFamily, EnvId]:
    """The family and id ``make(name)`` builds (``module:`` prefixes are imported first).

    Raises:
        UnknownEnvError: Unknown name (the message lists close matches).
        PluginImportError: The ``module:`` prefix cannot be imported.
    """
    key = _import_prefix(name.strip())
    hit = _index().get(key.lower())
    if hit is not None:
        return hit
    if key in gym.registry:
        return _FAMILIES[GENERIC], EnvId(key, key, {"env_id": key})
    raise _unknown(name, list_envs() + list(gym.registry))


def _import_prefix(name: str) -> str:
    """``"pkg.mod:toy"`` -> imports ``pkg.mod`` (registering its families) and returns ``toy``."""
    if ":" not in name:
        return name
    module, _, rest = name.partition(":")
    import_plugin(module, f"env {name!r}")
    return rest


def import_plugin(module: str, named_by: str = "--plugin") -> None:
    """Imports ``module`` so the families and annotators it registers become available.

    Raises:
        PluginImportError: It cannot be imported (the message says what named it).
    """
    try:
        importlib.import_module(module)
    except ImportError as err:
        raise PluginImportError(
            f"Cannot import module {module!r} named by {named_by} ({type(err).__name__}: {err}); "
            "install the package that provides it or put its directory on PYTHONPATH."
        ) from None


def list_envs() -> list[str]:
    """Every short name ``make`` accepts besides full ids, family by family, sorted within one:
    ``crafter``, the BabyAI levels, the MiniGrid levels, the MineRL tasks, then plugins."""
    out: list[str] = []
    for fam in families().values():
        out += list(dict.fromkeys(eid.name for eid in fam.env_ids()))
    return out


def make(name: str, max_episode_steps: int | None = None, **kwargs: Any) -> gym.Env:
    """Builds an annotated env from a short name, a ``byog/…`` or upstream gymnasium id, or
    ``"module:name"`` (imports ``module`` first, so plugin families register themselves).

    Args:
        name: ``crafter``, ``babyai-<level>``, ``minigrid-<id>``, ``minerl-<task>``, a plugin
            family's name, or any registered gymnasium id (ids of no family get the generic
            reward/termination annotator and frames from ``render()``; a foreign id given as
            ``"module:Env-v0"`` is made as is, for envs that annotate themselves).
        max_episode_steps: Step limit (``None``: the family's default).
        **kwargs: Family options: Crafter ``size``, ``length``, ``reward``, ``seed``;
            BabyAI/MiniGrid ``view="full"|"agent"``, ``size``; MineRL ``size``; generic ``size``
            and ``gymnasium.make`` kwargs.

    Returns:
        The env; for family envs ``env.spec`` is the family's ``byog/…`` id with these kwargs.

    Raises:
        UnknownEnvError: Unknown name; the message lists close matches.
        PluginImportError: A ``module:`` prefix that cannot be imported.
        gymnasium.error.DependencyNotInstalled: A MineRL task without the ``minerl`` extra.
    """
    if max_episode_steps is not None:
        kwargs["max_episode_steps"] = int(max_episode_steps)
    key = _import_prefix(name.strip())
    if key != name.strip() and key.lower() not in _index() and key in gym.registry:
        return gym.make(key, **kwargs)  # "module:Env-v0": a self-annotating gymnasium env
    fam, eid = resolve(key)
    merged = {**eid.kwargs, **kwargs}
    env = _load(fam.entry_point, f"env family {fam.name!r}")(**merged)
    if fam.name != GENERIC:
        # What gymnasium.make(eid.gym_id, **kwargs) sets: specs rebuild the annotated env.
        env.unwrapped.spec = EnvSpec(
            id=eid.gym_id, entry_point=fam.entry_point, kwargs=merged, order_enforce=False,
            disable_env_checker=True, max_episode_steps=None,
        )
    return env


def action_names(env: gym.Env) -> list[str] | None:
    """Names of a Discrete action space, index = action, from the env's own convention:
    ``get_action_meanings()`` (ALE, Crafter) or MiniGrid's ``actions`` enum; None otherwise.

    >>> import byog_env
    >>> byog_env.action_names(byog_env.make("babyai-gotolocal"))[:3]
    ['left', 'right', 'forward']
    """
    import enum

    u = env.unwrapped
    if not isinstance(env.action_space, gym.spaces.Discrete):
        return None
    if callable(getattr(u, "get_action_meanings", None)):
        names = [str(a) for a in u.get_action_meanings()]
    elif isinstance(getattr(u, "actions", None), type) and issubclass(u.actions, enum.Enum):
        names = [a.name for a in sorted(u.actions, key=lambda a: a.value)]
    else:
        return None
    return names if len(names) == int(env.action_space.n) else None


def _check_entry_point(entry_point: str, what: str) -> None:
    if not isinstance(entry_point, str) or entry_point.count(":") != 1:
        raise RegistryError(f"The entry point of {what} must be a 'module:attr' string; got {entry_point!r}.")


def _load(entry_point: str, what: str) -> Any:
    try:
        return load_env_creator(entry_point)
    except (ImportError, AttributeError) as err:
        raise PluginImportError(f"Cannot load {entry_point!r} ({what}): {type(err).__name__}: {err}.") from None


def _unknown(name: str, candidates: list[str]) -> UnknownEnvError:
    close = difflib.get_close_matches(name.lower(), [c.lower() for c in candidates], n=5, cutoff=0.5)
    by_low = {c.lower(): c for c in candidates}
    hint = ", ".join(by_low[c] for c in close) if close else "none"
    return UnknownEnvError(
        f"Unknown environment {name!r}. Close matches: {hint}. "
        "Run `python -m byog_env list` for the short names, or pass a registered gymnasium id."
    )
