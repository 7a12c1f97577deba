"""``python -m agents.training`` (and ``torchrun ... -m agents.training``): see
:mod:`agents.training.command`."""
import sys

from agents.training.command import cli

if __name__ == "__main__":
    sys.exit(cli())
