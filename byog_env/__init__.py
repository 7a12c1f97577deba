"""BYOG environments: gymnasium envs with RGB frames whose ``info["annotations"]`` lists the
step's event sentences.

Light to import: simulators (crafter, minigrid, minerl) are imported only by ``make``.

>>> import byog_env
>>> env = byog_env.make("crafter", length=10)
>>> obs, info = env.reset(seed=0)
>>> obs.shape, type(info["annotations"])
((64, 64, 3), <class 'list'>)
"""
from byog_env.events import ANNOTATOR_VERSION, KINDS, Event, parse_event, sentence
from byog_env.registry import UnknownEnvError, list_envs, make, register_gymnasium_ids
from byog_env.wrappers import AnnotatedEnv

register_gymnasium_ids()

__all__ = [
    "ANNOTATOR_VERSION", "KINDS", "AnnotatedEnv", "Event", "UnknownEnvError", "list_envs",
    "make", "parse_event", "sentence",
]
