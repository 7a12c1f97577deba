"""The built-in env families and annotators, registered like any plugin (nothing heavy imported).

Adding a family is one such ``register_family`` call in your own module (see
``docs/architecture.md``, "How to add an env"); nothing here needs editing.
"""
from __future__ import annotations

import importlib.util
import re
import sys
from functools import lru_cache
from pathlib import Path

from byog_env.registry import GENERIC, EnvId, register_annotator, register_family

_VERSION = re.compile(r"-v\d+$")


@lru_cache(maxsize=1)
def upstream_grid_ids() -> tuple[str, ...]:
    """Every BabyAI/MiniGrid id the installed ``minigrid`` registers, without importing it.

    Importing ``minigrid`` costs ~0.2 s, so the ids are read from the ``register(id="…")`` calls
    in the text of its ``__init__.py`` (~1 ms; parsing it costs 30 ms) (checked against the real registry in the tests); once ``minigrid`` is
    imported its registry is used. ``MiniGrid-WFC-*`` ids are left out: they fail at construction
    here (their pattern images are not in the wheel).
    """
    if "minigrid" in sys.modules:
        import gymnasium as gym

        ids = list(gym.registry)
    else:
        spec = importlib.util.find_spec("minigrid")
        if spec is None or spec.origin is None:
            return ()
        text = Path(spec.origin).read_text(encoding="utf-8")
        ids = re.findall(r"""\bregister\(\s*(?:id\s*=\s*)?["']([^"']+)["']""", text)
    return tuple(sorted(i for i in ids if i.startswith(("BabyAI-", "MiniGrid-"))
                        and not i.startswith("MiniGrid-WFC-")))


def _grid_ids(prefix: str) -> list[EnvId]:
    ids = [EnvId(_VERSION.sub("", i).lower(), f"byog/{i}", {"env_id": i}, aliases=(i,))
           for i in upstream_grid_ids() if i.startswith(prefix)]
    return sorted(ids, key=lambda e: (e.name, e.version))


def babyai_ids() -> list[EnvId]:
    """``babyai-gotolocal`` -> ``byog/BabyAI-GoToLocal-v0``, … (every BabyAI level)."""
    return _grid_ids("BabyAI-")


def minigrid_ids() -> list[EnvId]:
    """``minigrid-empty-8x8`` -> ``byog/MiniGrid-Empty-8x8-v0``, … (every MiniGrid level)."""
    return _grid_ids("MiniGrid-")


# Short MineRL task name -> MineRL gym id (0.4 tasks; ``humansurvival`` is MineRL 1.0).
MINERL_TASKS: dict[str, str] = {
    "treechop": "MineRLTreechop-v0",
    "navigate": "MineRLNavigate-v0",
    "navigatedense": "MineRLNavigateDense-v0",
    "navigateextreme": "MineRLNavigateExtreme-v0",
    "obtainironpickaxe": "MineRLObtainIronPickaxe-v0",
    "obtainironpickaxedense": "MineRLObtainIronPickaxeDense-v0",
    "obtaindiamond": "MineRLObtainDiamond-v0",
    "obtaindiamonddense": "MineRLObtainDiamondDense-v0",
    "humansurvival": "MineRLHumanSurvival-v0",
}


def register_builtins() -> None:
    """Registers the built-in annotators and families (idempotent)."""
    for name, path in {
        "crafter": "byog_env.annotators.crafter:CrafterAnnotator",
        "minigrid": "byog_env.annotators.minigrid:MiniGridAnnotator",
        "minerl": "byog_env.annotators.minerl:MineRLAnnotator",
        GENERIC: "byog_env.annotators.base:GenericAnnotator",
    }.items():
        register_annotator(name, path)
    register_family("crafter", "byog_env.crafter:make_crafter",
                    ids=[EnvId("crafter", "byog/Crafter-v0")], annotator="crafter",
                    info_columns=("achievements",), success="none", requires="crafter",
                    tile_size=7,  # crafter draws unit = 64 // 9 = 7 px tiles from (0, 0)
                    daylight="byog_env.crafter:daylight", policy="crafter-scripted",
                    symbolic="byog_env.symbolic:crafter_symbolic",
                    live_step_cap=500,  # its own limit is 10,000 steps: too long to evaluate live
                    collect_step_s=0.004)
    # MiniGrid/BabyAI draw ceil(64 / cells) px tiles, padded and area-resized to the frame
    # (byog_env.babyai.MiniGridRGB): aligned only for 8-cell views, so no family-wide grid.
    for name, ids in (("babyai", "byog_env.families:babyai_ids"),
                      ("minigrid", "byog_env.families:minigrid_ids")):
        register_family(name, "byog_env.babyai:make_minigrid", ids=ids, annotator="minigrid",
                        info_columns=("mission",), requires="minigrid", policy="babyai-bot",
                        symbolic="byog_env.symbolic:babyai_symbolic", collect_step_s=0.002)
    register_family("minerl", "byog_env.minerl:make_minerl", annotator="minerl", requires="minerl",
                    ids=[EnvId(f"minerl-{t}", f"byog/{i}", {"task": t}, aliases=(i,))
                         for t, i in MINERL_TASKS.items()])
    # Any other registered gymnasium id with rgb_array rendering (resolved by make, never listed).
    register_family(GENERIC, "byog_env.generic:make_generic", ids=(), annotator=GENERIC)
