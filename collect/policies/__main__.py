"""``python -m collect.policies``: the registered collector policies, one per line.

Each line: how to write it (``sb3:<path.zip>``), its factory's import path, and whether it needs
the live env object. ``--plugin MODULE`` (repeatable) imports a module that registers more first.
Exit codes follow :mod:`byog_core.cli` (0 ok, 2 usage: a bad flag or a plugin that cannot be imported).
"""
from __future__ import annotations

import argparse
import importlib
import sys


def _run(argv: list[str] | None) -> None:
    p = argparse.ArgumentParser(prog="python -m collect.policies", description=__doc__.splitlines()[0])
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                   help="import MODULE first (it registers its policies)")
    args = p.parse_args(argv)  # usage errors exit 2
    from collect.errors import PolicyError
    from collect.policies import specs

    for module in args.plugin:
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise PolicyError(f"Policy plugin {module!r} cannot be imported ({e}); install it or fix --plugin.") from None
    for spec in specs():
        live = "live env" if spec.needs_live_env else "-"
        print(f"{spec.usage}\t{spec.entry_point}\t{live}")


def main(argv: list[str] | None = None) -> int:
    from byog_core.cli import run_cli

    return run_cli(lambda: _run(argv))


if __name__ == "__main__":
    sys.exit(main())
