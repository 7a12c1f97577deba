"""BYOG environments: gymnasium envs with RGB frames whose ``info["annotations"]`` lists the
step's event sentences.

Light to import: simulators (crafter, minigrid, minerl) are imported only by ``make``. Env
families and annotators are registries (:mod:`byog_env.registry`); the built-in ones are
registered here, and every family id with gymnasium (``gymnasium.make("byog/Crafter-v0")``).

>>> import byog_env
>>> env = byog_env.make("crafter", length=10)
>>> obs, info = env.reset(seed=0)
>>> obs.shape, type(info["annotations"]), env.spec.id
((64, 64, 3), <class 'list'>, 'byog/Crafter-v0')
"""
from byog_env.errors import EnvError, PluginImportError, RegistryError, UnknownEnvError
from byog_env.events import ANNOTATOR_VERSION, KINDS, Event, parse_event, sentence
from byog_env.families import register_builtins
from byog_env.registry import (
    EnvFamily,
    EnvId,
    action_names,
    families,
    family,
    list_annotators,
    list_envs,
    make,
    make_annotator,
    register_annotator,
    register_family,
    resolve,
)
from byog_env.wrappers import AnnotatedEnv

register_builtins()

__all__ = [
    "ANNOTATOR_VERSION", "KINDS", "AnnotatedEnv", "EnvError", "EnvFamily", "EnvId", "Event",
    "PluginImportError", "RegistryError", "UnknownEnvError", "action_names", "families", "family",
    "list_annotators", "list_envs", "make", "make_annotator", "parse_event", "register_annotator",
    "register_family", "resolve", "sentence",
]
