"""``python -m agents.narrate``: see :mod:`agents.narrate.command`."""
import sys

from agents.narrate.command import cli

if __name__ == "__main__":
    sys.exit(cli())
