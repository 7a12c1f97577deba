"""``python -m byog_env list``: the env names ``make`` accepts, one per line.

``list --ids`` adds each name's gymnasium id and family; ``families`` prints the registered
families (annotator, per-episode info columns, installed or not); ``annotators`` the annotators.
``--plugin MODULE`` (repeatable) imports a module that registers more families first.
Exit codes: 0 ok, 1 runtime error (a plugin that fails to import), 2 usage, 130 interrupted.
"""
from __future__ import annotations

import argparse
import sys


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m byog_env", description=__doc__.splitlines()[0])
    p.add_argument("what", choices=("list", "families", "annotators"),
                   help="list: env names; families: env families; annotators: annotators")
    p.add_argument("--ids", action="store_true", help="with list: also the gymnasium id and family")
    p.add_argument("--family", help="with list: only this family's names")
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                   help="import MODULE first (it registers its env families)")
    return p


def _run(args: argparse.Namespace) -> None:
    import byog_env

    for module in args.plugin:
        byog_env.registry.import_plugin(module)
    fams = byog_env.families()
    if args.what == "families":
        for fam in fams.values():
            if fam.name == byog_env.registry.GENERIC:
                note = "any registered gymnasium id with rgb_array frames"
            else:
                note = f"{len({e.name for e in fam.env_ids()})} names"
            state = "installed" if fam.installed() else f"needs {fam.requires}"
            print(f"{fam.name}\tannotator={fam.annotator}\tinfo_columns={','.join(fam.info_columns) or '-'}"
                  f"\t{note}\t{state}")
        return
    if args.what == "annotators":
        for name, path in byog_env.list_annotators().items():
            print(f"{name}\t{path}")
        return
    if args.family is not None and args.family not in fams:
        raise _UsageError(f"unknown family {args.family!r}; registered: {', '.join(fams)}")
    for name in byog_env.list_envs():
        fam, eid = byog_env.resolve(name)
        if args.family in (None, fam.name):
            print(f"{name}\t{eid.gym_id}\t{fam.name}" if args.ids else name)


class _UsageError(ValueError):
    pass


def main(argv: list[str] | None = None) -> int:
    """Exit codes follow the one policy of :mod:`byog_core.cli` (2 usage, 1 runtime, 130)."""
    from byog_core.cli import run_cli

    # inside the runner, so Ctrl-C during the parse (or a plugin import) follows the policy too
    return run_cli(lambda: _run(_parser().parse_args(sys.argv[1:] if argv is None else argv)))


if __name__ == "__main__":
    raise SystemExit(main())
