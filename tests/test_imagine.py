"""Imagination (issue 16): the world model over frame codes, agent.imagine, the CLI, metrics.

The Done-means test trains a VQ-VAE and a world model on a deterministic sprite env
(``plugins/sprite_env.py``) in ~20 CPU seconds on one thread.
"""
import json
import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from helpers import SPRITE_WM, tiny_agent
from plugins.sprite_env import SpriteEnv, register, sprite_episodes

from agents.imagine.command import cli, fit_world_models
from agents.imagine.dynamics import attach_world_model
from agents.imagine.evaluation import evaluate, event_f1, make_clips
from agents.imagine.rollout import imagine
from agents.imagine.world_model import (
    WorldModel,
    WorldModelConfig,
    WorldModelError,
    code_accuracy,
    decode_autoregressive,
    decode_maskgit,
    decode_parallel,
    masked_code_loss,
    psnr,
    ssim,
    training_mask,
)
from collect.dataset import split_episodes
from collect.writer import DatasetWriter, space_to_json

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def agent():
    return tiny_agent()


@pytest.fixture(scope="module")
def trained(agent):
    """One world model (BYOG state + action, parallel decoding) on 32 sprite episodes."""
    frames, actions = sprite_episodes(32, 32, seed=0)
    models, costs = fit_world_models(agent, WorldModelConfig(**SPRITE_WM),
                                     list(zip(frames, actions)), 4, ["state+action"],
                                     printer=lambda s: None)
    return models["state+action"], costs


@pytest.fixture(scope="module")
def clips():
    frames, actions = sprite_episodes(8, 32, seed=1)  # held-out episodes
    return make_clips(list(zip(frames, actions)), context=4, horizon=4, max_clips=16)


# --------------------------------------------------------------------------- Done means
def test_one_step_beats_copy_last_reaches_ceiling_and_uses_the_action(agent, trained, clips):
    wm, _ = trained
    metrics, _ = evaluate(agent, wm, clips, samples=0)
    h1 = metrics["per_horizon"][0]["psnr"]
    imagined, copy_last, ceiling = h1["imagined"], h1["copy_last"], h1["ceiling"]
    assert imagined >= copy_last + 3.0, h1
    assert imagined >= ceiling - 1.0, h1
    # the same clips with the action input removed (the learned "no action" id)
    blind = imagine(agent, clips.context, None, 1, world_model=wm)
    no_action = float(psnr(blind.frames[:, 0], clips.future[:, 0]).mean())
    assert no_action - copy_last <= 0.5 * (imagined - copy_last), (no_action, h1)


def test_metrics_cover_every_horizon_and_baseline(agent, trained, clips):
    wm, _ = trained
    metrics, rollouts = evaluate(agent, wm, clips, samples=2)
    assert [r["horizon"] for r in metrics["per_horizon"]] == [1, 2, 3, 4]
    for row in metrics["per_horizon"]:
        for m in ("psnr", "ssim", "code_accuracy"):
            assert set(row[m]) == {"imagined", "best_of_k", "copy_last", "ceiling"}
            assert all(math.isfinite(v) for v in row[m].values())
            assert row[m]["best_of_k"] >= row[m]["imagined"] - 1.0  # sampled at T=1 near-deterministic
        assert row["code_accuracy"]["ceiling"] == 1.0  # the real frame's own codes
        assert set(row["event_f1"]) == {"imagined", "copy_last", "ceiling"}
    assert rollouts["imagined"].shape == clips.future.shape
    assert len(rollouts["real_narration"]) == len(clips.future)


# --------------------------------------------------------------------------- agent.imagine
def test_agent_imagine_method_returns_frames_codes_and_narration(agent, trained, clips):
    wm, _ = trained
    attach_world_model(agent, wm)
    try:
        out = agent.imagine(clips.context[:3], clips.actions[:3], steps=4)
        none = agent.imagine(clips.context[0], None, steps=2)  # one clip [T, H, W, 3], no actions
        assert "world_model" not in dict(agent.named_modules())  # not saved with the agent
    finally:
        attach_world_model(agent, None)
    assert out.frames.shape == (3, 4, 16, 16, 3) and out.frames.dtype == torch.uint8
    assert out.codes.shape == (3, 4, 4, 4)
    assert out.narration_ids.shape == (3, 4, 2)
    assert len(out.narration) == 3 and all(len(n) == 4 for n in out.narration)
    assert none.frames.shape == (1, 2, 16, 16, 3)
    # with the true actions the first imagined frame is the tokenizer's rendering of the real one
    real_codes = wm.tokens.encode(clips.future[:3, 0])
    assert torch.equal(out.codes[:, 0], real_codes)


def test_imagine_rejects_wrong_frames_and_too_few_actions(agent, trained):
    wm, _ = trained
    with pytest.raises(WorldModelError, match="uint8 frames"):
        imagine(agent, np.zeros((1, 2, 32, 32, 3), np.uint8), None, 1, world_model=wm)
    with pytest.raises(WorldModelError, match="actions per clip"):
        imagine(agent, np.zeros((1, 2, 16, 16, 3), np.uint8), [[0]], 3, world_model=wm)


def test_save_load_round_trip_and_refuses_foreign_dirs(trained, clips, tmp_path):
    wm, _ = trained
    wm.save(tmp_path / "wm", note="x")
    back = WorldModel.load(tmp_path / "wm")
    codes = wm.tokens.encode(clips.context[:, -1])
    state = torch.randn(len(codes), wm.state_dim)
    assert torch.equal(wm.predict(codes, state, clips.actions[:, 0]),
                       back.predict(codes, state, clips.actions[:, 0]))
    assert back.meta["note"] == "x"
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("user data")
    with pytest.raises(WorldModelError, match="not a world model"):
        wm.save(foreign)
    assert (foreign / "keep.txt").read_text() == "user data"
    with pytest.raises(WorldModelError, match="No world model"):
        WorldModel.load(foreign)


# --------------------------------------------------------------------------- units variant
def test_units_world_model_predicts_unit_ids_and_renders_thumbnails(agent, clips):
    frames, actions = sprite_episodes(16, 32, seed=0)
    cfg = WorldModelConfig(tokens="units", units_k=16, units_pixel_size=4, condition="action",
                           d_model=32, layers=1, heads=2, steps=300, lr=3e-3)
    wm = fit_world_models(agent, cfg, list(zip(frames, actions)), 4, ["action"],
                          printer=lambda s: None)[0]["action"]
    assert wm.tokens.grid == (1, 1) and wm.tokens.thumbnails.shape == (16, 16, 16, 3)
    metrics, _ = evaluate(agent, wm, clips, samples=0)
    h1 = metrics["per_horizon"][0]
    # 16 sprite positions, 16 units: the next unit follows from the unit and the action
    assert h1["code_accuracy"]["imagined"] > h1["code_accuracy"]["copy_last"] + 0.5
    img = imagine(agent, clips.context[:2], clips.actions[:2], 1, world_model=wm)
    assert torch.equal(img.frames[:, 0], wm.tokens.thumbnails[img.codes[:, 0, 0, 0]])


# --------------------------------------------------------------------------- pure functions
def test_psnr_ssim_and_code_accuracy_on_hand_values():
    a = torch.zeros(2, 8, 8, 3)
    b = a.clone()
    b[0] += 0.1  # mse 0.01 -> 20 dB
    p = psnr(b, a)
    assert p[0].item() == pytest.approx(20.0, abs=1e-4)
    assert p[1].item() == pytest.approx(60.0)  # identical frames hit the cap
    x = torch.rand(3, 16, 16, 3)
    assert torch.allclose(ssim(x, x), torch.ones(3), atol=1e-5)
    assert (ssim(x, 1 - x) < 0.5).all()
    c = torch.tensor([[[1, 2], [3, 4]]])
    assert code_accuracy(c, torch.tensor([[[1, 2], [0, 0]]])).item() == 0.5


def test_masked_code_loss_counts_masked_positions_only():
    logits = torch.zeros(1, 3, 2)
    logits[0, 0, 1] = 10.0  # position 0 confidently 1 (target 0: wrong)
    target = torch.tensor([[0, 1, 1]])
    loss, m = masked_code_loss(logits, target, torch.tensor([[False, True, True]]))
    assert loss.item() == pytest.approx(math.log(2))  # uniform logits at the masked positions
    assert m["wm/masked_accuracy"] in (0.0, 0.5, 1.0)


def test_training_mask_full_fraction_and_at_least_one_position():
    g = torch.Generator().manual_seed(0)
    assert training_mask(8, 5, full_fraction=1.0, generator=g).all()
    m = training_mask(500, 16, full_fraction=0.0, generator=g)
    assert (m.sum(1) >= 1).all() and (m.sum(1) < 16).any()


@pytest.mark.parametrize("decoder", [decode_parallel, decode_maskgit, decode_autoregressive])
def test_every_decoder_fills_all_positions_with_the_argmax(decoder):
    target = torch.tensor([[3, 0, 2, 1, 3, 3]])
    calls = []

    def logits_fn(revealed):
        calls.append(revealed.clone())
        return torch.nn.functional.one_hot(target, 5).float() * 5  # independent of revealed

    out = decoder(logits_fn, torch.full_like(target, 4), mask_id=4, greedy=True,
                  temperature=1.0, generator=None, steps=3)
    assert torch.equal(out, target)
    expected = {decode_parallel: 1, decode_maskgit: 3, decode_autoregressive: 6}[decoder]
    assert len(calls) == expected


def test_event_f1_matches_identical_narrations_and_not_different_ones():
    same = [[["a cow is in view"], [], ["you collected 1 wood"]]]
    whole, per_h = event_f1(same, same, tolerance=0)
    assert whole == 1.0 and per_h[0] == per_h[2] == 1.0
    assert math.isnan(per_h[1])  # no event on either side: F1 undefined
    other = [[["free text the parser does not know"], [], []]]
    whole, per_h = event_f1(other, same, tolerance=0)
    assert whole == 0.0 and per_h[0] == 0.0 and per_h[2] == 0.0


def test_config_rejects_unknown_names():
    with pytest.raises(WorldModelError, match="choose one of"):
        WorldModelConfig(condition="words")
    with pytest.raises(WorldModelError, match="decoding"):
        WorldModelConfig(decoding="beam")


# --------------------------------------------------------------------------- the CLI
def write_dataset(path, n=10, length=24):
    frames, actions = sprite_episodes(n, length, seed=2)
    w = DatasetWriter(path, {"env": "SpriteTest-v0",
                             "action_space": space_to_json(gym.spaces.Discrete(4))})
    for i, (f, a) in enumerate(zip(frames, actions)):
        w.write_episode(i, f, a[:-1], annotations=[[] for _ in f])
    w.finalize()
    return path


@pytest.fixture
def checkpoint(agent, tmp_path):
    path = tmp_path / "run"
    agent.save_pretrained(path / "agent")
    (path / "meta.json").write_text(json.dumps({"step": 0, "dataset": {
        "env_id": "SpriteTest-v0", "frame_shape": [16, 16, 3]}}))
    return path


@pytest.mark.slow
def test_cli_trains_beside_the_checkpoint_then_imagines_live(checkpoint, tmp_path, capsys):
    data = write_dataset(tmp_path / "data")
    out = tmp_path / "out"
    wm_args = ["--world-model.vqvae-downsample", "2", "--world-model.vqvae-steps", "50",
               "--world-model.vqvae-codebook-size", "16", "--world-model.vqvae-hidden", "16",
               "--world-model.d-model", "32", "--world-model.layers", "1"]
    rc = cli(["--checkpoint", str(checkpoint), "--data", str(data), "--steps", "3",
              "--context", "2", "--clips", "4", "--samples", "1", "--train-steps", "20",
              "--compare-conditions", "--compare-decoding", "--out", str(out), *wm_args])
    assert rc == 0, capsys.readouterr().err
    m = json.loads((out / "metrics.json").read_text())
    assert (checkpoint / "world_model" / "model.safetensors").is_file()
    assert set(m["language_ablation"]) == {"state+action", "action", "none"}
    assert [r["decoding"] for r in m["decoding"]] == ["parallel", "maskgit", "maskgit",
                                                      "autoregressive"]
    assert all(r["cpu_ms_per_frame"] > 0 for r in m["decoding"])
    assert len(m["metrics"]["per_horizon"]) == 3 and m["costs"]["train_frames"] > 0
    assert (out / "imagination.mp4").stat().st_size > 0 and (out / "contact_sheet.png").is_file()
    assert "## Language ablation" in (out / "report.md").read_text()
    # the saved world model imagines a live env's episodes
    env_id = register()
    out2 = tmp_path / "live"
    rc = cli(["--checkpoint", str(checkpoint), "--env", env_id, "--steps", "2", "--context", "2",
              "--clips", "2", "--episodes", "2", "--samples", "0", "--no-video", "--out", str(out2)])
    assert rc == 0, capsys.readouterr().err
    live = json.loads((out2 / "metrics.json").read_text())
    assert live["metrics"]["clips"] == 2 and not (out2 / "imagination.mp4").exists()


def test_cli_errors_are_one_line_with_exit_2(checkpoint, tmp_path, capsys):
    assert cli(["--checkpoint", str(checkpoint), "--out", str(tmp_path)]) == 2
    assert "Give exactly one of --data" in " ".join(capsys.readouterr().err.split())  # tyro's box
    register()
    assert cli(["--checkpoint", str(checkpoint), "--env", "SpriteTest-v0",
                "--out", str(tmp_path / "o")]) == 2  # no world model saved there
    err = capsys.readouterr().err
    assert err.startswith("error: No world model at") and err.count("\n") == 1


def test_sprite_env_is_deterministic_and_moves_by_the_action():
    env = SpriteEnv()
    o1, _ = env.reset(seed=3)
    o2, _ = SpriteEnv().reset(seed=3)
    assert np.array_equal(o1, o2)
    moved, *_ = env.step(1)
    assert np.array_equal(np.roll(o1, 4, axis=1), moved)  # right by 4 px, wrapping
    assert split_episodes(4, 0.25, 0)[1]  # (the CLI uses the trainer's split)
