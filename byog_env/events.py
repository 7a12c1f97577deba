"""Annotation templates: one table renders events to sentences and parses them back.

Every annotator builds its sentences through :func:`sentence` (or :meth:`Event.sentence`), and
:func:`parse_event` is its exact inverse, so annotations can be scored as events later.
Sentences are short, lowercase and regular because they become language-model tokens.

>>> sentence("collect", count=1, item="wood")
'collected 1 wood'
>>> parse_event("collected 1 wood")
Event(kind='collect', args={'count': 1, 'item': 'wood'})
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from byog_env.errors import AnnotationError

# Closed vocabularies for fields whose value sits next to another free field (keeps parsing unique).
VITALS = ("health", "food", "drink", "energy", "air")
DOOR_ACTIONS = ("opened", "closed", "unlocked", "locked")
CHANGES = ("dropped", "rose")

# Regex per field name; `int` fields are converted back to int when parsed.
_WORD = r"[a-z][a-z0-9]*(?: [a-z0-9]+)*"
_FIELDS: dict[str, tuple[str, type]] = {
    "count": (r"[1-9][0-9]*", int),
    "item": (_WORD, str),
    "thing": (_WORD, str),
    "name": (_WORD, str),
    "color": (r"[a-z]+", str),
    "stat": ("|".join(VITALS), str),
    "change": ("|".join(CHANGES), str),
    "action": ("|".join(DOOR_ACTIONS), str),
    "text": (r"\S.*", str),
}

# (kind, format, fixed args). Order matters only for readability: every sentence matches one row.
TEMPLATES: tuple[tuple[str, str, dict[str, Any]], ...] = (
    # Shared by every family.
    ("collect", "collected {count} {item}", {}),
    ("lose", "lost {count} {item}", {}),
    ("make", "made {item}", {}),
    ("place", "placed {item}", {}),
    ("vital", "{stat} {change}", {}),
    ("see", "{thing} in view", {}),
    ("unsee", "{thing} out of view", {}),
    ("face", "facing {thing}", {}),
    ("death", "died", {}),
    ("reward", "got reward", {"sign": "positive"}),
    ("reward", "got penalty", {"sign": "negative"}),
    ("done", "episode ended", {"reason": "terminated"}),
    ("done", "time ran out", {"reason": "truncated"}),
    # Crafter.
    ("achievement", "achievement {name}", {}),
    ("eat", "ate {thing}", {}),
    ("drink", "drank {thing}", {}),
    ("defeat", "defeated {thing}", {}),
    ("sleep", "fell asleep", {}),
    ("wake", "woke up", {}),
    # BabyAI / MiniGrid.
    ("mission", "mission {text}", {}),
    ("pickup", "picked up {thing}", {}),
    ("drop", "dropped {thing}", {}),
    ("door", "{action} {color} door", {}),
    ("goal", "reached the goal", {}),
    # MineRL.
    ("equip", "equipped {item}", {}),
    ("mine", "mined {item}", {}),
    ("use", "used {item}", {}),
    ("biome", "entered {name}", {}),
)

KINDS: tuple[str, ...] = tuple(dict.fromkeys(kind for kind, _, _ in TEMPLATES))
# Kinds that only report what is visible (the rest are things that happened).
VIEW_KINDS = frozenset({"see", "unsee", "face"})

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _compile(fmt: str) -> tuple[re.Pattern[str], tuple[str, ...]]:
    names = tuple(_PLACEHOLDER.findall(fmt))
    parts = _PLACEHOLDER.split(fmt)  # literal, name, literal, name, ...
    regex = "".join(
        re.escape(p) if i % 2 == 0 else f"(?P<{p}>{_FIELDS[p][0]})" for i, p in enumerate(parts)
    )
    return re.compile(f"^{regex}$"), names


_COMPILED = tuple((kind, fmt, fixed, *_compile(fmt)) for kind, fmt, fixed in TEMPLATES)

ANNOTATOR_VERSION: str = "1-" + hashlib.sha1(repr(TEMPLATES).encode()).hexdigest()[:8]
"""Changes whenever a template changes (the hash of the table), so datasets record it."""


@dataclass(frozen=True)
class Event:
    """One parsed annotation.

    Attributes:
        kind: Event family, one of :data:`KINDS` (e.g. ``collect``, ``see``, ``door``).
        args: Template fields (``count`` is an int, the rest strings).
    """

    kind: str
    args: dict[str, Any] = field(default_factory=dict)

    def sentence(self) -> str:
        """Renders this event with its template (inverse of :func:`parse_event`)."""
        return sentence(self.kind, **self.args)


def sentence(kind: str, **args: Any) -> str:
    """Renders an event as its templated sentence.

    Args:
        kind: Event kind (see :data:`KINDS`).
        **args: Template fields; names with underscores are written with spaces.

    Raises:
        ValueError: No template of that kind takes exactly these arguments, or a value does
            not fit its field (it would not parse back).
    """
    for k, fmt, fixed, regex, names in _COMPILED:
        if k != kind or set(names) | set(fixed) != set(args):
            continue
        if any(args[key] != value for key, value in fixed.items()):
            continue
        values = {n: str(args[n]).replace("_", " ") for n in names}
        text = fmt.format(**values)
        if not regex.match(text):
            raise AnnotationError(f"Value {values} does not fit the template {fmt!r} of kind {kind!r}.")
        return text
    raise AnnotationError(
        f"No template of kind {kind!r} takes arguments {sorted(args)}; known kinds: {', '.join(KINDS)}."
    )


def parse_event(text: str) -> Event:
    """Parses an annotation sentence back into its :class:`Event`.

    Raises:
        ValueError: The sentence matches no template.
    """
    for kind, _, fixed, regex, names in _COMPILED:
        m = regex.match(text)
        if m:
            args = {n: _FIELDS[n][1](m.group(n)) for n in names}
            return Event(kind, {**args, **fixed})
    raise AnnotationError(f"Not an annotation sentence (matches no template): {text!r}.")


def name(identifier: str) -> str:
    """Turns an identifier such as ``wood_pickaxe`` or ``minecraft:oak_log`` into ``wood pickaxe``."""
    return identifier.rsplit(":", 1)[-1].replace("_", " ").lower()
