"""Moved to :mod:`byog_core.cli`: the one runner and exit-code policy of every BYOG command line
(usage 2, runtime 1, interrupt 130, one ``error:`` line). This name keeps working; its extra
``usage``/``runtime``/``interrupted`` exception tuples are still honoured for old callers, but
every entry point of this project now classifies errors by type alone."""
from __future__ import annotations

from collections.abc import Callable

from byog_core.cli import EXIT_INTERRUPTED, EXIT_RUNTIME, EXIT_USAGE, error_line
from byog_core.cli import run_cli as _run_cli
from byog_core.errors import Interrupted, RunFailure


class _Usage(ValueError):
    pass


class _Runtime(RunFailure):
    pass


class _Stopped(Interrupted):
    pass


def run_cli(body: Callable[[], int], *, usage: tuple[type[BaseException], ...] = (),
            runtime: tuple[type[BaseException], ...] = (),
            interrupted: tuple[type[BaseException], ...] = (),
            on_interrupt: str = "stopped; rerun the same command to start again.") -> int:
    """:func:`byog_core.cli.run_cli`, with ``usage``/``runtime``/``interrupted`` naming extra
    exception types of each kind (deprecated: make the error class derive from ``ValueError``,
    :class:`~byog_core.errors.RunFailure` or :class:`~byog_core.errors.Interrupted` instead)."""
    def classified() -> int:
        try:
            return body()
        except interrupted as err:
            raise _Stopped(str(err)) from err
        except runtime as err:
            raise _Runtime(str(err)) from err
        except usage as err:
            raise _Usage(str(err)) from err

    return _run_cli(classified, on_interrupt=on_interrupt)


__all__ = ["EXIT_INTERRUPTED", "EXIT_RUNTIME", "EXIT_USAGE", "error_line", "run_cli"]
