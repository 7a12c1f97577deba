"""Fault injection (issue #14): kill -9 at seeded random moments and at deterministic points,
resume, compare with an uninterrupted run; no process left behind.

Training half: ``python -m agents.train`` (``--threads 1``) is killed at >= 10 seeded random
moments (chosen by training step, then a random sub-step delay, so kills land in steps, in
evaluation and inside checkpoint writes) and once inside a checkpoint's temporary directory
(the test-only hook ``BYOG_FAULT=ckpt-tmp:STEP``); after every kill each checkpoint on disk
must load (or be skipped with a warning), the DataLoader worker must exit with its parent, and
the resumed chain must end with weights bit-identical to the uninterrupted run's.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_train import synthetic_dataset, tiny_args

from agents.train import cli
from agents.training import checkpoint as C

REPO = Path(__file__).resolve().parents[1]
STEPS = 12
EVERY = 2
KILLS = 10


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.pop(C.FAULT_ENV, None)
    return {**env, **extra}


def _args(data: Path, out: Path, resume: bool) -> list[str]:
    args = tiny_args(data, out, STEPS, "--checkpoint.every", str(EVERY),
                     "--checkpoint.keep_last", "2", "--logging.log_every", "1",
                     "--loader.num_workers", "1")
    return [*args, "--resume"] if resume else args


def _start(data: Path, out: Path, **env: str) -> subprocess.Popen:
    resume = C.latest_checkpoint(out) is not None
    return subprocess.Popen([sys.executable, "-m", "agents.train", *_args(data, out, resume)],
                            cwd=REPO, env=_env(**env), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def _children(pid: int) -> list[int]:
    kids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                stat = (p / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(p.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_gone(pids: list[int], timeout: float = 20.0) -> list[int]:
    deadline = time.time() + timeout
    while time.time() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    return [p for p in pids if _alive(p)]


def _logged_step(out: Path) -> int:
    try:
        lines = (out / "metrics.jsonl").read_text().splitlines()
    except OSError:
        return -1
    steps = [json.loads(x).get("step", -1) for x in lines[-3:] if x.strip().endswith("}")]
    return max(steps, default=-1)


def _check_checkpoints(out: Path, counts: dict[str, int]) -> None:
    """Every checkpoint on disk loads, or is skipped with a warning naming it."""
    for ckpt in C.list_checkpoints(out):
        counts["training checkpoints checked"] = counts.get("training checkpoints checked", 0) + 1
        why = C.checkpoint_problem(ckpt, resume=True)
        if why is None:
            C.load_agent(ckpt)
            C.load_trainer_state(ckpt)
        else:
            with pytest.warns(UserWarning, match=ckpt.name):
                C.intact_checkpoint(out, resume=True)


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(str(out / "checkpoints" / f"step_{STEPS:06d}" / "agent" / "model.safetensors"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("faults")
    data = synthetic_dataset(root / "ds", episodes=6, length=20)
    ref = root / "ref"
    assert cli(_args(data, ref, resume=False)) == 0  # in-process: same weights, no start-up
    return {"root": root, "data": data, "ref": ref}


@pytest.mark.slow
def test_training_survives_kill_9_at_random_moments(reference, fault_counts):
    data, out = reference["data"], reference["root"] / "killed"
    rng = random.Random(14)
    kills = attempts = 0
    while kills < KILLS and attempts < 3 * KILLS:
        attempts += 1
        target = rng.randint(0, STEPS - 1)  # kill once this step is logged ...
        extra = rng.uniform(0.0, 0.4)  # ... and a random part of a step later
        proc = _start(data, out)
        while proc.poll() is None and _logged_step(out) < target:
            time.sleep(0.02)
        time.sleep(extra)
        kids = _children(proc.pid)
        if proc.poll() is not None:  # finished (or failed) before the moment came
            assert proc.returncode == 0, proc.stderr.read()[-2000:]
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stderr.close()
        kills += 1
        assert _wait_gone(kids) == [], "a DataLoader worker outlived its killed parent"
        _check_checkpoints(out, fault_counts)
    fault_counts["training kills survived"] = fault_counts.get("training kills survived", 0) + kills
    if kills < KILLS:  # the run finished early: finish the count from fresh runs
        pytest.fail(f"only {kills} kills landed before the run finished; lower the delays")
    proc = _start(data, out)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    ref, got = _weights(reference["ref"]), _weights(out)
    assert ref.keys() == got.keys()
    for k in ref:
        assert torch.equal(ref[k], got[k]), k  # bit-identical with --threads 1
    s_ref = json.loads((reference["ref"] / "summary.json").read_text())
    s_got = json.loads((out / "summary.json").read_text())
    assert s_got["weight_hash"] == s_ref["weight_hash"] and s_got["steps"] == STEPS


@pytest.mark.slow
def test_kill_inside_a_checkpoint_temp_directory(reference, fault_counts):
    data, out = reference["data"], reference["root"] / "injected"
    at = 2 * EVERY
    proc = _start(data, out, **{C.FAULT_ENV: f"ckpt-tmp:{at}"})
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL, err[-2000:]
    tmp = out / "checkpoints" / f".tmp-step_{at:06d}"
    assert (tmp / "agent" / "model.safetensors").is_file()  # written, never renamed
    assert [p.name for p in C.list_checkpoints(out)] == [f"step_{EVERY:06d}"]
    _check_checkpoints(out, fault_counts)
    fault_counts["training kills survived"] = fault_counts.get("training kills survived", 0) + 1
    assert cli(_args(data, out, resume=True)) == 0  # in-process, from step EVERY
    assert not tmp.exists()  # the same step's save replaced the leftover
    ref, got = _weights(reference["ref"]), _weights(out)
    assert all(torch.equal(ref[k], got[k]) for k in ref)


@pytest.mark.slow
def test_torchrun_ranks_exit_when_the_launcher_is_killed(reference, tmp_path, fault_counts):
    out = tmp_path / "ddp"
    args = tiny_args(reference["data"], out, 100000, "--checkpoint.every", "0",
                     "--logging.log_every", "1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "agents/train.py", *args], cwd=REPO, env=_env(), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True)
    ranks: list[int] = []
    try:
        deadline = time.time() + 180
        while time.time() < deadline and _logged_step(out) < 2 and proc.poll() is None:
            time.sleep(0.2)
        assert proc.poll() is None and _logged_step(out) >= 2
        ranks = _children(proc.pid)
        assert len(ranks) == 2
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        left = _wait_gone(ranks, timeout=30)
        assert left == [], f"ranks {left} outlived torchrun"
        fault_counts["training kills survived"] = fault_counts.get("training kills survived", 0) + 1
    finally:  # never leave a process behind, whatever failed above
        for pid in [proc.pid, *ranks]:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=30)
