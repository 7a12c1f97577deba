"""One command-line runner and one exit-code policy for every BYOG console script and
``python -m`` entry point.

- **2, usage**: the command as typed cannot work and the user can fix it: a bad flag value, an
  unknown name (env, arm, preset, plugin module), a missing or malformed input, an output that
  exists without ``--resume``. Every package's own errors are ``ValueError`` subclasses and land here, as
  do gymnasium's (an unknown env id); tyro's own parse errors exit 2 too.
- **1, runtime**: the command was fine but running it failed: an error that derives from
  :class:`~byog_core.errors.RunFailure` (a diverged loss, a dead worker, another process holding
  the output, a half-written episode), an ``OSError`` (disk full, permissions), a missing
  optional dependency (``ImportError``, gymnasium's ``DependencyNotInstalled``), ``MemoryError``.
- **130, interrupted**: Ctrl-C, or an error deriving from :class:`~byog_core.errors.Interrupted`,
  after one line saying what was kept.

Each prints ONE line on stderr (``error: …`` / ``interrupted: …``) naming the problem and the fix,
never a traceback. Anything else is a bug and keeps its traceback; so does everything when
``BYOG_TRACEBACK=1`` is set. Imports nothing heavy.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from byog_core.errors import Interrupted, RunFailure

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _from_module(exc: BaseException, prefix: str, name: str | None = None) -> bool:
    """Whether a class in ``exc``'s MRO lives under module ``prefix`` (and is called ``name``):
    recognises gymnasium's errors without importing gymnasium."""
    return any(c.__module__.startswith(prefix) and (name is None or c.__name__ == name)
               for c in type(exc).__mro__)


def exit_code(exc: BaseException) -> int | None:
    """The exit status the policy gives ``exc``, or None for a bug (it keeps its traceback)."""
    if isinstance(exc, (KeyboardInterrupt, Interrupted)):
        return EXIT_INTERRUPTED
    # before ValueError: a runtime failure may also be one of a package's (ValueError) errors
    if isinstance(exc, (RunFailure, OSError, MemoryError)) or _from_module(
            exc, "gymnasium.error", "DependencyNotInstalled"):
        return EXIT_RUNTIME
    # before ImportError: a plugin module named on the command line that cannot be imported is
    # one of the packages' own (ValueError) errors, a usage error like any unknown name
    if isinstance(exc, ValueError) or _from_module(exc, "gymnasium.error"):
        return EXIT_USAGE
    if isinstance(exc, ImportError):  # a missing optional dependency: install it
        return EXIT_RUNTIME
    return None


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


def one_line(message: object, prefix: str = "error") -> str:
    """``message`` as one ``prefix: …`` line (whitespace collapsed, a worker's wrapper removed)."""
    text = " ".join(shorten_worker_error(str(message)).split()) or type(message).__name__
    return text if text.startswith(f"{prefix}:") else f"{prefix}: {text}"


def error_line(message: object) -> None:
    """Print ``error: MESSAGE`` as one line on stderr."""
    print(one_line(message), file=sys.stderr)


def run_cli(body: Callable[[], Any], *, on_interrupt: str = "stopped; rerun the same command to "
            "start again.") -> int:
    """Run ``body`` (it parses the arguments and does the work) under the policy above.

    Args:
        body: The command; its return value is the exit status when it is an int, else 0.
        on_interrupt: What a bare Ctrl-C says was kept and how to go on (an ``Interrupted``
            error says its own message).

    Returns:
        0, 1, 2 or 130.
    """
    try:
        out = body()
    except BaseException as exc:
        code = exit_code(exc)
        if code is None or os.environ.get("BYOG_TRACEBACK") == "1":
            raise
        if code == EXIT_INTERRUPTED:
            text = str(exc) if isinstance(exc, Interrupted) and str(exc) else on_interrupt
            print(one_line(text, "interrupted"), file=sys.stderr)
        else:
            error_line(exc)
        return code
    return out if isinstance(out, int) and not isinstance(out, bool) else EXIT_OK


__all__ = ["EXIT_INTERRUPTED", "EXIT_OK", "EXIT_RUNTIME", "EXIT_USAGE", "error_line", "exit_code",
           "one_line", "run_cli", "shorten_worker_error"]
