"""``python -m agents.imagine``: see :mod:`agents.imagine.command`."""
import sys

from agents.imagine.command import cli

if __name__ == "__main__":
    sys.exit(cli())
