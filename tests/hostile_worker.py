"""Runs a batch of hostile-input cases in ONE interpreter (tests/test_hostile_inputs.py).

``python tests/hostile_worker.py CASES.json RESULTS.jsonl [FIRST]``: each case calls a CLI's
``cli(argv)`` in-process with stdout/stderr captured and an alarm as its time limit, and appends
one JSON line to RESULTS (exit code, output, an escaped exception's traceback, the peak RSS
of this process during the case). Lines are flushed one by one, so if a case kills the interpreter (a crash in
native code) the test sees which case it was and restarts the batch after it.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import signal
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import gymnasium as gym  # noqa: E402
from helpers import PatternEnv  # noqa: E402

ENV_ID = "HostilePattern-v0"
"""A 16x16 stand-in env for live narration (tests/helpers.py's PatternEnv)."""


class HostilePatternEnv(PatternEnv):
    """PatternEnv as gymnasium makes it (``render_mode`` accepted), 16x16 frames."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, render_mode: str | None = None) -> None:
        super().__init__(size=16)
        self.render_mode = render_mode

    def render(self):
        return self._obs()


def register_env() -> None:
    if ENV_ID not in gym.registry:
        gym.register(id=ENV_ID, entry_point=HostilePatternEnv)


class Hang(Exception):
    """The case ran past its time limit."""


def _alarm(signum: int, frame: object) -> None:
    raise Hang()


def _reset_peak() -> None:
    """Resets this process's peak RSS (VmHWM) to its current RSS (Linux >= 4.0), so each case's
    peak is its own, not that of an earlier case in the same interpreter."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass  # then VmHWM stays the interpreter's peak so far: stricter, still correct


def _peak_mb() -> float:
    """Peak RSS since the last reset, in MiB (``ru_maxrss`` where /proc is missing)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB


def _clis() -> dict:
    """Every CLI the cases call, imported once."""
    from agents.narrate.command import cli as narrate
    from agents.obs.embed import cli as embed
    from agents.training.command import cli as train
    from collect.export import cli as export
    from collect.importers.__main__ import cli as importers
    from collect.inspect_dataset import cli as inspect

    return {"inspect": inspect, "train": train, "narrate": narrate, "import": importers,
            "export": export, "embed": embed}


def main(cases_file: str, results_file: str, first: int = 0) -> None:
    import torch

    torch.set_num_threads(1)
    register_env()
    clis = _clis()
    cases = json.loads(Path(cases_file).read_text())
    signal.signal(signal.SIGALRM, _alarm)
    with open(results_file, "a") as results:
        for case in cases[first:]:
            out, err = io.StringIO(), io.StringIO()
            rc, escaped, start = None, None, time.perf_counter()
            os.chdir(case["dir"])  # a relative write would land in the case's directory
            _reset_peak()
            signal.alarm(int(case.get("timeout", 30)))
            try:
                with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                    rc = clis[case["cli"]](case["argv"])
            except Hang:
                escaped = "hang"
            except SystemExit as e:
                rc = e.code if isinstance(e.code, int) else 1
            except BaseException:  # noqa: BLE001 - the test reports it as a traceback
                escaped = traceback.format_exc()
            finally:
                signal.alarm(0)
            peak = _peak_mb()
            results.write(json.dumps({
                "name": case["name"], "rc": rc, "stdout": out.getvalue()[-4000:],
                "stderr": err.getvalue()[-4000:], "escaped": escaped, "peak_mb": peak,
                "seconds": time.perf_counter() - start}) + "\n")
            results.flush()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 0)
