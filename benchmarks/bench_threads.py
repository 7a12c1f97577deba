"""Training step time beside a busy process: torch's default threads vs pinned threads.

torch's intra-op threads spin-wait for each other; when another process holds one of the cores
torch counted, every parallel region waits for a thread that is not running. This benchmark
measures one training run (``bench_train.py``'s in-memory step time, same model and batches)
in three settings, side by side in one run:

1. ``quiet``: no other process, threads = every core this process may use;
2. ``busy_unpinned``: a second process spinning on one core, torch at its default thread count
   (one per core: what a CLI without ``--threads`` did);
3. ``busy_pinned``: the same busy process, training with ``--threads`` = the cores left free
   (``byog_env.threads.available_cores()`` minus the busy one; what ``taskset`` + the CLIs'
   affinity-based default give).

    python benchmarks/bench_threads.py            # prints the ratio busy_unpinned / busy_pinned

The last line is one JSON object with the figures.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from byog_env.threads import available_cores  # noqa: E402  (after the sys.path line: runs as a script)


def step_time(threads: int, cores: set[int] | None = None) -> float:
    """In-memory seconds per training step of ``bench_train.py --quick`` with ``threads``."""
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_train.py"), "--quick",
           "--workers", "0", "--threads", str(threads)]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env,
                         preexec_fn=(lambda: os.sched_setaffinity(0, cores)) if cores else None)
    return float(json.loads(out.stdout.strip().splitlines()[-1])["s_per_step_in_memory"])


def main() -> None:
    cores = sorted(os.sched_getaffinity(0))
    n = available_cores()
    if n < 2:
        print(json.dumps({"skipped": f"needs >= 2 cores, this process may use {n}"}))
        return
    quiet = step_time(n)
    busy_core = cores[-1]
    spin = f"import os\nos.sched_setaffinity(0, {{{busy_core}}})\nwhile True: pass"
    spinner = subprocess.Popen([sys.executable, "-c", spin])  # pins itself to the busy core
    try:
        unpinned = step_time(n)
        free = set(cores) - {busy_core}
        pinned = step_time(len(free), free)
    finally:
        spinner.kill()
        spinner.wait()
    figures = {"cores": n, "s_per_step_quiet": quiet, "s_per_step_busy_unpinned": unpinned,
               "s_per_step_busy_pinned": pinned, "unpinned_over_pinned": unpinned / pinned,
               "busy_pinned_over_quiet": pinned / quiet}
    print(f"quiet ({n} threads): {quiet:.3f} s/step; beside a busy process: "
          f"{unpinned:.3f} s/step with {n} threads, {pinned:.3f} s/step pinned to "
          f"{len(free)} free core(s) -> unpinned/pinned = {unpinned / pinned:.2f}x")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
