"""Errors of the ``collect`` package.

Every error the collector, the dataset reader/writer, the policies and the importers raise on
purpose derives from :class:`CollectError` (a ``ValueError``, which callers already catch), and
its message is one sentence naming the problem and the fix. Command-line entry points run
through the one runner of every BYOG command, :func:`byog_core.cli.run_cli`: a ``CollectError``
is a usage error (exit 2) unless it is also a :class:`~byog_core.errors.RunFailure`
(:class:`CollectRunError`, :class:`DatasetWriteError`: exit 1); Ctrl-C exits 130 after saying
what was kept.

Leaf module: imports nothing heavy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from byog_core.cli import EXIT_INTERRUPTED, EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, shorten_worker_error
from byog_core.cli import exit_code as _policy_code
from byog_core.cli import run_cli as _run_cli
from byog_core.errors import RunFailure


class CollectError(ValueError):
    """Base of every deliberate ``collect`` error; the message says what to change."""


class UsageError(CollectError):
    """A command-line value or combination of values is invalid (exit status 2)."""


class DatasetError(CollectError):
    """A dataset on disk is missing, malformed or inconsistent; the message names file and fix."""


class PolicyError(CollectError):
    """A policy could not be built or cannot act on the given environment (message says the fix)."""


class ImporterError(CollectError):
    """Input files are missing or malformed; the message names the file and the fix."""


class ExportError(CollectError):
    """An export cannot proceed; the message says what to change."""


class CollectRunError(CollectError, RunFailure):
    """Collecting failed while running (a worker died, no Ray actor is left): exit 1."""


class DatasetWriteError(DatasetError, RunFailure):
    """A dataset file could not be written (a full disk) or another writer holds the directory:
    exit 1; every file written before it is intact."""


def exit_code(exc: BaseException) -> int:
    """The exit status for an exception that reached a command-line entry point (deprecated
    alias of :func:`byog_core.cli.exit_code`; a bug, which keeps its traceback there, counts as
    runtime here)."""
    code = _policy_code(exc)
    return EXIT_RUNTIME if code is None else code


def run_cli(run: Callable[[], Any], interrupted: str = "stopped; rerun the same command to start again.") -> int:
    """Calls ``run()`` under the one exit-code policy (deprecated alias of
    :func:`byog_core.cli.run_cli`, which every entry point of this project calls).

    Args:
        run: Parses the arguments and does the work.
        interrupted: Said after Ctrl-C (what was kept and how to continue).

    Returns:
        0, 1, 2 or 130; expected errors are printed as one ``error: ...`` line on stderr.
    """
    return _run_cli(run, on_interrupt=interrupted)


@contextmanager
def deferred_validation(*classes: type) -> Iterator[list[Any]]:
    """Within the block, constructing one of ``classes`` skips its ``__post_init__`` and records
    the instance; the caller validates them afterwards (see :func:`parse_cli`)."""
    made: list[Any] = []
    saved = {cls: cls.__dict__["__post_init__"] for cls in classes if "__post_init__" in cls.__dict__}
    for cls in saved:
        cls.__post_init__ = lambda self: made.append(self)  # type: ignore[attr-defined]
    try:
        yield made
    finally:
        for cls, post_init in saved.items():
            cls.__post_init__ = post_init  # type: ignore[attr-defined]


def parse_cli(cls: type | dict[str, type], argv: list[str] | None, description: str) -> Any:
    """Parses ``argv`` with tyro into the dataclass ``cls`` (or one of a dict of subcommand
    dataclasses), validating only afterwards.

    tyro turns a ``ValueError`` raised by ``__post_init__`` into its own multi-line box; our
    policy is one ``error:`` line, so validation runs after parsing, where :func:`run_cli` sees
    the error (a :class:`UsageError` exits 2). tyro's own parse errors (unknown flag, wrong
    type) keep tyro's message and exit 2.
    """
    import tyro

    classes = list(cls.values()) if isinstance(cls, dict) else [cls]
    with deferred_validation(*classes) as made:
        if isinstance(cls, dict):
            cfg = tyro.extras.subcommand_cli_from_dict(cls, args=argv, description=description)
        else:
            cfg = tyro.cli(cls, args=argv, description=description)
    for obj in made:
        type(obj).__post_init__(obj)
    return cfg


__all__ = ["EXIT_INTERRUPTED", "EXIT_OK", "EXIT_RUNTIME", "EXIT_USAGE", "CollectError", "CollectRunError",
           "DatasetError", "DatasetWriteError", "ExportError", "ImporterError", "PolicyError", "UsageError",
           "deferred_validation", "exit_code", "parse_cli", "run_cli", "shorten_worker_error"]
