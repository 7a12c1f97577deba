"""``python -m agents.obs list``: the registered observation encoders and their options."""
from __future__ import annotations

import argparse
import dataclasses
import sys

from agents.obs.config import (
    import_obs_plugin,
    obs_config_class,
    registered_obs_encoders,
)
from byog_core.cli import run_cli


def describe(kind: str) -> list[str]:
    """Lines describing one kind: summary, entry point, what it needs, options and defaults."""
    cls = obs_config_class(kind)
    needs = [n for n, on in (("fitted on data first", cls.requires_fit),) if on]
    lines = [f"{kind}: {cls.summary}", f"  encoder {cls.encoder}; options {cls.__module__}."
             f"{cls.__qualname__}" + (f"; {', '.join(needs)}" if needs else "")]
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        lines.append(f"    --model.obs.{f.name} (default {default!r})")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agents.obs",
                                     description="List the registered observation encoders.")
    parser.add_argument("command", choices=["list"], help="list: every kind and its options")
    parser.add_argument("--plugin", action="append", default=[],
                        help="also import this module (a plugin that registers kinds); repeatable")

    def body() -> int:
        args = parser.parse_args(argv)
        for module in args.plugin:  # a bad --plugin name is a usage error (ObsEncoderError: 2)
            import_obs_plugin(module)
        for kind in registered_obs_encoders():
            print("\n".join(describe(kind)))
        return 0

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
