"""Every error ``byog_env`` raises itself, under one base class.

``EnvError`` subclasses ``ValueError`` (and ``gymnasium.error.Error``) because callers (the collector, the narrate CLI, tests)
catch bad names and options as ``ValueError``; gymnasium's own error types are mixed in where a
gymnasium user would catch those (an unknown id is also ``gymnasium.error.UnregisteredEnv``).
Missing optional simulators raise gymnasium's ``DependencyNotInstalled`` with the install
command, as gymnasium's own envs do.
"""
from __future__ import annotations

import gymnasium as gym


class EnvError(ValueError, gym.error.Error):
    """Base class of the errors ``byog_env`` raises; the message says what to change.

    Also a ``gymnasium.error.Error``, so CLIs that print gymnasium's errors as one line (the
    collector's) print ours the same way."""


class UnknownEnvError(EnvError, gym.error.UnregisteredEnv):
    """The name is neither a BYOG short name nor a registered gymnasium id."""


class EnvOptionError(EnvError):
    """An env family got an option it cannot take (frame size, view, render mode, length)."""


class RegistryError(EnvError):
    """A family or annotator registration is malformed or clashes with an existing one."""


class PluginImportError(EnvError, ImportError):
    """The module a ``module:name`` env (or a dataset's recorded env) names cannot be imported."""


class AnnotationError(EnvError):
    """A sentence matches no event template, or event values do not fit their template."""


class ObservationError(EnvError):
    """An observation lacks what a frame is taken from (e.g. MineRL's ``pov``)."""


class RenderModeError(EnvOptionError, gym.error.Error):
    """The env cannot give ``rgb_array`` frames (BYOG takes frames from ``render()``)."""
