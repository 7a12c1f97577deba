"""The training pipeline: config layering, bad-input errors, episode split, labels, tokenizer
leak-freedom, sampler sharding, schedule, and one smoke run of the CLI on collected Crafter data.

``synthetic_dataset`` and ``tiny_args`` live in tests/helpers.py (shared with the checkpoint,
DDP, fault and obs tests).
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import synthetic_dataset, tiny_args

from agents.training.config import TrainError, config_from_dict, parse_args
from agents.training.data import ResumableSampler, build_data, labelled_episodes
from agents.training.loop import lr_factor

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable


# ----------------------------------------------------------------------------- config
def test_yaml_then_cli_layering_and_separate_axes(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump({"preset": "captioner", "steps": 7, "optim": {"lr": 0.005},
                                 "model": {"lm": {"num_layers": 3}, "obs": {"kind": "vqvae"}}}))
    cfg = parse_args(["--config", str(f), "--data", "d", "--out", "o", "--optim.lr", "0.002",
                      "--size", "small", "--model.loss.w_ground", "0.5"])
    assert (cfg.preset, cfg.size, cfg.steps) == ("captioner", "small", 7)
    assert cfg.optim.lr == 0.002                       # CLI beats YAML
    assert cfg.model.loss.w_byog == 0.0                # from the preset (YAML)
    assert cfg.model.loss.w_ground == 0.5              # dotted CLI flag
    assert cfg.model.lm.num_layers == 3                # YAML beats the size default
    assert cfg.model.lm.hidden_size == 256             # size axis: small
    assert cfg.model.obs.kind == "vqvae"
    # the CLI preset wins over the YAML one; the other axis is untouched
    cfg2 = parse_args(["--config", str(f), "--data", "d", "--out", "o", "--preset", "byog-xattn"])
    assert cfg2.model.fusion == "xattn" and cfg2.model.loss.w_byog == 1.0 and cfg2.size == "tiny"
    # byog-lora needs its base checkpoint path at build time; a flag is enough
    lora = parse_args(["--data", "d", "--out", "o", "--preset", "byog-lora",
                       "--model.lm.pretrained_path", "/ckpt/pythia"])
    assert lora.model.lora.enabled and lora.model.lm.pretrained_path == "/ckpt/pythia"
    with pytest.raises(TrainError, match="pretrained_path"):
        parse_args(["--data", "d", "--out", "o", "--preset", "byog-lora"])
    # defaults are the laptop ones
    d = parse_args(["--data", "d", "--out", "o"])
    assert d.model.lm.hidden_size == 64 and d.preset == "byog" and d.loader.num_workers >= 0


def test_saved_config_round_trips(tmp_path):
    from agents.training.config import config_to_dict, save_yaml

    cfg = parse_args(["--data", "d", "--out", "o", "--preset", "byog-parallel",
                      "--model.predictor.horizon", "3", "--loader.window", "12"])
    save_yaml(cfg, tmp_path / "config.yaml")
    again = parse_args(["--config", str(tmp_path / "config.yaml")])
    assert config_to_dict(again) == config_to_dict(cfg)
    assert again.model.predictor.mode == "parallel" and again.model.predictor.horizon == 3


@pytest.mark.parametrize("bad, message", [
    ({"preset": "byog-foo"}, "Unknown preset 'byog-foo'"),
    ({"optim": {"learning_rate": 1}}, "Unknown option 'learning_rate' in optim"),
    ({"optim": {"lr": -1}}, "optim.lr must be > 0"),
    ({"label_fraction": 1.5}, "label_fraction must be in [0, 1]"),
    ({"model": {"lm": {"hidden_size": 30, "num_heads": 4}}}, "divisible"),
])
def test_bad_config_values_name_the_problem(bad, message):
    with pytest.raises(TrainError, match=message.replace("[", r"\[").replace("]", r"\]")):
        config_from_dict(bad)


def test_cli_errors_exit_2_with_one_line(tmp_path, capsys):
    from agents.training.command import cli

    ds = tmp_path / "nothere"
    assert cli(["--data", str(ds), "--out", str(tmp_path / "r"), "--preset", "byog-lorax"]) == 2
    err = capsys.readouterr().err
    assert "Unknown preset 'byog-lorax'" in err and "byog-lora" in err and "Traceback" not in err
    assert cli(["--data", str(ds), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert "does not exist" in err and str(ds) in err and len(err.splitlines()) == 1
    assert cli(["--out", str(tmp_path / "r")]) == 2
    assert "--data DIR" in capsys.readouterr().err
    assert cli(["--data", "x", "--out", "y", "--config", str(tmp_path / "none.yaml")]) == 2
    assert "Config file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:  # unknown flag: tyro's own message, exit code 2
        cli(["--data", "x", "--out", "y", "--optim.learning_rate", "1"])
    assert e.value.code == 2


def test_resume_without_checkpoint_and_overwrite_are_refused(tmp_path, capsys):
    from agents.training.command import cli

    data = synthetic_dataset(tmp_path / "ds")
    assert cli(tiny_args(data, tmp_path / "run", 2, "--resume")) == 2
    assert "holds no checkpoint" in capsys.readouterr().err


# ----------------------------------------------------------------------------- data
def test_split_by_episode_labels_and_tokenizer_see_only_labelled_training(tmp_path):
    from agents.training.config import LoaderConfig

    data = synthetic_dataset(tmp_path / "ds", episodes=10, length=20)
    cfg = LoaderConfig(window=8, stride=4, val_fraction=0.3, split_seed=1, num_workers=0)
    b = build_data(str(data), cfg, label_fraction=0.5, label_seed=3)
    assert len(b.val_ids) == 3 and len(b.train_ids) == 7
    assert not set(b.train_ids) & set(b.val_ids)
    assert b.labelled_ids == labelled_episodes(b.train_ids, 0.5, 3)
    assert len(b.labelled_ids) == 4 and set(b.labelled_ids) <= set(b.train_ids)
    # windows never cross the split; labelled flags follow the episode
    train_eps = {b.train.index[i][0] for i in range(len(b.train))}
    val_eps = {b.val.index[i][0] for i in range(len(b.val))}
    assert train_eps == set(b.train_ids) and val_eps == set(b.val_ids)
    for i in range(0, len(b.train), 3):
        item = b.train[i]
        assert bool(item["labelled"]) == (b.train.index[i][0] in b.labelled_ids)
        assert item["frames"].shape == (8, 16, 16, 3)
    assert not any(bool(b.val[i]["labelled"]) for i in range(len(b.val)))
    # the tokenizer knows thing{i} exactly for the labelled training episodes
    vocab = b.tokenizer.get_vocab()
    for i in range(10):
        assert (f"▁thing{i}" in vocab) == (i in b.labelled_ids), i
    # fixed seeds: the same choice again, another seed another choice
    assert labelled_episodes(b.train_ids, 0.5, 3) == b.labelled_ids
    assert labelled_episodes(list(range(100)), 0.5, 4) != labelled_episodes(list(range(100)), 0.5, 3)
    assert labelled_episodes(b.train_ids, 0.0, 3) == [] and len(labelled_episodes([5], 0.1, 0)) == 1


def test_sampler_ranks_split_the_same_global_batch_and_resume_mid_epoch():
    n, B, W = 23, 4, 2
    data = list(range(n))
    single = list(ResumableSampler(data, num_replicas=1, rank=0, seed=5))
    ranks = [list(ResumableSampler(data, num_replicas=W, rank=r, seed=5)) for r in range(W)]
    local = B // W
    assert all(len(r) // local == n // B for r in ranks)  # same number of batches per epoch
    for j in range(n // B):
        shards = sorted(x for r in range(W) for x in ranks[r][j * local:(j + 1) * local])
        assert shards == sorted(single[j * B:(j + 1) * B])
    s = ResumableSampler(data, num_replicas=1, rank=0, seed=5)
    s.set_position(0, 8)
    assert list(s) == single[8:] and len(s) == n - 8
    s.set_position(1, 0)
    assert list(s) != single and sorted(s) == data


def test_lr_schedule_warmup_and_decay():
    assert lr_factor(0, 100, 10, "cosine", 0.1) == pytest.approx(0.1)
    assert lr_factor(9, 100, 10, "cosine", 0.1) == pytest.approx(1.0)
    assert lr_factor(10, 100, 10, "cosine", 0.1) == pytest.approx(1.0)
    assert lr_factor(55, 100, 10, "cosine", 0.1) == pytest.approx(0.55)
    assert lr_factor(100, 100, 10, "cosine", 0.1) == pytest.approx(0.1)
    assert lr_factor(55, 100, 10, "linear", 0.0) == pytest.approx(0.5)
    assert lr_factor(70, 100, 0, "constant", 0.1) == 1.0


def test_training_too_few_windows_is_a_clear_error(tmp_path, capsys):
    from agents.training.command import cli

    data = synthetic_dataset(tmp_path / "ds", episodes=3, length=8)
    assert cli(tiny_args(data, tmp_path / "run", 2, "--loader.batch_size", "16")) == 2
    assert "labelled windows for a batch of 16" in capsys.readouterr().err


# ----------------------------------------------------------------------------- smoke
@pytest.fixture(scope="session")
def crafter_dataset(tmp_path_factory) -> Path:
    """3 short random Crafter episodes written by the real collector."""
    from collect.rollout import CollectConfig, collect_dataset

    out = tmp_path_factory.getbasetemp() / "crafter_tiny"
    if not (out / "meta" / "info.json").is_file():
        collect_dataset(CollectConfig(env="crafter", out=out, policy="random", episodes=3,
                              max_episode_steps=40, vector_mode="sync", progress=False))
    return out


@pytest.mark.slow
def test_cli_smoke_run_on_collected_crafter(crafter_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    args = tiny_args(crafter_dataset, run, 6, "--logging.plots",
                     "--logging.tensorboard", "--logging.eval_every", "3",
                     "--logging.examples", "1", "--checkpoint.every", "3",
                     "--checkpoint.keep_last", "1", "--logging.log_every", "1")
    from agents.training.command import cli

    assert cli(args) == 0
    printed = capsys.readouterr()
    assert "true:" in printed.out and "narrated:" in printed.out and "done: 6 steps" in printed.out
    s = json.loads((run / "summary.json").read_text())
    for key in ("val_token_accuracy", "val_majority_token_accuracy", "val_event_f1",
                "val_prefix_gain", "wall_clock_s", "frames_per_s", "data_wait_frac"):
        assert isinstance(s[key], float) and math.isfinite(s[key]), key
    assert 0 <= s["val_token_accuracy"] <= 1 and 0 < s["val_majority_token_accuracy"] <= 1
    assert s["steps"] == 6 and s["episodes"]["val"] == 1 and s["episodes"]["train"] == 2
    assert s["dataset"]["env_id"] == "byog/Crafter-v0" and s["dataset"]["frame_shape"] == [64, 64, 3]
    assert math.isfinite(s["train"]["loss/total"]) and s["ranks_identical"]
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["steps"] == 6 and cfg["model"]["lm"]["hidden_size"] == 32
    ckpts = sorted((run / "checkpoints").iterdir())
    assert [c.name for c in ckpts] == ["step_000006"]  # keep_last 1, no temp dirs left
    files = {p.relative_to(ckpts[0]).as_posix() for p in ckpts[0].rglob("*") if p.is_file()}
    assert {"agent/model.safetensors", "agent/config.json", "agent/tokenizer/tokenizer.json", "agent/narrator/model.safetensors",
            "trainer_state.safetensors", "trainer_state.json", "meta.json"} <= files
    meta = json.loads((ckpts[0] / "meta.json").read_text())
    assert meta["step"] == 6 and meta["dataset"]["vocab_hash"] and meta["dataset"]["action_space"]["n"] == 17
    assert {p.name for p in (run / "plots").glob("*.png")} >= {"losses.png", "validation.png"}
    assert list((run / "tb").glob("events.out.tfevents.*"))
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss/total" in r] == [1, 2, 3, 4, 5, 6]
    assert [r["step"] for r in records if "val/token_accuracy" in r] == [3, 6]
    # the module form rejects a bad preset with one line and exit code 2
    bad = subprocess.run([PY, "-m", "agents.training", "--data", str(crafter_dataset), "--out",
                          str(tmp_path / "x"), "--preset", "captioneer"], check=False, cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "Did you mean 'captioner'" in bad.stderr



def test_captioner_trains_on_labelled_episodes_only(tmp_path):
    # w_byog = 0 has no loss on unlabelled windows: they must not be sampled (a batch of only
    # unlabelled windows would have nothing to train on)
    from agents.training.config import LoaderConfig

    data = synthetic_dataset(tmp_path / "ds", episodes=10, length=20)
    cfg = LoaderConfig(window=8, stride=4, val_fraction=0.3, split_seed=1, num_workers=0)
    b = build_data(str(data), cfg, label_fraction=0.3, label_seed=3, labelled_only=True)
    eps = {b.train.index[i][0] for i in range(len(b.train))}
    assert eps == set(b.labelled_ids) and len(eps) == 2
    assert all(bool(b.train[i]["labelled"]) for i in range(len(b.train)))
    with pytest.raises(TrainError, match="nothing to train on"):
        build_data(str(data), cfg, label_fraction=0.0, label_seed=3, labelled_only=True)


def test_a_callback_stops_the_loop_through_its_hook_alone(tmp_path, monkeypatch):
    """run_loop never asks which callback is which: a callback's on_step returning False ends
    the run (SB3's BaseCallback shape), the checkpoint and final validation still come through
    t.results, and the saved agent carries the window it was trained on."""
    from agents.training import loop
    from agents.training.callbacks import Callback
    from agents.training.checkpoint import latest_checkpoint, read_meta

    class StopAt3(Callback):
        def on_step(self, t, loss, metrics):
            return t.step < 3

    real = loop.LogCallback
    monkeypatch.setattr(loop, "LogCallback", lambda t: type("Both", (real,), {
        "on_step": lambda self, t, loss, m: (real.on_step(self, t, loss, m), StopAt3().on_step(t, loss, m))[1]})(t))
    data = synthetic_dataset(tmp_path / "d")
    summary = loop.train(parse_args(tiny_args(data, tmp_path / "run", 8)))
    assert summary["steps"] == 3 and read_meta(latest_checkpoint(tmp_path / "run"))["step"] == 3
    assert summary.get("val_token_accuracy") is not None  # the final validation ran
    from agents.training import load_agent

    assert load_agent(tmp_path / "run").cfg.window == 8
