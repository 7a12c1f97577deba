"""Issue #14, training side: file modes, Ctrl-C, corrupt checkpoints, pickle-free trainer state,
strict weight loading, one-line errors for bad inputs, and runs that would mean nothing."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch
import yaml
from helpers import synthetic_dataset, tiny_args
from safetensors.torch import load_file, save_file

from agents.training import checkpoint as C
from agents.training import loading as L
from agents.training.command import cli
from agents.training.config import TrainError

REPO = Path(__file__).resolve().parents[1]
N = 3  # steps between checkpoints


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict[str, Path]:
    """A 2N-step run with checkpoints at N and 2N, written under umask 022."""
    root = tmp_path_factory.mktemp("safety")
    data = synthetic_dataset(root / "ds", episodes=6, length=20)
    old = os.umask(0o022)
    try:
        assert cli(tiny_args(data, root / "run", 2 * N, "--checkpoint.every", str(N),
                             "--checkpoint.keep_last", "5")) == 0
    finally:
        os.umask(old)
    return {"data": data, "run": root / "run", "root": root}


def _copy_run(run: dict[str, Path], name: str) -> Path:
    dst = run["root"] / name
    shutil.copytree(run["run"], dst)
    # the copy's config.yaml still points at the shared dataset; only --out differs
    return dst


def _one_error_line(err: str) -> str:
    lines = [x for x in err.strip().splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


# ----------------------------------------------------------------------------- item 3: modes
def test_checkpoint_files_honour_the_umask(run, tmp_path):
    ckpt = C.latest_checkpoint(run["run"])
    files = [p for p in ckpt.rglob("*") if p.is_file()]
    assert any(p.name == "model.safetensors" for p in files)
    for p in files:
        assert p.stat().st_mode & 0o777 == 0o644, (p, oct(p.stat().st_mode))
    for p in [ckpt, *(q for q in ckpt.rglob("*") if q.is_dir())]:
        assert p.stat().st_mode & 0o777 == 0o755, p

    class Agent:  # writes weights the way the real one does (safetensors' own save)
        def save_pretrained(self, path):
            Path(path).mkdir(parents=True)
            save_file({"w": torch.zeros(2)}, str(Path(path) / "model.safetensors"))

    old = os.umask(0o027)
    try:
        out = C.save_checkpoint(tmp_path, 1, agent=Agent(), trainer_state={"x": torch.ones(1)},
                                meta={})
    finally:
        os.umask(old)
    assert (out / "agent" / "model.safetensors").stat().st_mode & 0o777 == 0o640
    assert out.stat().st_mode & 0o777 == 0o750


def test_checkpoint_is_fsynced_before_it_is_renamed(tmp_path, monkeypatch):
    synced: list[str] = []
    real = os.fsync

    def spy(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real(fd)

    monkeypatch.setattr(os, "fsync", spy)

    class Agent:
        def save_pretrained(self, path):
            Path(path).mkdir(parents=True)
            save_file({"w": torch.zeros(2)}, str(Path(path) / "model.safetensors"))

    out = C.save_checkpoint(tmp_path, 7, agent=Agent(), trainer_state={"x": torch.ones(1)}, meta={})
    assert any(s.endswith("model.safetensors") for s in synced)
    assert any(s.endswith(C.META) for s in synced)
    assert str(out.parent) in synced  # the rename itself is made durable


# ----------------------------------------------------------------------------- item 10: no pickle
def test_trainer_state_is_stored_without_pickle(run):
    ckpt = C.latest_checkpoint(run["run"])
    assert not (ckpt / "trainer_state.pt").exists()
    assert (ckpt / "trainer_state.safetensors").is_file() and (ckpt / "trainer_state.json").is_file()
    st = C.load_trainer_state(ckpt)
    assert st["scheduler"]["last_epoch"] == 2 * N and st["optimizer"]["state"]
    torch.testing.assert_close(st["rng"][0]["torch"], torch.get_rng_state().new_tensor(
        st["rng"][0]["torch"]))
    np_state = st["rng"][0]["numpy"]
    assert np_state[0] == "MT19937" and np_state[1].shape == (624,)
    assert isinstance(st["rng"][0]["python"], tuple) and len(st["rng"][0]["python"][1]) == 625


def test_old_pickled_trainer_state_still_loads_with_a_warning(run):
    old = _copy_run(run, "oldstate")
    ckpt = C.latest_checkpoint(old)
    st = C.load_trainer_state(ckpt)
    torch.save(st, ckpt / "trainer_state.pt")
    (ckpt / "trainer_state.safetensors").unlink()
    (ckpt / "trainer_state.json").unlink()
    with pytest.warns(UserWarning, match="trainer_state.pt"):
        back = C.load_trainer_state(ckpt)
    assert back["scheduler"] == st["scheduler"]
    assert torch.equal(back["rng"][0]["torch"], st["rng"][0]["torch"])


@pytest.mark.slow
def test_a_run_written_before_these_layouts_still_resumes(run):
    """trainer_state.pt (pickle) and agent/model_config.json without config.json or LM exports:
    the layout of every checkpoint written before issues #14/#15."""
    old = _copy_run(run, "oldlayout")
    for ckpt in C.list_checkpoints(old):
        st = C.load_trainer_state(ckpt)
        torch.save(st, ckpt / "trainer_state.pt")
        (ckpt / "trainer_state.safetensors").unlink()
        (ckpt / "trainer_state.json").unlink()
        agent = ckpt / "agent"
        cfg = json.loads((agent / "config.json").read_text())
        (agent / "model_config.json").write_text(json.dumps(cfg["byog"]))
        for name in ("config.json", "README.md"):
            (agent / name).unlink()
        for name in ("narrator", "predictor"):
            shutil.rmtree(agent / name, ignore_errors=True)
    with pytest.warns(UserWarning, match="pickled trainer_state.pt"):
        assert cli(["--data", str(run["data"]), "--out", str(old), "--steps", str(2 * N + 1),
                    "--resume"]) == 0
    new = C.latest_checkpoint(old)
    assert new.name == f"step_{2 * N + 1:06d}" and (new / "trainer_state.json").is_file()
    card = (new / "agent" / "README.md").read_text()
    assert "synthetic" in card and f"{2 * N + 1} steps" in card  # the card names data and config


# ----------------------------------------------------------------------------- item 6: corrupt
def _truncate(p: Path) -> None:
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])


def test_corrupt_newest_checkpoint_falls_back_with_a_warning(run, capsys):
    bad = _copy_run(run, "corrupt")
    newest = C.latest_checkpoint(bad)
    assert newest.name == f"step_{2 * N:06d}"
    _truncate(newest / "agent" / "model.safetensors")
    with pytest.warns(UserWarning, match=rf"{newest.name}.*corrupt.*{N} steps") as rec:
        agent = L.load_agent(bad)
    assert agent.metadata["step"] == N
    assert str(newest) in str(rec[0].message)
    # named explicitly: refused with one line
    with pytest.raises(TrainError, match="corrupt") as err:
        L.load_agent(newest)
    assert "\n" not in str(err.value) and str(newest) in str(err.value)
    # narration goes through the same loader
    from agents.narrate.narration import load_narrating_agent

    with pytest.warns(UserWarning, match="corrupt"):
        assert load_narrating_agent(bad).metadata["step"] == N
    # train --resume continues from the intact one and never deletes the corrupt one
    with pytest.warns(UserWarning, match="corrupt"):
        assert cli(["--data", str(run["data"]), "--out", str(bad), "--steps", str(2 * N + 1),
                    "--resume"]) == 0
    assert json.loads((bad / "summary.json").read_text())["steps_this_run"] == N + 1


def test_corrupt_trainer_state_or_meta_is_detected(run):
    bad = _copy_run(run, "corrupt2")
    newest = C.latest_checkpoint(bad)
    (newest / "trainer_state.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(TrainError, match="corrupt"):
        L.load_agent(newest)
    assert C.intact_checkpoint(bad).name == f"step_{N:06d}"


# ----------------------------------------------------------------------------- #11: strict resume
def test_resume_refuses_weights_that_do_not_match_the_model(run, capsys):
    odd = _copy_run(run, "odd")
    f = C.latest_checkpoint(odd) / "agent" / "model.safetensors"
    w = load_file(str(f))
    w["encoder.stray.weight"] = torch.zeros(2)
    save_file(w, str(f))
    assert cli(["--data", str(run["data"]), "--out", str(odd), "--steps", str(2 * N + 1),
                "--resume"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "encoder.stray.weight" in line


# ----------------------------------------------------------------------------- item 7: one line
@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a build without CUDA")
def test_device_cuda_on_a_cpu_build_is_one_error_line(run, tmp_path, capsys):
    assert cli(tiny_args(run["data"], tmp_path / "r", 1, "--device", "cuda")) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "cuda" in line and "--device cpu" in line
    assert not (tmp_path / "r").exists()


def test_yaml_value_of_the_wrong_type_is_one_error_line(run, tmp_path, capsys):
    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump({"optim": {"lr": "fast"}}))
    assert cli(["--config", str(f), *tiny_args(run["data"], tmp_path / "r", 1)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "optim.lr" in line and "'fast'" in line and "float" in line
    f.write_text(yaml.safe_dump({"loader": {"batch_size": 2.5}, "logging": {"progress": "no"}}))
    assert cli(["--config", str(f), *tiny_args(run["data"], tmp_path / "r", 1)]) == 2
    assert "loader.batch_size" in _one_error_line(capsys.readouterr().err)
    f.write_text(yaml.safe_dump({"model": {"lm": {"hidden_size": "big"}}}))
    assert cli(["--config", str(f), *tiny_args(run["data"], tmp_path / "r", 1)]) == 2
    assert "model.lm.hidden_size: 'big' is not an int" in _one_error_line(capsys.readouterr().err)


def test_out_pointing_at_a_file_is_one_error_line(run, tmp_path, capsys):
    f = tmp_path / "notes.txt"
    f.write_text("mine")
    assert cli(tiny_args(run["data"], f, 1)) == 2
    assert "is a file" in _one_error_line(capsys.readouterr().err)
    assert f.read_text() == "mine"


# ----------------------------------------------------------------------------- item 8: meaningless
def test_out_equal_to_data_is_refused(run, capsys):
    before = sorted(p.relative_to(run["data"]) for p in run["data"].rglob("*"))
    assert cli(tiny_args(run["data"], run["data"], 1)) == 2
    assert "--out" in _one_error_line(capsys.readouterr().err)
    assert sorted(p.relative_to(run["data"]) for p in run["data"].rglob("*")) == before


def test_zero_annotations_give_no_event_f1_and_a_warning(tmp_path, capsys):
    import numpy as np

    from collect.writer import DatasetWriter

    rng = np.random.default_rng(0)
    w = DatasetWriter(tmp_path / "ds", {"env": "quiet", "env_id": "quiet",
                                        "action_space": {"type": "Discrete", "n": 4, "start": 0}})
    for i in range(4):
        w.write_episode(i, rng.integers(0, 255, (16, 16, 16, 3), dtype=np.uint8),
                        rng.integers(0, 4, 15), annotations=[[] for _ in range(16)], seed=i)
    w.finalize(frame_shape=[16, 16, 3])
    with pytest.warns(UserWarning, match="no annotations"):
        assert cli(tiny_args(tmp_path / "ds", tmp_path / "run", 2)) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["val_event_f1"] is None


def test_narrating_another_env_than_the_training_one_warns(run):
    import gymnasium as gym

    agent = L.load_agent(run["run"])
    other = gym.make("CartPole-v1")
    with pytest.warns(UserWarning, match=r"trained on env 'synthetic'.*CartPole-v1"):
        assert C.check_trained_env(agent, other, name="cartpole") is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert C.check_trained_env(agent, other, name="synthetic") is True


# ----------------------------------------------------------------------------- item 5: Ctrl-C
@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_and_says_how_to_resume(run, tmp_path):
    out = tmp_path / "r"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    # two DataLoader workers (the default): a terminal's Ctrl-C reaches the whole process group
    args = tiny_args(run["data"], out, 100000, "--checkpoint.every", "0",
                     "--logging.log_every", "1", "--loader.num_workers", "2")
    proc = subprocess.Popen([sys.executable, "-m", "agents.training", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    metrics = out / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= 3:
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal does: every process in the group
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) <= 2, stderr
    ckpt = C.latest_checkpoint(out)
    assert ckpt is not None
    done = C.read_meta(ckpt)["step"]
    assert done >= 3 and f"step {done}" in stderr and "--resume" in stderr
    # every step logged before the interrupt is in the checkpoint
    logged = [json.loads(x)["step"] for x in metrics.read_text().splitlines()]
    assert max(logged) <= done
    L.load_agent(out)  # and it is a complete, loadable checkpoint
