"""Templates <-> events: every template round-trips, and unknown text is rejected."""
import re

import pytest

from byog_env import ANNOTATOR_VERSION, Event, parse_event, sentence
from byog_env.events import _COMPILED, KINDS, TEMPLATES

SAMPLE = {"count": 3, "item": "wood pickaxe", "thing": "red ball", "name": "collect wood",
          "color": "blue", "stat": "energy", "change": "rose", "action": "unlocked",
          "text": "pick up the red ball, then open a door"}


@pytest.mark.parametrize("kind,fmt,fixed", TEMPLATES, ids=[t[1] for t in TEMPLATES])
def test_every_template_round_trips(kind, fmt, fixed):
    names = re.findall(r"\{(\w+)\}", fmt)
    event = Event(kind, {**{n: SAMPLE[n] for n in names}, **fixed})
    text = event.sentence()
    assert text == fmt.format(**{n: SAMPLE[n] for n in names})
    assert parse_event(text) == event
    # Exactly one template matches, so parsing never depends on table order.
    assert sum(bool(regex.match(text)) for _, _, _, regex, _ in _COMPILED) == 1


def test_known_sentences():
    assert parse_event("collected 1 wood") == Event("collect", {"count": 1, "item": "wood"})
    assert parse_event("health dropped") == Event("vital", {"stat": "health", "change": "dropped"})
    assert parse_event("zombie in view") == Event("see", {"thing": "zombie"})
    assert parse_event("zombie out of view") == Event("unsee", {"thing": "zombie"})
    assert parse_event("opened red door") == Event("door", {"action": "opened", "color": "red"})
    assert parse_event("time ran out") == Event("done", {"reason": "truncated"})
    assert parse_event("mission go to the red ball") == Event("mission", {"text": "go to the red ball"})
    assert sentence("make", item="wood_pickaxe") == "made wood pickaxe"
    assert set(KINDS) >= {"collect", "lose", "achievement", "make", "place", "vital", "see",
                          "unsee", "face", "sleep", "wake", "death", "mission", "pickup", "drop",
                          "door", "goal", "reward", "done", "equip", "mine", "biome"}


@pytest.mark.parametrize("text", ["", "collected wood", "Collected 1 wood", "collected 0 wood",
                                  "hello world", "health fell", "flew away", "died twice"])
def test_unknown_text_raises(text):
    with pytest.raises(ValueError, match="matches no template"):
        parse_event(text)


def test_sentence_rejects_bad_arguments():
    with pytest.raises(ValueError, match="No template of kind 'collect'"):
        sentence("collect", item="wood")
    with pytest.raises(ValueError, match="does not fit"):
        sentence("vital", stat="mana", change="dropped")
    with pytest.raises(ValueError, match="No template of kind 'nope'"):
        sentence("nope")


def test_version_tracks_templates():
    assert re.fullmatch(r"1-[0-9a-f]{8}", ANNOTATOR_VERSION)
