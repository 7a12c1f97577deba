"""Collector: vector-env autoreset correctness, determinism, resume after a kill, CLI smoke runs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from standin_env import ENV_ID, assert_same_episodes, decode_frame

from collect.config import CollectConfig, episode_seed
from collect.dataset import open_dataset
from collect.engine import Collector
from collect.errors import CollectError
from collect.rollout import collect_dataset

ROOT = Path(__file__).resolve().parent.parent


def _cfg(out: Path, **kw) -> CollectConfig:
    return CollectConfig(**{"env": ENV_ID, "out": out, "episodes": 8, "seed": 5, "progress": False, **kw})


def _episodes(path: Path) -> list:
    return list(open_dataset(path).iter_episodes())


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> list:
    """Eight episodes collected with a single env."""
    out = tmp_path_factory.mktemp("ref") / "ds"
    collect_dataset(_cfg(out))
    return _episodes(out)


def test_episodes_follow_their_seed_and_never_mix(reference):
    assert [e.index for e in reference] == list(range(8))
    for e in reference:
        seed = episode_seed(5, e.index)
        assert e.record["seed"] == seed
        assert e.length == 3 + seed % 5 + 1  # reset frame + one frame per step
        assert [decode_frame(f) for f in e.frames] == [(seed % 251, t) for t in range(e.length)]
        assert e.annotations[0] == [f"start {seed % 251}"] and e.annotations[-1][-1] == "goal reached"
        assert e.terminated.tolist() == [False] * (e.length - 1) + [True]
        assert e.rewards.tolist() == [0.0] * (e.length - 1) + [1.0]
        assert e.actions[-1] == -1 and ((e.actions[:-1] >= 0) & (e.actions[:-1] < 4)).all()
        assert e.record["success"] is True


@pytest.mark.parametrize("num_envs,mode", [(3, "sync"), (2, "async")])
def test_vector_env_autoreset_records_the_same_episodes(tmp_path, reference, num_envs, mode):
    """NextStep autoreset: the reset step starts the new episode, never extends the old one."""
    out = tmp_path / "ds"
    summary = collect_dataset(_cfg(out, num_envs=num_envs, vector_mode=mode))
    episodes = _episodes(out)
    assert summary["episodes"] == 8 and summary["steps"] == sum(e.length - 1 for e in reference)
    for e, ref in zip(episodes, reference):
        assert e.index == ref.index
        np.testing.assert_array_equal(e.frames, ref.frames)  # no frame of another episode
        np.testing.assert_array_equal(e.actions, ref.actions)  # policy reseeded per episode
        assert e.annotations == ref.annotations


def test_steps_budget_finishes_running_episodes(tmp_path):
    summary = collect_dataset(_cfg(tmp_path / "ds", episodes=None, steps=20, num_envs=2, vector_mode="sync"))
    episodes = _episodes(tmp_path / "ds")
    assert summary["steps"] >= 20 and [e.index for e in episodes] == list(range(len(episodes)))
    assert all(e.terminated[-1] for e in episodes)
    assert summary["steps"] < 20 + 2 * 7  # at most the two running episodes (<= 7 steps) overshoot


def test_resume_after_kill_mid_collection(tmp_path, reference, monkeypatch):
    out = tmp_path / "ds"
    written = []
    original = Collector._write

    def dying_write(self, b):
        if len(written) == 3:  # the other env is mid-episode: its episode is lost
            raise KeyboardInterrupt
        written.append(b.index)
        return original(self, b)

    monkeypatch.setattr(Collector, "_write", dying_write)
    with pytest.raises(KeyboardInterrupt):
        collect_dataset(_cfg(out, num_envs=2, vector_mode="sync"))
    monkeypatch.setattr(Collector, "_write", original)
    chunk = out / "data" / "chunk-000"
    (chunk / "episode_000005.parquet.abc.tmp").write_bytes(b"PAR1 half-written")  # killed writer
    assert not (out / "meta" / "episodes.parquet").exists()
    assert len(list(chunk.glob("*.parquet"))) == 3

    with pytest.raises(Exception, match="already holds a dataset; pass --resume"):
        collect_dataset(_cfg(out))
    summary = collect_dataset(_cfg(out, resume=True))
    episodes = _episodes(out)
    assert summary["episodes"] == 8 and [e.index for e in episodes] == list(range(8))
    assert not list(out.rglob("*.tmp"))
    for e, ref in zip(episodes, reference):
        np.testing.assert_array_equal(e.frames, ref.frames)
        assert e.annotations == ref.annotations
    assert collect_dataset(_cfg(out, resume=True))["episodes"] == 8  # nothing left to do, nothing duplicated


def test_resume_refuses_other_settings(tmp_path):
    collect_dataset(_cfg(tmp_path / "ds", episodes=2))
    with pytest.raises(Exception, match="collected with seed=5 but this run has seed=6"):
        collect_dataset(_cfg(tmp_path / "ds", episodes=3, seed=6, resume=True))


def test_config_validation_messages(tmp_path):
    with pytest.raises(CollectError, match="exactly one of --episodes N or --steps N"):
        CollectConfig(env="crafter", out=tmp_path)
    with pytest.raises(CollectError, match="--num-envs must be >= 1"):
        CollectConfig(env="crafter", out=tmp_path, episodes=1, num_envs=0)
    with pytest.raises(CollectError, match="not both"):
        CollectConfig(env="crafter", out=tmp_path, episodes=1, workers=2, ray_address="auto")


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT)])}
    return subprocess.run([sys.executable, str(ROOT / "collect" / "rollout.py"), *args],
                          capture_output=True, text=True, check=False, env=env, cwd=ROOT, timeout=120)


@pytest.mark.slow
def test_cli_smoke_writes_dataset_video_and_summary(tmp_path):
    import av

    out = tmp_path / "ds"
    res = _run_cli("--env", ENV_ID, "--episodes", "3", "--seed", "2", "--out", str(out),
                   "--num-envs", "2", "--video", "--video-scale", "2")
    assert res.returncode == 0, res.stderr
    assert "episodes 3" in res.stdout and "annotations by event kind" in res.stdout
    info = json.loads((out / "meta" / "info.json").read_text())
    assert info["num_episodes"] == 3 and info["frame_shape"] == [8, 8, 3]
    assert info["action_space"] == {"type": "Discrete", "n": 4, "start": 0}
    assert info["collect_config"]["num_envs"] == 2 and info["format_version"] == "1.1"
    lengths = [e.length for e in _episodes(out)]
    assert f"frames {sum(lengths)}" in res.stdout
    for i, n in enumerate(lengths):
        with av.open(str(out / "videos" / f"episode_{i:06d}.mp4")) as c:
            frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        assert len(frames) == n and frames[0].shape[1] == 16  # 8 px scaled by 2

    bad = _run_cli("--env", "no-such-env", "--episodes", "1", "--out", str(tmp_path / "x"))
    assert bad.returncode == 2 and bad.stderr.startswith("error: Unknown environment 'no-such-env'")
    assert "Traceback" not in bad.stderr
    again = _run_cli("--env", ENV_ID, "--episodes", "3", "--seed", "2", "--out", str(out))
    assert again.returncode == 2 and "pass --resume" in again.stderr and "Traceback" not in again.stderr


@pytest.mark.slow
def test_babyai_bot_collects_intent_with_sync_fallback(tmp_path, capsys):
    out = tmp_path / "ds"
    summary = collect_dataset(CollectConfig(env="babyai-gotolocal", policy="babyai-bot", out=out, episodes=2,
                                    num_envs=2, vector_mode="async", max_episode_steps=64,
                                    progress=False))
    assert "run in-process (--vector-mode sync)" in capsys.readouterr().err
    episodes = _episodes(out)
    assert summary["success_rate"] == 1.0 and summary["episodes"] == 2
    for e in episodes:
        assert e.intent is not None and any(e.intent[:-1]) and e.intent[-1] == []
        assert e.record["mission"] and e.frames.dtype == np.uint8
        assert any(e.annotations)


@pytest.mark.slow
def test_process_mode_records_the_same_episodes_as_the_vector_env(tmp_path):
    # --vector-mode process: independent worker processes write whole episodes, same seeds/files
    base = {"env": ENV_ID, "episodes": 5, "seed": 4, "progress": False, "num_envs": 2}
    vec = collect_dataset(CollectConfig(**base, out=tmp_path / "vec", vector_mode="sync"))
    proc = collect_dataset(CollectConfig(**base, out=tmp_path / "proc", vector_mode="process"))
    assert proc["episodes"] == vec["episodes"] == 5 and proc["steps"] == vec["steps"]
    assert_same_episodes(tmp_path / "vec", tmp_path / "proc")


def test_cli_exit_codes_and_where_the_dataset_went(tmp_path, capsys):
    from collect.rollout import cli

    out = tmp_path / "ds"
    assert cli(["--env", ENV_ID, "--episodes", "2", "--out", str(out), "--no-progress"]) == 0
    assert f"dataset: {out} (resumed 0 episodes, collected 2)" in capsys.readouterr().out
    assert cli(["--env", ENV_ID, "--episodes", "3", "--out", str(out), "--resume", "--no-progress"]) == 0
    assert f"dataset: {out} (resumed 2 episodes, collected 1)" in capsys.readouterr().out
    # usage error: exit 2, one `error:` line, nothing written
    assert cli(["--env", ENV_ID, "--episodes", "2", "--num-envs", "0", "--out", str(tmp_path / "u")]) == 2
    err = capsys.readouterr().err
    assert err == "error: --num-envs must be >= 1, got 0.\n" and not (tmp_path / "u").exists()


def test_cli_ctrl_c_exits_130_saying_what_was_kept(tmp_path, capsys, monkeypatch):
    from collect.rollout import cli

    original, written = Collector._write, []

    def interrupted(self, b):
        if written:
            raise KeyboardInterrupt
        written.append(b.index)
        return original(self, b)

    monkeypatch.setattr(Collector, "_write", interrupted)
    assert cli(["--env", ENV_ID, "--episodes", "3", "--out", str(tmp_path / "ds"), "--no-progress"]) == 130
    assert capsys.readouterr().err == ("interrupted: finished episodes are saved; rerun with --resume "
                                       "to continue.\n")
    assert len(list((tmp_path / "ds").glob("data/chunk-000/episode_*.parquet"))) == 1
