"""Errors of the ``collect`` package and its one exit-code policy.

Every error the collector, the dataset reader/writer, the policies and the importers raise on
purpose derives from :class:`CollectError` (a ``ValueError``, which callers already catch), and
its message is one sentence naming the problem and the fix. Command-line entry points run
through :func:`run_cli`, which prints such errors as one ``error: ...`` line and exits with

- ``2`` for usage errors (:class:`UsageError`: a bad flag value or combination; tyro's own
  parse errors exit 2 too),
- ``1`` for runtime errors (any other :class:`CollectError`, gymnasium's errors, a missing
  optional dependency),
- ``130`` when interrupted (Ctrl-C), after saying what was kept.

Leaf module: imports nothing heavy.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


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


def exit_code(exc: BaseException) -> int:
    """The exit status for an exception that reached a command-line entry point."""
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    return EXIT_USAGE if isinstance(exc, UsageError) else EXIT_RUNTIME


def _expected_errors() -> tuple[type[BaseException], ...]:
    """Errors reported as one line: ours, gymnasium's (unknown env ids, ...), missing extras."""
    errors: list[type[BaseException]] = [CollectError, ImportError]
    try:
        import gymnasium

        errors.append(gymnasium.error.Error)
    except ImportError:  # pragma: no cover - gymnasium is a core dependency
        pass
    return tuple(errors)


def run_cli(run: Callable[[], Any], interrupted: str = "interrupted.") -> int:
    """Calls ``run()`` and maps its outcome to an exit status (see the module docstring).

    Args:
        run: Parses the arguments and does the work.
        interrupted: Said after Ctrl-C (what was kept and how to continue).

    Returns:
        0, 1, 2 or 130; expected errors are printed as one ``error: ...`` line on stderr.
    """
    try:
        run()
    except KeyboardInterrupt as e:
        print(f"interrupted: {interrupted}", file=sys.stderr)
        return exit_code(e)
    except _expected_errors() as e:
        message = " ".join(shorten_worker_error(str(e)).split()) or type(e).__name__
        print(f"error: {message}", file=sys.stderr)
        return exit_code(e)
    return EXIT_OK


def shorten_worker_error(message: str) -> str:
    """The original one-line message of an error re-raised from a DataLoader worker, whose text
    torch builds as ``Caught X in DataLoader worker process N. Original Traceback …``."""
    marker = "Original Traceback (most recent call last):"
    if marker not in message:
        return message
    head = message.split(marker, 1)[0].strip()
    last = [line for line in message.rstrip().splitlines() if line.strip()][-1].strip()
    _, _, original = last.partition(": ")
    where = head.split(" in ", 1)[1].rstrip(".") if " in " in head else "a worker"
    return f"{original or last} (in {where})"


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
