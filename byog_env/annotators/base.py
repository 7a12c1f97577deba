"""The annotator protocol, shared helpers and the generic (reward/termination) annotator."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from byog_env.events import name, sentence

Info = Mapping[str, Any]


class Annotator(Protocol):
    """Turns one transition into event sentences; a pure function of its arguments.

    ``prev_info`` is ``None`` at reset. Besides the env's own info keys, :class:`AnnotatedEnv`
    passes the step's ``reward``, ``terminated`` and ``truncated`` in ``info``.
    """

    def __call__(self, prev_info: Info | None, action: Any, info: Info) -> list[str]: ...


def outcome_events(info: Info) -> list[str]:
    """Reward sign and episode end, read from the ``reward``/``terminated``/``truncated`` keys."""
    out = []
    reward = float(info.get("reward", 0.0) or 0.0)
    if reward > 0:
        out.append(sentence("reward", sign="positive"))
    elif reward < 0:
        out.append(sentence("reward", sign="negative"))
    return out + done_events(info)


def done_events(info: Info) -> list[str]:
    """``episode ended`` (terminated) or ``time ran out`` (truncated), else nothing."""
    if info.get("terminated"):
        return [sentence("done", reason="terminated")]
    if info.get("truncated"):
        return [sentence("done", reason="truncated")]
    return []


def inventory_events(
    prev: Mapping[str, int], cur: Mapping[str, int], skip_gain: Iterable[str] = (),
    skip: Iterable[str] = (),
) -> list[str]:
    """``collected N item`` / ``lost N item`` for every count that changed.

    Args:
        prev: Item counts before the step.
        cur: Item counts after the step (items missing from one side count as 0).
        skip_gain: Items whose gain another sentence already reports (e.g. a tool just made).
        skip: Items never reported here (e.g. vital stats kept in the same dict).
    """
    out = []
    skip_gain, skip = set(skip_gain), set(skip)
    for item in dict.fromkeys([*prev, *cur]):
        if item in skip:
            continue
        delta = int(cur.get(item, 0)) - int(prev.get(item, 0))
        if delta > 0 and item not in skip_gain:
            out.append(sentence("collect", count=delta, item=name(item)))
        elif delta < 0:
            out.append(sentence("lose", count=-delta, item=name(item)))
    return out


class GenericAnnotator:
    """Reward and termination events only, for any gymnasium env."""

    def __call__(self, prev_info: Info | None, action: Any, info: Info) -> list[str]:
        if prev_info is None:
            return []
        return outcome_events(info)
