"""``python -m agents list [objectives|presets|sizes|forecasts] [--plugin MODULE]``: the
agents package's registries (observation encoders: ``python -m agents.obs list``).

Exit codes: 0 listed, 2 bad usage or an unimportable plugin, 130 interrupted.
"""
from __future__ import annotations

import argparse
import importlib
import sys


def _registries() -> dict:
    from agents.config import OBJECTIVES, PRESETS, SIZES

    def forecasts():  # the narrator imports torch: only when asked
        from agents.narrate.narrator import FORECASTS

        return FORECASTS

    return {"objectives": lambda: OBJECTIVES, "presets": lambda: PRESETS, "sizes": lambda: SIZES,
            "forecasts": forecasts}


def _describe(value: object) -> str:
    from byog_core.registry import entry_point

    summary = getattr(value, "summary", None)
    if summary:
        return summary
    if isinstance(value, str) or callable(value):
        return entry_point(value)  # type: ignore[arg-type]
    return type(value).__name__


def main(argv: list[str] | None = None) -> int:
    from byog_core.cli import run_cli

    regs = _registries()
    parser = argparse.ArgumentParser(prog="python -m agents", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    ls = sub.add_parser("list", help="list registered plugins")
    ls.add_argument("what", nargs="?", choices=sorted(regs), default=None)
    ls.add_argument("--plugin", action="append", default=[],
                    help="import this module first (it registers its plugins)")

    def body() -> int:
        from agents.errors import AgentsError

        args = parser.parse_args(argv)
        for module in args.plugin:
            try:
                importlib.import_module(module)
            except ImportError as err:
                raise AgentsError(f"cannot import plugin module {module!r} ({err}); install it "
                                  "or put it on PYTHONPATH.") from None
        for name in [args.what] if args.what else sorted(regs):
            reg = regs[name]()
            print(f"{name}:")
            for key in reg:
                print(f"  {key:<16} {_describe(reg.entry(key))}")
        return 0

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
