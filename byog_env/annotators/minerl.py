"""MineRL annotator and the conversion of MineRL observation dicts into its info.

Usable without MineRL: the VPT/MineRL dataset importers call :func:`minerl_info` (live or
recorded observation dicts) or :func:`info_from_inventory` (flat recorded counts) and then
:class:`MineRLAnnotator` on consecutive infos.

The info this annotator reads (every key optional except ``inventory``):
``inventory`` ``{item: int}``; ``mainhand`` item type (``"none"`` when empty);
``life``, ``food``, ``air`` floats; ``is_alive`` bool; ``biome_id`` int;
``stats`` ``{stat: {item_or_entity: int}}`` for ``mine_block``, ``craft_item``, ``pickup``,
``use_item``, ``kill_entity``; plus ``terminated``/``truncated`` from :class:`AnnotatedEnv`.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from byog_env.annotators.base import Info, done_events, inventory_events
from byog_env.events import name, sentence

STATS = ("mine_block", "craft_item", "pickup", "use_item", "kill_entity")
_EMPTY_HAND = frozenset({"none", "air", "other", ""})
# Minecraft Java 1.16 numeric biome ids (MineRL 1.0 ``location_stats.biome_id``).
BIOMES: dict[int, str] = {
    0: "ocean", 1: "plains", 2: "desert", 3: "mountains", 4: "forest", 5: "taiga", 6: "swamp",
    7: "river", 8: "nether wastes", 9: "the end", 10: "frozen ocean", 11: "frozen river",
    12: "snowy tundra", 13: "snowy mountains", 14: "mushroom fields", 15: "mushroom field shore",
    16: "beach", 17: "desert hills", 18: "wooded hills", 19: "taiga hills", 20: "mountain edge",
    21: "jungle", 22: "jungle hills", 23: "jungle edge", 24: "deep ocean", 25: "stone shore",
    26: "snowy beach", 27: "birch forest", 28: "birch forest hills", 29: "dark forest",
    30: "snowy taiga", 31: "snowy taiga hills", 32: "giant tree taiga",
    33: "giant tree taiga hills", 34: "wooded mountains", 35: "savanna", 36: "savanna plateau",
    37: "badlands", 38: "wooded badlands plateau", 39: "badlands plateau", 44: "warm ocean",
    45: "lukewarm ocean", 46: "cold ocean", 47: "deep warm ocean", 48: "deep lukewarm ocean",
    49: "deep cold ocean", 50: "deep frozen ocean",
}


def biome_name(biome_id: int) -> str:
    """Name of a Minecraft biome id (``"biome 129"`` for ids outside the table)."""
    return BIOMES.get(int(biome_id), f"biome {int(biome_id)}")


def _scalar(value: Any) -> Any:
    """Unwraps 0-d numpy arrays / numpy scalars into Python numbers or strings."""
    if isinstance(value, np.ndarray):
        value = value.item() if value.size == 1 else value
    if isinstance(value, np.generic):
        value = value.item()
    return value


def _counts(mapping: Mapping[str, Any] | None) -> dict[str, int]:
    return {str(k): int(_scalar(v)) for k, v in (mapping or {}).items()}


def parse_stat_key(key: str) -> tuple[str, str] | None:
    """Splits a VPT/Minecraft stat key ``"minecraft.mine_block:minecraft.oak_log"``.

    Returns:
        ``("mine_block", "oak_log")``, or ``None`` for keys of another shape.
    """
    stat, sep, target = key.partition(":")
    if not sep:
        return None
    return stat.rsplit(".", 1)[-1], target.rsplit(".", 1)[-1].rsplit(":", 1)[-1]


def info_from_inventory(
    inventory: Mapping[str, Any], *, mainhand: str | None = None,
    stats: Mapping[str, Any] | None = None, life: float | None = None,
    food: float | None = None, air: float | None = None, is_alive: bool | None = None,
    biome_id: int | None = None,
) -> dict[str, Any]:
    """Builds the annotator's info from flat recorded values.

    Args:
        inventory: Flat ``{item: count}`` (``"minecraft:"`` prefixes are stripped).
        mainhand: Item type held in the main hand.
        stats: Either nested ``{stat: {target: n}}`` or flat VPT keys
            ``{"minecraft.mine_block:minecraft.oak_log": n}``.
        life, food, air, is_alive, biome_id: Vital and location values where recorded.
    """
    info: dict[str, Any] = {
        "inventory": {k.rsplit(":", 1)[-1]: v for k, v in _counts(inventory).items()}
    }
    if mainhand is not None:
        info["mainhand"] = str(_scalar(mainhand))
    if stats is not None:
        nested: dict[str, dict[str, int]] = {}
        for key, value in stats.items():
            if isinstance(value, Mapping):
                nested.setdefault(str(key), {}).update(
                    {t.rsplit(":", 1)[-1]: n for t, n in _counts(value).items()})
            else:
                parsed = parse_stat_key(str(key))
                if parsed and parsed[0] in STATS:
                    nested.setdefault(parsed[0], {})[parsed[1]] = int(_scalar(value))
        info["stats"] = nested
    for key, value in (("life", life), ("food", food), ("air", air)):
        if value is not None:
            info[key] = float(_scalar(value))
    if is_alive is not None:
        info["is_alive"] = bool(_scalar(is_alive))
    if biome_id is not None:
        info["biome_id"] = int(_scalar(biome_id))
    return info


def minerl_info(obs: Mapping[str, Any]) -> dict[str, Any]:
    """Converts a MineRL observation dict (0.4 ``ObtainDiamond`` or 1.0 ``HumanSurvival``
    shaped) into the annotator's info; ``pov`` is left out.
    """
    hand = (obs.get("equipped_items") or {}).get("mainhand") or {}
    life = obs.get("life_stats") or {}
    loc = obs.get("location_stats") or {}
    stats = {k: obs[k] for k in STATS if isinstance(obs.get(k), Mapping)}
    return info_from_inventory(
        obs.get("inventory") or {},
        mainhand=hand.get("type") if hand else None,
        stats=stats or None,
        life=life.get("life"), food=life.get("food"), air=life.get("air"),
        is_alive=life.get("is_alive"),
        biome_id=loc.get("biome_id"),
    )


def _stat_delta(prev: Info, info: Info, stat: str) -> dict[str, int]:
    before = (prev.get("stats") or {}).get(stat, {})
    now = (info.get("stats") or {}).get(stat, {})
    return {k: v - before.get(k, 0) for k, v in now.items() if v > before.get(k, 0)}


class MineRLAnnotator:
    """Events for MineRL: inventory and equipment changes, mining/crafting/pickup/use/kill
    statistics, health/food/air changes, death, and the biome where exposed.
    """

    def __call__(self, prev_info: Info | None, action: Any, info: Info) -> list[str]:
        out: list[str] = []
        if prev_info is None:
            if info.get("biome_id") is not None:
                out.append(sentence("biome", name=biome_name(info["biome_id"])))
            hand = info.get("mainhand", "none")
            if hand not in _EMPTY_HAND:
                out.append(sentence("equip", item=name(hand)))
            return out
        mined = _stat_delta(prev_info, info, "mine_block")
        crafted = _stat_delta(prev_info, info, "craft_item")
        picked = _stat_delta(prev_info, info, "pickup")
        out += [sentence("mine", item=name(k)) for k in mined]
        out += [sentence("make", item=name(k)) for k in crafted]
        out += [sentence("pickup", thing=name(k)) for k in picked]
        out += [sentence("use", item=name(k)) for k in _stat_delta(prev_info, info, "use_item")]
        out += [sentence("defeat", thing=name(k))
                for k in _stat_delta(prev_info, info, "kill_entity")]
        out += inventory_events(prev_info.get("inventory", {}), info.get("inventory", {}),
                                skip_gain=[*crafted, *picked])
        hand = info.get("mainhand")
        if hand is not None and hand != prev_info.get("mainhand") and hand not in _EMPTY_HAND:
            out.append(sentence("equip", item=name(hand)))
        for key, stat in (("life", "health"), ("food", "food"), ("air", "air")):
            if info.get(key) is not None and prev_info.get(key) is not None:
                delta = info[key] - prev_info[key]
                if delta:
                    out.append(sentence("vital", stat=stat, change="dropped" if delta < 0 else "rose"))
        before, now = prev_info.get("biome_id"), info.get("biome_id")
        if now is not None and before is not None and now != before:
            out.append(sentence("biome", name=biome_name(now)))
        if info.get("is_alive") is False and prev_info.get("is_alive", True) is not False:
            out.append(sentence("death"))
        out += done_events(info)
        return out
