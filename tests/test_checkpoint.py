"""Checkpoints: round trip (same outputs after reload), atomic writes and pruning, resume
equivalence with an uninterrupted run, dataset-compatibility errors and warnings, load_agent."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
from helpers import synthetic_dataset, tiny_args
from safetensors.torch import load_file

from agents.training import checkpoint as C
from agents.training import loading as L
from agents.training.command import cli
from agents.training.config import TrainError

N = 3  # steps per segment


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """One uninterrupted 2N-step run and one run stopped at N then resumed to 2N."""
    root = tmp_path_factory.mktemp("ckpt")
    data = synthetic_dataset(root / "ds", episodes=6, length=20)
    common = ("--checkpoint.every", str(N), "--checkpoint.keep_last", "5",
              "--logging.eval_every", str(N), "--logging.log_every", "1",
              "--schedule.total_steps", str(2 * N))
    full, part = root / "full", root / "part"
    assert cli(tiny_args(data, full, 2 * N, *common)) == 0
    assert cli(tiny_args(data, part, N, *common)) == 0
    # resume reads the run's own config.yaml; only --steps changes
    assert cli(["--data", str(data), "--out", str(part), "--steps", str(2 * N), "--resume"]) == 0
    return {"data": data, "full": full, "part": part, "root": root}


def _losses(run: Path) -> dict[int, float]:
    recs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss/total"] for r in recs if "loss/total" in r}


@pytest.mark.slow
def test_resume_reproduces_the_uninterrupted_run(runs):
    full, part = _losses(runs["full"]), _losses(runs["part"])
    assert sorted(full) == list(range(1, 2 * N + 1)) and sorted(part) == sorted(full)
    assert len(set(full.values())) > 1  # the loss moves, so equality is not vacuous
    for step in full:
        assert part[step] == pytest.approx(full[step], abs=1e-6), step
    wf = load_file(str(runs["full"] / "checkpoints" / f"step_{2 * N:06d}" / "agent" / "model.safetensors"))
    wp = load_file(str(runs["part"] / "checkpoints" / f"step_{2 * N:06d}" / "agent" / "model.safetensors"))
    w0 = load_file(str(runs["full"] / "checkpoints" / f"step_{N:06d}" / "agent" / "model.safetensors"))
    assert wf.keys() == wp.keys()
    for k in wf:
        torch.testing.assert_close(wp[k], wf[k], rtol=0, atol=1e-6, msg=k)
    assert any(not torch.equal(w0[k], wf[k]) for k in wf)  # training changed the weights
    sf = json.loads((runs["full"] / "summary.json").read_text())
    sp = json.loads((runs["part"] / "summary.json").read_text())
    assert sp["weight_hash"] == sf["weight_hash"] and sp["steps"] == sf["steps"] == 2 * N
    assert sp["val_token_accuracy"] == pytest.approx(sf["val_token_accuracy"])


@pytest.mark.slow
def test_load_agent_round_trip_gives_the_same_outputs(runs):
    ckpt = runs["full"] / "checkpoints" / f"step_{2 * N:06d}"
    a = L.load_agent(runs["full"])            # a run directory: its newest checkpoint
    b = L.load_agent(ckpt)                    # a checkpoint directory
    assert not a.training and a.metadata["step"] == 2 * N and a.metadata["checkpoint"] == str(ckpt)
    assert a.metadata["dataset"]["frame_shape"] == [16, 16, 3]
    from agents.model.text import vocab_hash

    assert vocab_hash(a.tokenizer) == a.metadata["dataset"]["vocab_hash"]
    frames = torch.randint(0, 255, (2, 5, 16, 16, 3), dtype=torch.uint8)
    ids_a, ids_b = a.narrate(frames), b.narrate(frames)
    assert ids_a.shape == (2, 5, 4) and torch.equal(ids_a, ids_b)
    e = a.encoder.frame_embeddings(frames, torch.ones(2, 5, dtype=torch.bool), None)
    _, z_a = a.encoder(ids_a, e)
    _, z_b = b.encoder(ids_a, b.encoder.frame_embeddings(frames, torch.ones(2, 5, dtype=torch.bool), None))
    assert torch.equal(z_a, z_b)
    # the weights are those written at the end of training, not a fresh init
    saved = load_file(str(ckpt / "agent" / "model.safetensors"))
    state = a.state_dict()
    assert all(torch.equal(state[k], saved[k]) for k in saved)
    # trainer state round trip: optimizer moments and step counters are there
    st = C.load_trainer_state(ckpt)
    assert st["scheduler"]["last_epoch"] == 2 * N and st["optimizer"]["state"]
    assert set(st["sampler"]) == {"epoch", "batch"} and len(st["rng"]) == 1


@pytest.mark.slow
def test_incompatible_dataset_is_refused(runs, capsys):
    other = synthetic_dataset(runs["root"] / "ds32", episodes=4, length=12, size=32)
    assert cli(["--data", str(other), "--out", str(runs["part"]), "--steps", str(3 * N),
                "--resume"]) == 2
    err = capsys.readouterr().err
    assert "frames of shape [16, 16, 3]" in err and "[32, 32, 3]" in err
    with pytest.raises(TrainError, match="frames of shape"):
        L.load_agent(runs["full"], data=other)
    # another env, same frame shape: allowed with a warning
    env2 = synthetic_dataset(runs["root"] / "env2", episodes=3, length=12, env="other-env")
    with pytest.warns(UserWarning, match="cross-domain"):
        agent = L.load_agent(runs["full"], data=env2)
    assert agent.metadata["dataset"]["env_id"] == "synthetic"
    # changing the model config on resume is refused, naming the section
    assert cli(["--data", str(runs["data"]), "--out", str(runs["part"]), "--steps", str(3 * N),
                "--resume", "--model.loss.w_byog", "0.5"]) == 2
    assert "config differs" in capsys.readouterr().err
    # starting a fresh run over an existing one is refused
    assert cli(tiny_args(runs["data"], runs["full"], 2)) == 2
    assert "already holds a training run" in capsys.readouterr().err


def test_check_compatible_rules():
    base = {"env_id": "crafter", "frame_shape": [64, 64, 3], "format_version": "1.0",
            "action_space": {"n": 17}, "vocab_hash": "aaa", "vocab_size": 50, "annotator_version": "1"}
    assert C.check_compatible(base, dict(base), where="ck") == []
    with pytest.raises(TrainError, match=r"frames of shape \[64, 64, 3\].*\[32, 32, 3\]"):
        C.check_compatible(base, {**base, "frame_shape": [32, 32, 3]}, where="ck")
    with pytest.raises(TrainError, match="vocabulary aaa"):
        C.check_compatible(base, {**base, "vocab_hash": "bbb"}, where="ck")
    with pytest.raises(TrainError, match="dataset format 1.0"):
        C.check_compatible(base, {**base, "format_version": "2.0"}, where="ck")
    with pytest.warns(UserWarning, match="cross-domain"):
        out = C.check_compatible(base, {**base, "env_id": "babyai", "vocab_hash": "ccc"}, where="ck")
    assert len(out) == 1 and "babyai" in out[0]
    with pytest.warns(UserWarning, match="action space"):
        C.check_compatible(base, {**base, "action_space": {"n": 4}}, where="ck")


def test_atomic_save_prunes_and_ignores_partial_writes(tmp_path):
    class Fake:
        def save_pretrained(self, path):
            Path(path).mkdir(parents=True)
            (Path(path) / "model_config.json").write_text("{}")

    (tmp_path / "checkpoints" / ".tmp-step_000009").mkdir(parents=True)  # a killed write
    for step in (1, 2, 3, 4):
        C.save_checkpoint(tmp_path, step, agent=Fake(), trainer_state={"x": step},
                          meta={"config": {}}, keep_last=2)
    names = [p.name for p in C.list_checkpoints(tmp_path)]
    assert names == ["step_000003", "step_000004"]
    assert C.latest_checkpoint(tmp_path).name == "step_000004"
    assert C.read_meta(C.latest_checkpoint(tmp_path))["step"] == 4
    assert C.load_trainer_state(C.latest_checkpoint(tmp_path)) == {"x": 4}
    C.save_checkpoint(tmp_path, 4, agent=Fake(), trainer_state={"x": 44}, meta={}, keep_last=2)
    assert C.load_trainer_state(tmp_path / "checkpoints" / "step_000004") == {"x": 44}
    assert not any(p.name.startswith(".old") for p in (tmp_path / "checkpoints").iterdir())


def test_a_kill_while_pruning_leaves_no_half_deleted_checkpoint(tmp_path, monkeypatch):
    """Pruning removes the agent files before meta.json (directory order); a kill in between
    used to leave an old checkpoint that was listed as complete but could not load (a flaky
    failure of the kill -9 fault test)."""
    import shutil

    class Fake:
        def save_pretrained(self, path):
            Path(path).mkdir(parents=True)
            (Path(path) / "model_config.json").write_text("{}")

    for step in (1, 2):
        C.save_checkpoint(tmp_path, step, agent=Fake(), trainer_state={"x": step},
                          meta={"config": {}}, keep_last=2)
    real = shutil.rmtree

    def killed_midway(path, *a, **kw):  # deletes the agent files, then the process dies
        real(Path(path) / "agent")
        raise KeyboardInterrupt

    monkeypatch.setattr(shutil, "rmtree", killed_midway)
    with pytest.raises(KeyboardInterrupt):
        C.save_checkpoint(tmp_path, 3, agent=Fake(), trainer_state={"x": 3}, meta={}, keep_last=2)
    monkeypatch.setattr(shutil, "rmtree", real)
    assert [p.name for p in C.list_checkpoints(tmp_path)] == ["step_000002", "step_000003"]
    C.save_checkpoint(tmp_path, 4, agent=Fake(), trainer_state={"x": 4}, meta={}, keep_last=2)
    assert not any(p.name.startswith(".old") for p in (tmp_path / "checkpoints").iterdir())


def test_load_agent_bad_path_is_a_clear_error(tmp_path):
    with pytest.raises(TrainError, match="does not exist"):
        L.load_agent(tmp_path / "missing")
    with pytest.raises(TrainError, match="holds no checkpoint"):
        L.load_agent(tmp_path)
    import agents

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert agents.load_agent is L.load_agent


def test_fitted_obs_encoder_is_fitted_on_training_frames_and_checkpointed(tmp_path):
    data = synthetic_dataset(tmp_path / "ds", episodes=4, length=16)
    run = tmp_path / "run"
    assert cli(tiny_args(data, run, 2, "--model.obs.kind", "units", "--model.obs.units_k", "4",
                         "--model.obs.units_dim", "32", "--obs_fit.units_max_frames", "200")) == 0
    ckpt = C.latest_checkpoint(run)
    assert (ckpt / C.OBS / "config.json").is_file() and (run / C.OBS / "config.json").is_file()
    agent = L.load_agent(run)
    assert type(agent.encoder.obs).__name__ == "UnitsEncoder"
    frames = torch.randint(0, 255, (1, 3, 16, 16, 3), dtype=torch.uint8)
    assert torch.equal(agent.narrate(frames), L.load_agent(ckpt).narrate(frames))
    saved = load_file(str(ckpt / "agent" / "model.safetensors"))
    cents = [k for k in saved if "centroid" in k]
    assert cents and all(torch.equal(agent.state_dict()[k], saved[k]) for k in cents)
