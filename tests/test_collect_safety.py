"""Issue #14, collector items: nothing lost, nothing mixed, nothing deleted that is not ours.

Each test here failed before its fix (the commit before the fix holds it failing).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fault_helpers import marked_processes, snapshot
from standin_env import ENV_ID, PROBE_ID, assert_same_episodes

from collect.config import CollectConfig, episode_seed
from collect.engine import Collector
from collect.errors import DatasetError
from collect.rollout import cli, collect_dataset

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"


def _cfg(out: Path, **kw) -> CollectConfig:
    return CollectConfig(**{"env": ENV_ID, "out": out, "episodes": 4, "seed": 5, "progress": False, **kw})


def run_cli(*args: str, env: dict[str, str] | None = None, **kw) -> subprocess.CompletedProcess:
    full = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(ROOT)]), **(env or {})}
    return subprocess.run([sys.executable, str(ROOT / "collect" / "rollout.py"), "--no-progress", *args],
                          capture_output=True, text=True, check=False, env=full, cwd=ROOT, timeout=180, **kw)


def one_error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "ds"
    collect_dataset(_cfg(out))
    return out


def _interrupted_after(out: Path, n: int, monkeypatch, **kw) -> None:
    """Collects into ``out`` and stops (KeyboardInterrupt) once ``n`` episodes are written."""
    written: list[int] = []
    original = Collector._write

    def dying_write(self, b):
        if len(written) == n:
            raise KeyboardInterrupt
        written.append(b.index)
        return original(self, b)

    monkeypatch.setattr(Collector, "_write", dying_write)
    with pytest.raises(KeyboardInterrupt):
        collect_dataset(_cfg(out, **kw))
    monkeypatch.setattr(Collector, "_write", original)


# ------------------------------------------------------------------------------------ item 1
def test_settings_are_recorded_before_the_first_episode_and_checked_on_every_resume(tmp_path, monkeypatch):
    out = tmp_path / "ds"
    _interrupted_after(out, 1, monkeypatch)
    info = json.loads((out / "meta" / "info.json").read_text())  # written before episode 0
    assert info["env"] == ENV_ID and info["seed"] == 5 and info["action_space"]["n"] == 4
    before = snapshot(out)
    with pytest.raises(DatasetError, match=f"collected with env='{ENV_ID}' but this run has env='{PROBE_ID}'"):
        collect_dataset(_cfg(out, env=PROBE_ID, resume=True))
    assert snapshot(out) == before
    # without meta/ (a run killed before it existed, or meta deleted), the episode files still
    # carry the settings they were collected with
    (out / "meta" / "info.json").unlink()
    before = snapshot(out)
    with pytest.raises(DatasetError, match=f"collected with env='{ENV_ID}' but this run has env='{PROBE_ID}'"):
        collect_dataset(_cfg(out, env=PROBE_ID, resume=True))
    assert snapshot(out) == before


# ------------------------------------------------------------------------------------ item 2
def _lerobot_v21(path: Path) -> None:
    (path / "meta").mkdir(parents=True)
    (path / "meta" / "info.json").write_text(json.dumps({
        "codebase_version": "v2.1", "chunks_size": 1000, "fps": 10,
        "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
        "features": {"action": {"dtype": "float32", "shape": [2]}}}))
    (path / "data" / "chunk-000").mkdir(parents=True)
    for i in range(2):
        pq.write_table(pa.table({"action": [[0.1, 0.2], [0.3, 0.4]], "episode_index": [i, i],
                                 "frame_index": [0, 1]}),
                       path / "data" / "chunk-000" / f"episode_{i:06d}.parquet")


def _lerobot_v30(path: Path) -> None:
    (path / "meta").mkdir(parents=True)
    (path / "meta" / "info.json").write_text(json.dumps({
        "codebase_version": "v3.0", "chunks_size": 1000, "fps": 10,
        "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"}))
    (path / "data" / "chunk-000").mkdir(parents=True)
    pq.write_table(pa.table({"episode_index": [0, 0, 1]}), path / "data" / "chunk-000" / "file-000.parquet")


@pytest.mark.parametrize("layout", [_lerobot_v21, _lerobot_v30])
@pytest.mark.parametrize("resume", [False, True])
def test_another_tools_dataset_is_refused_and_left_untouched(tmp_path, layout, resume):
    out = tmp_path / "lerobot"
    layout(out)
    before = snapshot(out)
    with pytest.raises(DatasetError, match="not a BYOG dataset.*choose another output directory") as e:
        collect_dataset(_cfg(out, resume=resume))
    assert "--resume" not in str(e.value)
    assert snapshot(out) == before


def test_resume_never_deletes_a_readable_file_it_did_not_write(tmp_path):
    out = tmp_path / "ds"
    collect_dataset(_cfg(out, episodes=2))
    foreign = out / "data" / "chunk-000" / "episode_000003.parquet"
    pq.write_table(pa.table({"x": [1, 2, 3]}), foreign)
    data = foreign.read_bytes()
    with pytest.raises(DatasetError, match="episode_000003.parquet was not written by BYOG"):
        collect_dataset(_cfg(out, resume=True))
    assert foreign.read_bytes() == data


def test_resume_says_when_it_replaces_a_corrupt_episode_of_ours(tmp_path, reference, capsys):
    out = tmp_path / "ds"
    collect_dataset(_cfg(out))
    bad = out / "data" / "chunk-000" / "episode_000002.parquet"
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])  # a torn file
    summary = collect_dataset(_cfg(out, resume=True))
    err = capsys.readouterr().err
    assert "episode_000002.parquet" in err and "corrupt" in err and "re-collect" in err
    assert summary["episodes"] == 4 and summary["collected_episodes"] == 1
    assert_same_episodes(reference, out)


# ------------------------------------------------------------------------------------ item 3
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664)])
def test_every_file_written_honours_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        collect_dataset(_cfg(tmp_path / "ds", episodes=2, video=True, video_scale=1))
    finally:
        os.umask(old)
    modes = {p: oct(m & 0o777) for p, (_, m) in snapshot(tmp_path / "ds").items()}
    assert modes and set(modes.values()) == {oct(mode)}, modes


# ------------------------------------------------------------------------------------ item 4
@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")
def test_process_workers_exit_when_the_driver_is_killed(tmp_path):
    marker = f"{os.getpid()}-{time.time_ns()}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(ROOT)]), "BYOG_TEST_RUN": marker,
           "BYOG_PROBE_STEP_S": "0.3"}
    driver = subprocess.Popen([sys.executable, str(ROOT / "collect" / "rollout.py"), "--no-progress",
                               "--env", PROBE_ID, "--episodes", "20", "--num-envs", "2",
                               "--out", str(tmp_path / "ds")], env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while len(marked_processes(marker)) < 4 and time.time() < deadline:  # driver, tracker, 2 workers
            time.sleep(0.2)
        assert len(marked_processes(marker)) >= 4, "the workers did not start"
        time.sleep(1.0)  # warming up or running episodes
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        deadline = time.time() + 15
        while marked_processes(marker) and time.time() < deadline:
            time.sleep(0.2)
        left = marked_processes(marker)
        assert not left, f"processes left behind after kill -9 of the driver: {left}"
    finally:
        for pid in marked_processes(marker):
            os.kill(pid, signal.SIGKILL)


# ------------------------------------------------------------------------------------ item 7
def test_invalid_info_json_on_resume_names_the_file_and_a_fix_that_works(tmp_path, reference):
    out = tmp_path / "ds"
    collect_dataset(_cfg(out))
    info = out / "meta" / "info.json"
    info.write_text('{"env": "standin')  # torn by hand or by another tool
    res = run_cli("--env", ENV_ID, "--episodes", "4", "--seed", "5", "--out", str(out), "--resume")
    line = one_error_line(res.stderr)
    assert res.returncode == 2 and str(info) in line and "not valid JSON" in line
    assert "delete it and rerun with --resume" in line
    info.unlink()  # follow the advice
    res = run_cli("--env", ENV_ID, "--episodes", "4", "--seed", "5", "--out", str(out), "--resume")
    assert res.returncode == 0, res.stderr
    assert_same_episodes(reference, out)


def test_out_pointing_at_a_file_is_a_usage_error(tmp_path, capsys):
    f = tmp_path / "notes.txt"
    f.write_text("mine")
    assert cli(["--env", ENV_ID, "--episodes", "1", "--out", str(f), "--no-progress"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(f) in line and "is a file" in line and f.read_text() == "mine"


# ------------------------------------------------------------------------------------ item 8
@pytest.mark.parametrize("resume", [False, True])
def test_rollout_into_a_non_empty_non_dataset_dir_is_refused(tmp_path, capsys, resume):
    d = tmp_path / "mine"
    (d / "sub").mkdir(parents=True)
    (d / "notes.txt").write_text("keep me")
    (d / "sub" / "x.parquet").write_bytes(b"not ours")
    before = snapshot(d)
    args = ["--env", ENV_ID, "--episodes", "1", "--out", str(d), "--no-progress"] + (["--resume"] if resume else [])
    assert cli(args) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(d) in line and "not empty" in line and "choose another output directory" in line
    assert snapshot(d) == before


# ------------------------------------------------------------------------------------ item 9
@pytest.mark.slow
def test_sb3_channel_first_image_model_acts_on_a_channel_last_env(tmp_path):
    """SB3 wraps image envs in VecTransposeImage, so a CnnPolicy model is trained on (3, H, W);
    its predict() transposes (H, W, 3) observations itself."""
    import gymnasium as gym

    sb3 = pytest.importorskip("stable_baselines3")
    from collect.policies import make_policy

    class ImageEnv(gym.Env):
        observation_space = gym.spaces.Box(0, 255, (36, 36, 3), np.uint8)
        action_space = gym.spaces.Discrete(3)

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            return self.observation_space.sample(), {}

        def step(self, action):
            return self.observation_space.sample(), 0.0, False, False, {}

    env = ImageEnv()
    model = sb3.PPO("CnnPolicy", env, n_steps=8, batch_size=8, device="cpu",
                    policy_kwargs={"features_extractor_kwargs": {"features_dim": 8}, "net_arch": []})
    assert model.observation_space.shape == (3, 36, 36)
    model.save(tmp_path / "cnn.zip")
    policy = make_policy(f"sb3:{tmp_path / 'cnn.zip'}", env, seed=0)
    obs, info = env.reset(seed=0)
    assert all(env.action_space.contains(policy.act(obs, info)) for _ in range(3))
    with pytest.raises(Exception, match="trained on observations"):
        make_policy(f"sb3:{tmp_path / 'cnn.zip'}",
                    type("Small", (ImageEnv,), {"observation_space": gym.spaces.Box(0, 255, (40, 36, 3), np.uint8)})())


# ------------------------------------------------------------------------------------ item 12
@pytest.mark.slow
def test_two_collectors_on_one_out_are_refused(tmp_path):
    out = tmp_path / "ds"
    args = ["--env", PROBE_ID, "--episodes", "6", "--seed", "5", "--out", str(out)]
    env = {"BYOG_PROBE_STEP_S": "0.2"}
    first = subprocess.Popen([sys.executable, str(ROOT / "collect" / "rollout.py"), "--no-progress", *args],
                             env={**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(ROOT)]), **env},
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while not list(out.glob("data/chunk-000/episode_*.parquet")) and time.time() < deadline:
            time.sleep(0.1)
        second = run_cli(*args, "--resume", env=env)
        line = one_error_line(second.stderr)
        assert second.returncode == 1 and "another collector" in line.lower() and str(out) in line
    finally:
        stdout, stderr = first.communicate(timeout=120)
    assert first.returncode == 0, stderr
    assert "collected 6" in stdout


@pytest.mark.slow
def test_a_full_disk_leaves_every_finished_episode_intact_with_one_error(tmp_path, monkeypatch):
    """RLIMIT_FSIZE stands in for a full disk: the long episode 3's file cannot be written."""
    import resource

    long_seed = str(episode_seed(5, 3))
    monkeypatch.setenv("BYOG_PROBE_LONG_SEED", long_seed)
    ref = tmp_path / "ref"
    collect_dataset(_cfg(ref, env=PROBE_ID, episodes=6))
    sizes = sorted(f.stat().st_size for f in ref.glob("data/chunk-000/*.parquet"))
    limit = (sizes[-2] + sizes[-1]) // 2  # every episode file fits but the long one
    assert sizes[-1] > 4 * sizes[-2]

    def limited() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # so write() fails with EFBIG, as on ENOSPC
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    out = tmp_path / "ds"
    res = run_cli("--env", PROBE_ID, "--episodes", "6", "--seed", "5", "--out", str(out),
                  env={"BYOG_PROBE_LONG_SEED": long_seed}, preexec_fn=limited)
    line = one_error_line(res.stderr)
    assert res.returncode == 1 and "episode_000003.parquet" in line and "rerun with --resume" in line
    written = sorted(p.name for p in out.glob("data/chunk-000/*"))
    assert written == [f"episode_{i:06d}.parquet" for i in range(3)]  # finished ones, no temp file
    for name in written:
        assert (out / "data" / "chunk-000" / name).read_bytes() == (ref / "data" / "chunk-000" / name).read_bytes()
    res = run_cli("--env", PROBE_ID, "--episodes", "6", "--seed", "5", "--out", str(out), "--resume",
                  env={"BYOG_PROBE_LONG_SEED": long_seed})
    assert res.returncode == 0, res.stderr
    assert "resumed 3 episodes, collected 3" in res.stdout
    assert_same_episodes(ref, out)


# ------------------------------------------------------------------------------------ item 12
@pytest.mark.parametrize("fsync", [True, False])
def test_episode_files_are_fsynced_unless_asked_not_to(tmp_path, monkeypatch, fsync):
    from collect import writer

    synced: list[str] = []
    original = writer._fsync
    monkeypatch.setattr(writer, "_fsync", lambda p: (synced.append(Path(p).name), original(p)))
    collect_dataset(_cfg(tmp_path / "ds", episodes=2, fsync=fsync))
    episode_syncs = [n for n in synced if n.startswith("episode_")]
    assert len(episode_syncs) == (2 if fsync else 0)  # the temp file, before its rename
    assert synced.count("chunk-000") == (2 if fsync else 0)  # the directory, after it
    assert {"info.json", "episodes.parquet"} <= {n.split(".tmp")[0].rsplit(".", 1)[0] for n in synced}


def test_resume_with_other_env_kwargs_is_refused(tmp_path):
    from collect.writer import DatasetWriter

    out = tmp_path / "ds"
    w = DatasetWriter(out, {"env": "toy", "env_kwargs": {"size": 64}})
    w.write_episode(0, np.zeros((3, 4, 4, 3), np.uint8), [0, 1])
    w.finalize()
    before = snapshot(out)
    with pytest.raises(DatasetError, match="collected with env_kwargs=\\{'size': 64\\} but this run has"):
        DatasetWriter(out, {"env": "toy", "env_kwargs": {"size": 32}}, resume=True)
    (out / "meta" / "info.json").unlink()  # the episode file carries them too
    with pytest.raises(DatasetError, match="collected with env_kwargs="):
        DatasetWriter(out, {"env": "toy", "env_kwargs": {"size": 32}}, resume=True)
    assert {k: v for k, v in snapshot(out).items() if k != "meta/info.json"} == {
        k: v for k, v in before.items() if k != "meta/info.json"}


def test_a_readme_we_did_not_write_is_never_overwritten(tmp_path, capsys):
    out = tmp_path / "ds"
    collect_dataset(_cfg(out, episodes=2))
    assert "# BYOG dataset:" in (out / "README.md").read_text()  # our dataset card is refreshed
    (out / "README.md").write_text("my notes about this data\n")
    collect_dataset(_cfg(out, episodes=3, resume=True))
    assert (out / "README.md").read_text() == "my notes about this data\n"
    assert "README.md was not written by BYOG" in capsys.readouterr().err
