"""One registry from short names (``crafter``, ``babyai-gotolocal``, ``minigrid-empty-8x8``,
``minerl-treechop``) or full gymnasium ids to annotated envs."""
from __future__ import annotations

import difflib
import re
from typing import Any

import gymnasium as gym

CRAFTER_ID = "byog/Crafter-v0"
_VERSION = re.compile(r"-v(\d+)$")


class UnknownEnvError(gym.error.UnregisteredEnv, ValueError):
    """The name is neither a BYOG short name nor a registered gymnasium id."""


def register_gymnasium_ids() -> None:
    """Registers ``byog/Crafter-v0`` with gymnasium (string entry point: imports on make)."""
    if CRAFTER_ID not in gym.registry:
        gym.register(CRAFTER_ID, entry_point="byog_env.crafter:make_crafter")


def _short(env_id: str) -> str:
    """``BabyAI-GoToLocal-v0`` -> ``babyai-gotolocal``; ``MiniGrid-Empty-8x8-v0`` ->
    ``minigrid-empty-8x8``."""
    return _VERSION.sub("", env_id).lower()


def _minigrid_ids() -> dict[str, str]:
    """Short name -> newest registered id, for every BabyAI and MiniGrid level."""
    import minigrid  # noqa: F401  (registers the ids)

    best: dict[str, tuple[int, str]] = {}
    for env_id in gym.registry:
        # MiniGrid-WFC-* fail at construction here (FileNotFoundError: their pattern images are
        # not in the minigrid wheel), so they are not listed; their full ids still route here.
        if env_id.startswith(("BabyAI-", "MiniGrid-")) and not env_id.startswith("MiniGrid-WFC-"):
            m = _VERSION.search(env_id)
            version = int(m.group(1)) if m else 0
            short = _short(env_id)
            if short not in best or version > best[short][0]:
                best[short] = (version, env_id)
    return {short: env_id for short, (_, env_id) in best.items()}


def list_envs() -> list[str]:
    """Every short name ``make`` accepts besides full gymnasium ids, sorted within families:
    ``crafter``, the BabyAI levels, the MiniGrid levels, the MineRL tasks."""
    from byog_env.minerl import TASKS

    grid = sorted(_minigrid_ids())
    return (["crafter"] + [n for n in grid if n.startswith("babyai-")]
            + [n for n in grid if n.startswith("minigrid-")]
            + [f"minerl-{t}" for t in TASKS])


def make(name: str, **kwargs: Any) -> gym.Env:
    """Builds an annotated env from a short name or a gymnasium id.

    Args:
        name: ``crafter``, ``babyai-<level>``, ``minigrid-<id>``, ``minerl-<task>``, or any
            registered gymnasium id (BabyAI/MiniGrid/MineRL ids get their family's annotator,
            others the generic reward/termination annotator and frames from ``render()``).
        **kwargs: Family options: ``max_episode_steps`` for all; Crafter ``size``, ``length``,
            ``reward``, ``seed``; BabyAI/MiniGrid ``view="full"|"agent"``, ``size``;
            MineRL ``size``; generic ``size`` and ``gymnasium.make`` kwargs.

    Raises:
        UnknownEnvError: Unknown name; the message lists close matches.
        gymnasium.error.DependencyNotInstalled: A MineRL task without the ``minerl`` extra.
    """
    key = name.strip()
    low = key.lower()
    if low in ("crafter", CRAFTER_ID.lower()):
        from byog_env.crafter import make_crafter

        return make_crafter(**kwargs)
    if low.startswith("minerl-") or key.startswith("MineRL"):
        from byog_env.minerl import TASKS, make_minerl

        task = low[len("minerl-"):] if low.startswith("minerl-") else key
        if task not in TASKS and task not in TASKS.values():
            raise _unknown(name, [f"minerl-{t}" for t in TASKS])
        return make_minerl(task, **kwargs)
    if low.startswith(("babyai-", "minigrid-")):
        from byog_env.babyai import make_minigrid

        ids = _minigrid_ids()
        env_id = ids.get(low) or next((i for i in gym.registry if i.lower() == low), None)
        if env_id is None:
            raise _unknown(name, list(ids))
        return make_minigrid(env_id, **kwargs)
    if key in gym.registry:
        from byog_env.generic import make_generic

        return make_generic(key, **kwargs)
    raise _unknown(name, list_envs() + list(gym.registry))


def _unknown(name: str, candidates: list[str]) -> UnknownEnvError:
    close = difflib.get_close_matches(name.lower(), [c.lower() for c in candidates], n=5, cutoff=0.5)
    by_low = {c.lower(): c for c in candidates}
    hint = ", ".join(by_low[c] for c in close) if close else "none"
    return UnknownEnvError(
        f"Unknown environment {name!r}. Close matches: {hint}. "
        "Run `python -m byog_env list` for the short names, or pass a registered gymnasium id."
    )
