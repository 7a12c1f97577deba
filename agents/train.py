"""Moved to :mod:`agents.training.command` (``python -m agents.training``, ``byog-train``).

``python -m agents.train``, the script ``python agents/train.py`` (torchrun's old form) and
``from agents.train import main, cli`` keep working, with a ``DeprecationWarning``.
"""
import sys

from agents._moved import warn_moved
from agents.training.command import TrainConfig, _fmt, _with_run_config, cli, main, parse_args  # noqa: F401

warn_moved("agents.train", "agents.training.command", stacklevel=2, cli=__name__ == "__main__")

if __name__ == "__main__":
    sys.exit(cli())
