"""Every error the ``agents`` package raises, under one base class.

All of them subclass :class:`AgentsError`, itself a ``ValueError`` (callers have always caught
``ValueError`` for bad configs, checkpoints and inputs), so ``except AgentsError`` catches any
of them and a CLI can print the message as one ``error:`` line. Every message names the
problem and the fix. This module imports only the torch-free :mod:`byog_core.errors`, so config dataclasses can raise these
without pulling in torch.

The old import paths keep working (``agents.model.lm.ModelError``, ``agents.model.text.TextError``,
``agents.narrate.narration.NarrationError``, ``agents.training.config.TrainError``,
``agents.obs.base.ObsEncoderError``): they are these same classes.
"""
from __future__ import annotations

from byog_core.errors import RunFailure


class AgentsError(ValueError):
    """Base class of the ``agents`` package's errors."""


class ModelError(AgentsError):
    """A bad model config, checkpoint or input; the message names the problem and the fix."""


class TextError(AgentsError):
    """A bad tokenizer, slot config or annotation input."""


class ObsEncoderError(AgentsError):
    """A bad observation-encoder config, checkpoint or input."""


class NarrationError(AgentsError):
    """Live narration cannot run as asked; the message names the problem and the fix."""


class TrainError(AgentsError):
    """A bad training config, dataset, checkpoint or run directory; the message names the fix."""


class AgentsRuntimeError(AgentsError, RunFailure):
    """A failure while running, not a bad input (a CLI exits 1 on it, 2 on the others)."""


class TrainDiverged(TrainError, AgentsRuntimeError):
    """The loss became non-finite during training."""


__all__ = ["AgentsError", "AgentsRuntimeError", "ModelError", "NarrationError", "ObsEncoderError",
           "TextError", "TrainDiverged", "TrainError"]
