"""Marker base classes that say how a command line exits on an error (see :mod:`byog_core.cli`).

A package's own errors stay under its own base class (``AgentsError``, ``CollectError``,
``EnvError``, ``ExperimentError``: all ``ValueError``, which means *usage*: the user can fix the
command); a failure that happens *while running* also derives from :class:`RunFailure`, and a
stop on request from :class:`Interrupted`. Imports nothing.
"""
from __future__ import annotations


class RunFailure(Exception):
    """Mixed into an error raised while running (a diverged loss, a dead worker, another process
    holding the output): the command itself was fine, so it exits 1, not 2."""


class Interrupted(Exception):
    """Mixed into an error meaning "stopped on request" (SIGINT/SIGTERM caught): exit 130."""


class RegistryError(ValueError):
    """An unknown or clashing plugin name (the default error of a :class:`Registry`)."""


__all__ = ["Interrupted", "RegistryError", "RunFailure"]
