"""The exit-code policy of the agents command lines (``byog-train``, ``byog-narrate``).

Usage errors (a bad flag, config value, path or checkpoint: the user can fix the command) exit
2, runtime failures (an OS error, a diverged loss) exit 1, an interrupt exits 130; each prints
ONE ``error:`` line naming the problem and the fix, never a traceback. Anything else is a bug
and keeps its traceback.
"""
from __future__ import annotations

import sys
from collections.abc import Callable

from agents.errors import AgentsError, AgentsRuntimeError
from collect.errors import shorten_worker_error

EXIT_RUNTIME, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


def error_line(message: object) -> None:
    """Print ``error: MESSAGE`` as one line on stderr."""
    text = " ".join(shorten_worker_error(str(message)).split()) or type(message).__name__
    print(text if text.startswith("error:") else f"error: {text}", file=sys.stderr)


def run_cli(body: Callable[[], int], *, usage: tuple[type[BaseException], ...] = (),
            runtime: tuple[type[BaseException], ...] = (),
            interrupted: tuple[type[BaseException], ...] = (),
            on_interrupt: str = "interrupted; rerun the same command to start again.") -> int:
    """Run ``body`` and map what it raises to the exit-code policy above.

    Args:
        body: The command's work; returns its exit code (0 on success).
        usage: Extra exception types that are usage errors (``AgentsError`` always is, except
            ``AgentsRuntimeError``).
        runtime: Extra runtime-failure types (``OSError`` and ``AgentsRuntimeError`` always are).
        interrupted: Extra types meaning "stopped on request" (``KeyboardInterrupt`` always).
        on_interrupt: The line for a bare ``KeyboardInterrupt`` (others print their message).
    """
    try:
        return body()
    except (KeyboardInterrupt, *interrupted) as err:
        error_line(err if str(err) else on_interrupt)
        return EXIT_INTERRUPTED
    except (AgentsRuntimeError, OSError, *runtime) as err:
        error_line(err)
        return EXIT_RUNTIME
    except (AgentsError, *usage) as err:
        error_line(err)
        return EXIT_USAGE


__all__ = ["EXIT_INTERRUPTED", "EXIT_RUNTIME", "EXIT_USAGE", "error_line", "run_cli"]
