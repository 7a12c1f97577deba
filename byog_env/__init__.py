"""BYOG environments: gymnasium envs whose info carries language annotations.

Light to import: simulators (crafter, minigrid, minerl) are imported only by ``make``.
"""
from byog_env.events import ANNOTATOR_VERSION, Event, parse_event

__all__ = ["ANNOTATOR_VERSION", "Event", "parse_event"]
