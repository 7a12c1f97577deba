"""Crafter annotator: pure rules on Crafter's info dicts (no simulator needed)."""
from __future__ import annotations

from typing import Any

import numpy as np

from byog_env.annotators.base import Info, inventory_events
from byog_env.events import name, sentence

# Ids of crafter's semantic map (crafter 1.8: materials in data.yaml order after None, then the
# object classes the env passes to SemanticView). Checked against the simulator in the tests.
MATERIALS = ("none", "water", "grass", "stone", "path", "sand", "tree", "lava", "coal", "iron",
             "diamond", "table", "furnace")
OBJECTS = ("player", "cow", "zombie", "skeleton", "arrow", "plant")
SEMANTIC_NAMES: tuple[str, ...] = MATERIALS + OBJECTS
SEMANTIC_IDS = {n: i for i, n in enumerate(SEMANTIC_NAMES)}

VITALS = ("health", "food", "drink", "energy")
# Vitals whose rise no other sentence explains (food and drink rise by eating and drinking).
RISING_VITALS = ("health", "energy")
# Things reported when they enter or leave the local view.
VIEW_THINGS = ("zombie", "skeleton", "cow", "water", "lava", "coal", "iron", "diamond", "table",
               "furnace")
# Things reported when the player turns to face them (the ground is not worth a sentence).
FACE_THINGS = frozenset(SEMANTIC_NAMES) - {"none", "grass", "path", "sand", "player"}

_VIEW_IDS = np.array([SEMANTIC_IDS[t] for t in VIEW_THINGS])
# Crafter's local view: 9x7 cells (9x9 view minus 2 inventory rows) centred on the player.
VIEW_HALF = (4, 3)


def visible(semantic: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Presence of each of :data:`VIEW_THINGS` in the local view, bool ``[len(VIEW_THINGS)]``."""
    x, y = int(pos[0]), int(pos[1])
    (hx, hy), (w, h) = VIEW_HALF, semantic.shape
    local = semantic[max(0, x - hx): min(w, x + hx + 1), max(0, y - hy): min(h, y + hy + 1)]
    counts = np.bincount(local.ravel(), minlength=len(SEMANTIC_NAMES))  # [num ids]
    return counts[_VIEW_IDS] > 0


def faced(info: Info) -> str | None:
    """Name of the material or creature in the cell the player faces (``None`` off the map)."""
    semantic, pos = info["semantic"], info["player_pos"]
    facing = info.get("player_facing")
    if facing is None:
        return None
    x, y = int(pos[0]) + int(facing[0]), int(pos[1]) + int(facing[1])
    if not (0 <= x < semantic.shape[0] and 0 <= y < semantic.shape[1]):
        return None
    return SEMANTIC_NAMES[int(semantic[x, y])]


class CrafterAnnotator:
    """Rich, grounded events for Crafter from ``(prev_info, action, info)``.

    Reads the info keys of :class:`byog_env.crafter.CrafterEnv`: ``inventory``,
    ``achievements``, ``semantic``, ``player_pos`` and optionally ``player_facing``,
    ``sleeping``, ``discount``. Events: first unlock of every achievement, made/placed/ate/
    drank/defeated for every achievement counter step, inventory gains and losses, vital drops
    (and health/energy rises), sleeping and waking, things entering or leaving the view, the
    thing faced, death, and the length limit (``time ran out``).
    """

    def __call__(self, prev_info: Info | None, action: Any, info: Info) -> list[str]:
        out: list[str] = []
        prev = prev_info or {}
        made: list[str] = []
        if prev_info is not None:
            out += self._achievement_events(
                prev["achievements"], info["achievements"], made, "sleeping" in info)
            out += inventory_events(prev["inventory"], info["inventory"], made, VITALS)
            out += self._vital_events(prev["inventory"], info["inventory"])
            was, now = bool(prev.get("sleeping", False)), bool(info.get("sleeping", False))
            if now and not was:
                out.append(sentence("sleep"))
            elif was and not now:
                out.append(sentence("wake"))
        thing = faced(info)
        if thing in FACE_THINGS and (prev_info is None or faced(prev) != thing):
            out.append(sentence("face", thing=thing))
        now_seen = visible(info["semantic"], info["player_pos"])
        before = (visible(prev["semantic"], prev["player_pos"]) if prev_info is not None
                  else np.zeros_like(now_seen))
        for i in np.flatnonzero(now_seen != before):
            out.append(sentence("see" if now_seen[i] else "unsee", thing=VIEW_THINGS[i]))
        if info.get("discount", 1.0) == 0 and prev.get("discount", 1.0) != 0:
            out.append(sentence("death"))
        if info.get("truncated"):
            out.append(sentence("done", reason="truncated"))
        return out

    @staticmethod
    def _achievement_events(
        prev: dict, cur: dict, made: list[str], track_sleep: bool
    ) -> list[str]:
        out = []
        for key, count in cur.items():
            before = prev.get(key, 0)
            if count <= before:
                continue
            if before == 0:
                out.append(sentence("achievement", name=name(key)))
            verb, _, obj = key.partition("_")
            if verb == "make":
                made.append(obj)
                out.append(sentence("make", item=name(obj)))
            elif verb == "place":
                out.append(sentence("place", item=name(obj)))
            elif verb == "eat":
                out.append(sentence("eat", thing=name(obj)))
            elif verb == "defeat":
                out.append(sentence("defeat", thing=name(obj)))
            elif key == "collect_drink":
                out.append(sentence("drink", thing="water"))
            elif key == "wake_up" and not track_sleep:
                out.append(sentence("wake"))
            # collect_* items show as inventory gains; with `sleeping` in info, waking shows there.
        return out

    @staticmethod
    def _vital_events(prev: dict, cur: dict) -> list[str]:
        out = []
        for stat in VITALS:
            delta = cur.get(stat, 0) - prev.get(stat, 0)
            if delta < 0:
                out.append(sentence("vital", stat=stat, change="dropped"))
            elif delta > 0 and stat in RISING_VITALS:
                out.append(sentence("vital", stat=stat, change="rose"))
        return out
