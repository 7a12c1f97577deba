"""The experiments package's one error type (a ``ValueError``, as callers already catch)."""
from __future__ import annotations


class ExperimentError(ValueError):
    """A bad experiment config or input; the message names the problem and the fix."""


__all__ = ["ExperimentError"]
