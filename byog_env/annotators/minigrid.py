"""BabyAI / MiniGrid annotator: pure rules on the info of :class:`byog_env.babyai.MiniGridRGB`."""
from __future__ import annotations

from typing import Any

from byog_env.annotators.base import Info, done_events
from byog_env.events import sentence

# Things worth a "facing ..." sentence (walls and empty floor are not).
FACE_TYPES = frozenset({"ball", "box", "key", "door", "goal", "lava"})

_DOOR_VERBS = {
    ("locked", "open"): "unlocked", ("locked", "closed"): "unlocked",
    ("closed", "open"): "opened", ("open", "closed"): "closed",
    ("open", "locked"): "locked", ("closed", "locked"): "locked",
}


def _is_faceable(thing: str) -> bool:
    return bool(thing) and thing.rsplit(" ", 1)[-1] in FACE_TYPES


class MiniGridAnnotator:
    """Events for BabyAI and MiniGrid levels.

    Reads ``mission`` (str), ``carrying`` (thing name or ``""``), ``front`` (thing name in the
    cell ahead, ``""`` when empty), ``doors`` (``{cell index: "<color> <state>"}`` with state
    ``open``/``closed``/``locked``), and the step's ``reward``/``terminated``/``truncated``.
    Events: the mission (at reset), things faced, picked up and dropped (colour and type),
    doors opened/closed/unlocked/locked, goal reached, and the episode's end.
    """

    def __call__(self, prev_info: Info | None, action: Any, info: Info) -> list[str]:
        out: list[str] = []
        if prev_info is None:
            if info.get("mission"):
                out.append(sentence("mission", text=info["mission"]))
        else:
            was, now = prev_info.get("carrying", ""), info.get("carrying", "")
            if was != now:
                if was:
                    out.append(sentence("drop", thing=was))
                if now:
                    out.append(sentence("pickup", thing=now))
            out += self._door_events(prev_info.get("doors", {}), info.get("doors", {}))
        front = info.get("front", "")
        if _is_faceable(front) and (prev_info is None or prev_info.get("front", "") != front):
            out.append(sentence("face", thing=front))
        if prev_info is not None:
            if info.get("terminated") and float(info.get("reward", 0.0)) > 0:
                out.append(sentence("goal"))
            out += done_events(info)
        return out

    @staticmethod
    def _door_events(prev: dict, cur: dict) -> list[str]:
        out = []
        for cell, desc in cur.items():
            before = prev.get(cell)
            if before is None or before == desc:
                continue
            color, state = desc.split(" ")
            verb = _DOOR_VERBS.get((before.split(" ")[1], state))
            if verb:
                out.append(sentence("door", action=verb, color=color))
        return out
