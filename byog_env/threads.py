"""How many CPU threads a BYOG process should use, and setting them once for every library.

Why this exists: torch's intra-op worker threads spin-wait for work. When another process holds
one of the cores torch counted, a step can run 10-25x slower (measured on a 2-core machine: a
training step went from 0.5 s to 12 s beside one other job). ``os.cpu_count()`` counts every
core of the machine, not the ones this process may run on (``taskset``, cgroups, a scheduler's
CPU set), so every CLI defaults to :func:`available_cores` instead and exposes ``--threads``.

This module imports no torch: :func:`set_threads` only touches torch when the caller has
already imported it (or asks for it), so ``byog-collect`` with a torch-free policy stays light.
"""
from __future__ import annotations

import os
import sys

#: Environment variables read by the BLAS/OpenMP runtimes at start-up (child processes inherit them).
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def available_cores() -> int:
    """The number of cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux: fall back to the machine's count
        return max(1, os.cpu_count() or 1)


def resolve_threads(threads: int | None) -> int:
    """``threads`` if positive, else :func:`available_cores` (0 or None = "what we may use").

    Raises:
        ValueError: a negative count.
    """
    if threads is not None and threads < 0:
        raise ValueError(f"--threads must be >= 0 (0 = the {available_cores()} cores this "
                         f"process may use), got {threads}.")
    return int(threads) if threads else available_cores()


def set_threads(threads: int | None = 0, *, import_torch: bool = False) -> int:
    """Use ``threads`` CPU threads (0/None = :func:`available_cores`) in this process and its children.

    Sets the OpenMP/BLAS variables for child processes (workers spawned later start with them)
    and, when torch is imported (or ``import_torch``), ``torch.set_num_threads``.

    Returns:
        The thread count now in use.
    """
    n = resolve_threads(threads)
    for var in THREAD_ENV_VARS:
        os.environ[var] = str(n)
    if import_torch or "torch" in sys.modules:
        import torch

        torch.set_num_threads(n)
    return n
