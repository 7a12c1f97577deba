"""Thread counts follow the cores a process may use, not the machine's core count."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from byog_env.threads import available_cores, resolve_threads

CHILD = """
import os, sys
import torch
from byog_env.threads import available_cores, set_threads
n = set_threads(0)
print(available_cores(), n, torch.get_num_threads(), os.environ["OMP_NUM_THREADS"])
"""


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs Linux CPU affinity and >= 2 cores")
def test_default_threads_follow_the_cpu_affinity_not_the_machine():
    core = min(os.sched_getaffinity(0))
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True,
                         preexec_fn=lambda: os.sched_setaffinity(0, {core}))
    # one allowed core -> one thread everywhere, although os.cpu_count() says more
    assert out.stdout.split() == ["1", "1", "1", "1"]
    assert (os.cpu_count() or 1) >= 2


def test_explicit_threads_win_and_negative_is_refused():
    assert resolve_threads(3) == 3
    assert resolve_threads(0) == available_cores() == resolve_threads(None)
    with pytest.raises(ValueError, match="--threads must be >= 0"):
        resolve_threads(-1)


def test_cli_thread_defaults_follow_the_affinity():
    """Every CLI's --threads 0 resolves to the cores this process may use (the study runner
    shares them among its workers); negative counts are usage errors."""
    from collect.config import CollectConfig
    from collect.errors import UsageError
    from experiments.run_all import worker_threads

    n = available_cores()
    assert worker_threads(0, 1) == n and worker_threads(0, 4 * n) == 1
    assert worker_threads(3, 8) == 3 and worker_threads(0, 2) == max(1, n // 2)
    with pytest.raises(UsageError, match="--threads must be >= 0"):
        CollectConfig(env="crafter", out="data/x", episodes=1, threads=-1)
