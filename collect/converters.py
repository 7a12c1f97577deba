"""The registries of dataset importers and exporters, and the one command line that runs them.

An importer or exporter is a dataclass (its fields are the subcommand's flags, parsed by tyro)
with a ``run()`` method, registered by name::

    @EXPORTERS.register("npz")
    @dataclass
    class NpzExport:
        src: tyro.conf.Positional[Path]
        out: Path
        def run(self) -> None: ...

A new format is that one file (``tests/plugins/toy_format.py`` is the recipe); the command lines
find a plugin module with ``--plugin MODULE`` before the subcommand
(``python -m collect.export --plugin my_pkg.npz npz DIR --out DEST``). An importer's ``run()``
returns the ``meta/info.json`` dict it wrote; an exporter's prints where its output went.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from byog_core.registry import Registry
from collect.config import import_plugins
from collect.errors import UsageError

IMPORTERS: Registry[type] = Registry(
    "importer", error=UsageError,
    hint="Register a dataclass with a run() method with @collect.converters.IMPORTERS.register(name) "
         "and pass its module as --plugin MODULE.")
"""Importer name -> its config dataclass (``python -m collect.importers NAME``)."""
EXPORTERS: Registry[type] = Registry(
    "exporter", error=UsageError,
    hint="Register a dataclass with a run() method with @collect.converters.EXPORTERS.register(name) "
         "and pass its module as --plugin MODULE.")
"""Exporter name -> its config dataclass (``python -m collect.export NAME``)."""


def split_plugins(argv: list[str]) -> tuple[list[str], list[str]]:
    """``(argv without them, modules)`` of the ``--plugin MODULE`` / ``--plugin=MODULE`` flags."""
    rest: list[str] = []
    modules: list[str] = []
    it = iter(argv)
    for arg in it:
        if arg == "--plugin":
            module = next(it, None)
            if module is None:
                raise UsageError("--plugin needs a module name (--plugin my_pkg.formats).")
            modules.append(module)
        elif arg.startswith("--plugin="):
            modules.append(arg.split("=", 1)[1])
        else:
            rest.append(arg)
    return rest, modules


def converter_cli(registry: Registry[type], argv: list[str] | None, description: str,
                  report: Callable[[Any, Any], None] | None = None) -> int:
    """Parse ``argv`` into one of ``registry``'s configs (after importing its ``--plugin``
    modules), call its ``run()`` and hand the result to ``report``; exit codes follow
    :mod:`byog_core.cli`."""
    import sys

    from byog_core.cli import run_cli
    from collect.errors import parse_cli

    def body() -> int:
        args, modules = split_plugins(list(sys.argv[1:] if argv is None else argv))
        import_plugins(modules, flag="--plugin")
        commands = {name: registry[name] for name in registry.registration_order()}
        cfg = parse_cli(commands, args, description)
        result = cfg.run()
        if report is not None:
            report(cfg, result)
        return 0

    return run_cli(body)


__all__ = ["EXPORTERS", "IMPORTERS", "converter_cli", "split_plugins"]
