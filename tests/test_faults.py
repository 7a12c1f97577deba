"""Fault injection (issue #14): kill -9 at seeded random moments and at deterministic points,
resume, compare with an uninterrupted run; no process left behind.

Training half: ``python -m agents.training`` (``--threads 1``) is killed at >= 10 seeded random
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
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from helpers import synthetic_dataset, tiny_args
from safetensors.torch import load_file

from agents.training import checkpoint as C
from agents.training import loading as L
from agents.training.command import cli

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
    return subprocess.Popen([sys.executable, "-m", "agents.training", *_args(data, out, resume)],
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
            L.load_agent(ckpt)
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
         "-m", "agents.training", *args], cwd=REPO, env=_env(), stdout=subprocess.DEVNULL,
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


# =============================================================================== collection half
# ``python collect/rollout.py`` on the stand-in probe env (a few ms a step), in one process and
# with two worker processes, killed -9 at seeded random moments (chosen by episodes written, then
# a random delay) and at a deterministic point inside an atomic write (``BYOG_FAULT=
# before-rename:N``: the temp file is complete, the rename not done); every chain is resumed with
# ``--resume`` and must end byte-identical to an uninterrupted run, with no process left behind.
# Then a table of bad inputs: exit status, one ``error:`` line naming problem and fix, and nothing
# already on disk changed.
COLLECT_EPISODES = 16
COLLECT_MODES = {"single": [], "process": ["--num-envs", "2"]}


def _collect_args(out: Path, mode: str) -> list[str]:
    from standin_env import PROBE_ID

    return ["--env", PROBE_ID, "--episodes", str(COLLECT_EPISODES), "--seed", "7", "--out", str(out),
            *COLLECT_MODES[mode]]


@pytest.fixture(scope="module")
def collect_reference(tmp_path_factory) -> dict[str, Path]:
    """An uninterrupted CLI run per mode (the files to match byte for byte)."""
    from fault_helpers import collect_env, start_collect

    root = tmp_path_factory.mktemp("collect_faults")
    refs = {}
    for mode in COLLECT_MODES:
        refs[mode] = root / f"ref-{mode}"
        proc = start_collect(*_collect_args(refs[mode], mode), env=collect_env(f"ref-{mode}"))
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
    return {"root": root, **refs}


def _episodes_written(out: Path) -> int:
    return len(list(out.glob("data/chunk-*/episode_*.parquet")))


def _finish_and_compare(out: Path, mode: str, ref: Path, marker: str, fault_counts: dict) -> None:
    from fault_helpers import collect_env, dataset_bytes, start_collect, wait_gone

    proc = start_collect(*_collect_args(out, mode), "--resume", env=collect_env(marker))
    stdout, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    assert f"episodes {COLLECT_EPISODES}" in stdout
    assert wait_gone(marker) == []
    want, got = dataset_bytes(ref), dataset_bytes(out)
    lost = [f for f in want if f not in got]
    fault_counts["collect episodes lost"] = fault_counts.get("collect episodes lost", 0) + len(lost)
    assert not lost and set(got) == set(want), (lost, set(got) - set(want))  # none lost or extra
    for rel in want:
        assert got[rel] == want[rel], f"{rel} differs from the uninterrupted run's"


@pytest.mark.slow
@pytest.mark.parametrize("mode", list(COLLECT_MODES))
def test_collection_survives_kill_9_at_random_moments(collect_reference, mode, fault_counts):
    from fault_helpers import collect_env, start_collect, wait_gone

    out = collect_reference["root"] / f"killed-{mode}"
    rng = random.Random(f"collect-{mode}")
    marker = f"faults-{mode}-{os.getpid()}"
    kills = attempts = 0
    while kills < KILLS // 2 and attempts < KILLS * 2:
        attempts += 1
        target = rng.randint(0, COLLECT_EPISODES - 1)  # kill once this many episodes are on disk ...
        extra = rng.uniform(0.0, 0.3)  # ... and a random part of an episode later
        proc = start_collect(*_collect_args(out, mode), "--resume",
                             env=collect_env(marker, BYOG_PROBE_STEP_S="0.02"))
        while proc.poll() is None and _episodes_written(out) < target:
            time.sleep(0.01)
        time.sleep(extra)
        if proc.poll() is not None:  # finished before the moment came: start over from empty
            assert proc.returncode == 0, proc.stderr.read()[-2000:]
            proc.communicate()
            shutil.rmtree(out)
            continue
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        kills += 1
        assert wait_gone(marker) == [], "a collector worker or the resource tracker outlived the driver"
    fault_counts["collect kills survived"] = fault_counts.get("collect kills survived", 0) + kills
    assert kills == KILLS // 2, f"only {kills} kills landed; lower the delays"
    _finish_and_compare(out, mode, collect_reference[mode], marker, fault_counts)


# single mode: write 1 is meta/info.json (settings, before any episode), writes 2..17 the
# episodes, 18 meta/episodes.parquet, 19 the final meta/info.json; process mode: each worker dies
# inside its own second episode write.
INJECTIONS = [("single", 1), ("single", 9), ("single", 19), ("process", 2)]


@pytest.mark.slow
@pytest.mark.parametrize("mode, nth", INJECTIONS)
def test_collection_killed_inside_an_atomic_write(collect_reference, mode, nth, fault_counts):
    from fault_helpers import collect_env, start_collect, wait_gone

    out = collect_reference["root"] / f"injected-{mode}-{nth}"
    marker = f"inject-{mode}-{nth}-{os.getpid()}"
    proc = start_collect(*_collect_args(out, mode), env=collect_env(marker, BYOG_FAULT=f"before-rename:{nth}"))
    _, err = proc.communicate(timeout=300)
    if mode == "single":
        assert proc.returncode == -signal.SIGKILL
    else:  # the workers died; the driver says so and how to continue
        assert proc.returncode == 1 and "rerun with --resume" in err.strip().splitlines()[-1]
    assert list(out.rglob("*.tmp")), "the kill should leave the complete temp file behind"
    assert wait_gone(marker) == []
    fault_counts["collect kills survived"] = fault_counts.get("collect kills survived", 0) + 1
    _finish_and_compare(out, mode, collect_reference[mode], marker, fault_counts)
    assert not list(out.rglob("*.tmp"))


def _bad_input_cases() -> list[tuple[str, Callable[[Path], list[str]], int, list[str]]]:
    """(name, setup(tmp) -> extra CLI args, exit status, fragments of the one error line)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from standin_env import ENV_ID, PROBE_ID

    def dataset(tmp: Path) -> Path:
        from collect.config import CollectConfig
        from collect.rollout import collect_dataset

        out = tmp / "ds"
        collect_dataset(CollectConfig(env=ENV_ID, out=out, episodes=2, seed=5, progress=False))
        return out

    def base(out: Path, *more: str) -> list[str]:
        return ["--env", ENV_ID, "--episodes", "3", "--seed", "5", "--out", str(out), "--no-progress", *more]

    def killed_before_meta(tmp):  # settings on disk, episodes of another env
        out = dataset(tmp)
        (out / "meta" / "episodes.parquet").unlink()
        return base(out, "--resume", "--env", PROBE_ID)

    def lerobot(version):
        def setup(tmp):
            out = tmp / "lerobot"
            (out / "meta").mkdir(parents=True)
            (out / "meta" / "info.json").write_text(json.dumps({"codebase_version": version, "fps": 10}))
            (out / "data" / "chunk-000").mkdir(parents=True)
            name = "episode_000000.parquet" if version == "v2.1" else "file-000.parquet"
            pq.write_table(pa.table({"episode_index": [0, 0]}), out / "data" / "chunk-000" / name)
            return base(out, "--resume")
        return setup

    def non_empty(tmp):
        (tmp / "mine").mkdir()
        (tmp / "mine" / "notes.txt").write_text("keep")
        return base(tmp / "mine")

    def bad_json(tmp):
        out = dataset(tmp)
        (out / "meta" / "info.json").write_text("{")
        return base(out, "--resume")

    def out_is_file(tmp):
        (tmp / "f").write_text("keep")
        return base(tmp / "f")

    def locked(tmp):
        from collect.writer import lock_dataset

        out = dataset(tmp)
        _HELD.append(lock_dataset(out))  # another collector holds the dataset
        return base(out, "--resume")

    def foreign_parquet(tmp):
        out = dataset(tmp)
        pq.write_table(pa.table({"x": [1]}), out / "data" / "chunk-000" / "episode_000002.parquet")
        return base(out, "--resume")

    return [
        ("resume with another env", killed_before_meta, 2, ["collected with env=", "use the same settings"]),
        ("LeRobot v2.1 dir", lerobot("v2.1"), 2, ["not a BYOG dataset", "choose another output directory"]),
        ("LeRobot v3.0 dir", lerobot("v3.0"), 2, ["not a BYOG dataset", "choose another output directory"]),
        ("non-empty non-dataset dir", non_empty, 2, ["not empty", "choose another output directory"]),
        ("invalid meta/info.json", bad_json, 2, ["info.json is not valid JSON", "delete it and rerun with --resume"]),
        ("--out is a file", out_is_file, 2, ["is a file", "pass a directory"]),
        ("second collector", locked, 1, ["Another collector", "wait for it to finish"]),
        ("foreign parquet on resume", foreign_parquet, 2, ["was not written by BYOG", "move it out"]),
        ("existing dataset, no --resume", lambda t: base(dataset(t)), 2, ["already holds a dataset", "pass --resume"]),
        ("resume with another seed", lambda t: base(dataset(t), "--resume", "--seed", "6"), 2,
         ["collected with seed=5 but this run has seed=6"]),
        ("--num-envs 0", lambda t: base(t / "n", "--num-envs", "0"), 2, ["--num-envs must be >= 1"]),
        ("--episodes and --steps", lambda t: base(t / "n", "--steps", "5"), 2, ["exactly one of --episodes"]),
        ("unknown policy", lambda t: base(t / "n", "--policy", "smart"), 2, ["Unknown policy 'smart'", "Valid policies"]),
        ("unknown env", lambda t: ["--env", "no-such-env", "--episodes", "1", "--out", str(t / "n"), "--no-progress"],
         2, ["no-such-env"]),
    ]


_HELD: list = []


@pytest.mark.slow
def test_collector_bad_inputs(tmp_path, capsys, fault_counts):
    from fault_helpers import snapshot

    from collect.rollout import cli as collect_cli

    cases = _bad_input_cases()
    for i, (name, setup, status, fragments) in enumerate(cases):
        tmp = tmp_path / f"case{i}"
        tmp.mkdir()
        args = setup(tmp)
        capsys.readouterr()
        before = snapshot(tmp)
        assert collect_cli(args) == status, name
        err = capsys.readouterr().err
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), (name, err)
        for fragment in fragments:
            assert fragment in lines[0], (name, lines[0])
        assert snapshot(tmp) == before, f"{name}: files on disk changed"
        for handle in _HELD:
            handle.close()
        _HELD.clear()
    fault_counts["collect bad inputs tried"] = fault_counts.get("collect bad inputs tried", 0) + len(cases)
