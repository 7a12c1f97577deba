"""Predictor objectives: the registry (unknown names, plugins by import path) and the
explicit (loss, metrics, per-sequence NLL) contract of each objective."""
import subprocess
import sys

import pytest
import torch

from agents.config import OBJECTIVES, make_model_config
from agents.errors import AgentsError, ModelError
from agents.model import objectives as O
from agents.model.agent import BYOGAgent
from agents.model.text import train_tokenizer

TOY = "plugins.toy_objective:toy"


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(["collected 1 wood", "tree in view", "made wood pickaxe"])


def _batch(B=3, T=5, size=16):
    g = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (B, T, size, size, 3), generator=g, dtype=torch.uint8)
    ann = [[["collected 1 wood"] if t % 2 else [] for t in range(T)] for _ in range(B)]
    return {"frames": frames, "valid": torch.ones(B, T, dtype=torch.bool), "annotations": ann,
            "episode_index": torch.arange(B), "start": torch.zeros(B, dtype=torch.long),
            "labelled": torch.ones(B, dtype=torch.bool)}


def test_builtin_objectives_are_registered_by_name():
    assert set(OBJECTIVES) >= {"prefix", "parallel"}
    assert O.get_objective("prefix") is O.prefix_objective
    assert O.get_objective("parallel") is O.parallel_objective


def test_unknown_objective_is_one_error_listing_the_known_ones():
    with pytest.raises(ModelError, match=r"Unknown predictor objective 'bogus'; known: latent, parallel, prefix"):
        make_model_config("tiny", predictor={"mode": "bogus"})
    with pytest.raises(AgentsError, match="cannot be imported"):
        make_model_config("tiny", predictor={"mode": "no_such_pkg.mod:toy"})


@pytest.mark.parametrize("mode", ["prefix", "parallel"])
def test_objective_returns_loss_metrics_and_reward_tensors_explicitly(tok, mode):
    agent = BYOGAgent(make_model_config("tiny", predictor={"mode": mode, "horizon": 3},
                                        text={"tokens_per_frame": 4},
                                        loss={"token_objective": "reinforce"}), tok)
    loss, metrics = agent.training_step(_batch(), step=0)
    assert all(isinstance(v, float) for v in metrics.values())  # no tensor in the metrics
    assert "_reinforce_term" not in metrics and "loss/reinforce" in metrics
    loss.backward()
    assert torch.isfinite(loss)
    b = _batch()
    e = agent.frame_embeddings(b)
    y, _ = agent.sample_targets(b, e, step=0)
    h, z = agent.encoder(y, e)
    out = agent.byog_loss(agent.predictor.features(h, z), y.view(3, -1), b["valid"], b, step=0)
    assert isinstance(out, O.ObjectiveOutput)
    assert out.per_seq_nll.shape == (3,) and out.has_target.dtype == torch.bool
    assert not out.per_seq_nll.requires_grad and out.loss.requires_grad
    for key in ("byog/ce", "monitor/prefix_gain", "monitor/unigram_nll"):
        assert isinstance(out.metrics[key], float)


def test_plugin_objective_by_import_path_trains_and_reloads_in_a_fresh_process(tok, tmp_path,
                                                                           plugin_env):
    cfg = make_model_config("tiny", predictor={"mode": TOY}, text={"tokens_per_frame": 4})
    agent = BYOGAgent(cfg, tok)
    loss, metrics = agent.training_step(_batch(), step=0)
    assert metrics["toy/calls"] == 1.0 and torch.isfinite(loss)
    agent.save_pretrained(tmp_path / "agent")
    code = ("import sys; from agents.model.agent import BYOGAgent; "
            f"a = BYOGAgent.from_pretrained({str(tmp_path / 'agent')!r}); "
            "assert 'plugins.toy_objective' in sys.modules; print(a.cfg.predictor.mode)")
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120,
                         env=plugin_env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == TOY


def test_narrator_forecast_for_an_objective_without_one_is_a_clear_error(tok):
    from agents.errors import NarrationError
    from agents.narrate.narration import Narrator

    agent = BYOGAgent(make_model_config("tiny", predictor={"mode": TOY}), tok)
    with pytest.raises(NarrationError, match="Unknown live forecast 'plugins.toy_objective:toy'"):
        Narrator(agent, forecast=1)
    Narrator(agent, forecast=0)  # narration itself needs no forecaster


def test_presets_are_typed_registry_entries_and_a_new_one_is_one_registration():
    from agents.config import PRESETS, SIZES, PresetSpec

    assert set(PRESETS) >= {"byog", "captioner", "byog-parallel", "byog-lora", "byog-xattn"}
    assert PRESETS["captioner"].overrides == {"loss": {"w_byog": 0.0}}
    assert set(SIZES) == {"tiny", "small", "base"} and SIZES["base"].lm["hidden_size"] == 512
    PRESETS.register("toy-preset", PresetSpec("the toy objective, soft targets",
                                              {"predictor": {"mode": TOY}, "loss": {"targets": "soft"}}),
                     overwrite=True)
    cfg = make_model_config("tiny", "toy-preset", loss={"tau": 2.0})
    assert cfg.predictor.mode == TOY and cfg.loss.targets == "soft" and cfg.loss.tau == 2.0
    with pytest.raises(ModelError, match="Unknown preset 'nope'; known: .*byog-parallel"):
        make_model_config("tiny", "nope")


def test_toy_objective_trains_through_the_trainer_and_reloads_in_a_fresh_process(tmp_path, plugin_env):
    """docs/architecture.md's recipe: one plugin module, named in the config, trained by the
    trainer; the checkpoint names it, so a fresh process loads the agent without an import."""
    import json

    from helpers import synthetic_dataset, tiny_args

    from agents.training.command import cli

    data = synthetic_dataset(tmp_path / "ds", episodes=4, length=16)
    run = tmp_path / "run"
    assert cli(tiny_args(data, run, 3, "--model.predictor.mode", TOY, "--logging.log_every", "1")) == 0
    logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert sum("toy/calls" in m for m in logged) == 3  # every step ran the toy objective
    code = ("import sys; from agents.training import load_agent; "
            f"a = load_agent({str(run)!r}); "
            "assert 'plugins.toy_objective' in sys.modules; print(a.cfg.predictor.mode)")
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True,
                         timeout=120, env=plugin_env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == TOY


def test_python_m_agents_lists_every_registry_with_plugins(plugin_env):
    out = subprocess.run([sys.executable, "-m", "agents", "list", "--plugin", "plugins.toy_objective"],
                         check=False, capture_output=True, text=True, timeout=120, env=plugin_env)
    assert out.returncode == 0, out.stderr
    for line in ("objectives:", "presets:", "sizes:", "forecasts:", "toy ", "prefix ",
                 "captioner ", "tiny "):
        assert line in out.stdout
    bad = subprocess.run([sys.executable, "-m", "agents", "list", "--plugin", "no_such.mod"],
                         check=False, capture_output=True, text=True, timeout=120, env=plugin_env)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and "no_such.mod" in bad.stderr


def test_a_plugin_preset_is_accepted_on_the_command_line(tmp_path, plugin_env):
    """`--preset module:name` (a registered plugin preset) trains; an unknown one is one error
    line listing the known presets, exit 2."""
    import json

    from helpers import synthetic_dataset, tiny_args

    data = synthetic_dataset(tmp_path / "ds", episodes=4, length=16)
    args = tiny_args(data, tmp_path / "run", 2, "--logging.log_every", "1")
    out = subprocess.run([sys.executable, "-m", "agents.training", "--preset",
                          "plugins.toy_objective:toy", *args], check=False, capture_output=True,
                         text=True, timeout=300, env=plugin_env)
    assert out.returncode == 0, out.stderr
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert sum("toy/calls" in m for m in logged) == 2  # the preset's objective ran every step
    bad = subprocess.run([sys.executable, "-m", "agents.training", "--preset", "no-such-preset",
                          *tiny_args(data, tmp_path / "run2", 2)], check=False,
                         capture_output=True, text=True, timeout=300, env=plugin_env)
    assert bad.returncode == 2 and "Unknown preset 'no-such-preset'" in bad.stderr
    assert "captioner" in bad.stderr
