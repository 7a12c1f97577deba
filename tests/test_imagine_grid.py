"""Issue 24: grid-aligned patch tokens, the copy path, prompted imagination, ablation intervals.

The sprite env (``plugins/sprite_env.py``) is drawn from 4x4 tiles (an 8x8 sprite of four
uniform quadrants moving 4 px a step on a uniform background), so grid tokens with tile 4 are
exact there.
"""
import math

import numpy as np
import pytest
import torch
from helpers import SPRITE_WM, tiny_agent
from plugins.sprite_env import sprite_episodes

import byog_env
from agents.imagine.command import fit_world_models
from agents.imagine.copy_path import copy_mixture_loss, copy_sources, mix_copy
from agents.imagine.evaluation import evaluate, make_clips
from agents.imagine.grid_tokens import GridFrameTokens, to_tiles, with_family_tile_size
from agents.imagine.stats import paired_interval
from agents.imagine.steering import frequent_sentences, prompt_ids, says
from agents.imagine.study import ablation, phases
from agents.imagine.world_model import (
    FRAME_TOKENS,
    WorldModelConfig,
    WorldModelError,
    imagine,
    psnr,
)
from agents.narrate.narrator import Narrator
from byog_env.errors import RegistryError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiled_frames(n=6, tile=3, grid=(4, 5), textures=7, margin=(2, 1), seed=0):
    """Frames [n, 4*3+2, 5*3+1, 3] drawn from ``textures`` random tile patches, plus a margin
    of constant pixels beyond the grid (as crafter's 64x64 frame holds 9x9 tiles of 7 px)."""
    rng = np.random.default_rng(seed)
    tex = rng.integers(0, 256, (textures, tile, tile, 3), dtype=np.uint8)
    ids = rng.integers(0, textures, (n, *grid))
    H, W = grid[0] * tile + margin[0], grid[1] * tile + margin[1]
    frames = np.full((n, H, W, 3), 17, np.uint8)
    for f in range(n):
        for r in range(grid[0]):
            for c in range(grid[1]):
                frames[f, r * tile:(r + 1) * tile, c * tile:(c + 1) * tile] = tex[ids[f, r, c]]
    return frames, ids


# --------------------------------------------------------------------------- the tokenizer
def test_grid_tokens_round_trip_a_tiled_image_exactly():
    frames, ids = tiled_frames()
    tokens, info = FRAME_TOKENS["grid"].fit(frames, WorldModelConfig(tokens="grid", tile_size=3))
    assert isinstance(tokens, GridFrameTokens) and tokens.grid == (4, 5)
    assert info["grid/distinct_tiles"] == len(np.unique(ids))
    codes = tokens.encode(torch.as_tensor(frames))
    assert codes.shape == (6, 4, 5)
    assert torch.equal(tokens.decode(codes), torch.as_tensor(frames))  # margin included
    # same texture <-> same code
    flat_ids, flat_codes = ids.reshape(-1), codes.reshape(-1).numpy()
    assert all(len(set(flat_codes[flat_ids == t])) == 1 for t in np.unique(flat_ids))
    assert len(set(flat_codes)) == len(np.unique(flat_ids))


def test_grid_tokens_cluster_when_tiles_outnumber_codes_and_survive_save_load(tmp_path):
    frames, _ = tiled_frames(n=20, textures=40, seed=1)
    noisy = np.clip(frames.astype(int) + np.random.default_rng(0).integers(-2, 3, frames.shape),
                    0, 255).astype(np.uint8)
    cfg = WorldModelConfig(tokens="grid", tile_size=3, grid_codes=40)
    tokens, info = GridFrameTokens.fit(noisy, cfg)
    assert info["grid/distinct_tiles"] > 40 and tokens.vocab == 40
    rec = tokens.decode(tokens.encode(torch.as_tensor(noisy)))
    assert float(psnr(rec, torch.as_tensor(frames)).mean()) > 35  # the noise is averaged out
    tokens.save(tmp_path / "t")
    import json

    back = GridFrameTokens.load(tmp_path / "t", json.loads((tmp_path / "t" / "frame_tokens.json").read_text()))
    assert torch.equal(back.encode(torch.as_tensor(noisy)), tokens.encode(torch.as_tensor(noisy)))


def test_render_keeps_copied_tiles_pixels():
    frames, _ = tiled_frames(n=2)
    tokens, _ = GridFrameTokens.fit(frames[:1], WorldModelConfig(tokens="grid", tile_size=3))
    codes = tokens.encode(torch.as_tensor(frames[:1]))
    prev = torch.as_tensor(frames[1:2])
    src = torch.full((1, 20), -1)
    src[0, 0] = 7  # position 0 shows the previous frame's tile 7
    out = tokens.render(codes, prev, src)
    tiles, prev_tiles = to_tiles(out.numpy(), 3), to_tiles(prev.numpy(), 3)
    assert np.array_equal(tiles[0, 0], prev_tiles[0, 7])
    assert np.array_equal(tiles[0, 1:], to_tiles(tokens.decode(codes).numpy(), 3)[0, 1:])


def test_tile_size_is_an_env_family_fact():
    assert byog_env.family("crafter").tile_size == 7
    assert byog_env.family("babyai").tile_size is None  # tiles resized per level: no grid
    cfg = with_family_tile_size(WorldModelConfig(tokens="grid"), "crafter")
    assert cfg.tile_size == 7
    assert with_family_tile_size(WorldModelConfig(tokens="grid", tile_size=5), "crafter").tile_size == 5
    assert with_family_tile_size(WorldModelConfig(), "crafter").tile_size is None  # vqvae
    with pytest.raises(WorldModelError, match="registers none"):
        GridFrameTokens.fit(np.zeros((2, 16, 16, 3), np.uint8), WorldModelConfig(tokens="grid"))
    with pytest.raises(RegistryError, match="tile_size"):
        byog_env.register_family("bad", "x:y", ids=[], annotator="generic", tile_size=0)
    d = byog_env.family("crafter").daylight_at(np.array([60, 210]))
    assert d[0] == pytest.approx(1.0) and d[1] == pytest.approx(0.0)


# --------------------------------------------------------------------------- the copy path
def test_copy_sources_of_a_grid():
    src, valid = copy_sources((2, 3), ((0, 0), (0, -1), (1, 0)))
    assert src[4].tolist()[:2] == [4, 3] and valid[4].tolist() == [True, True, False]
    assert valid[0].tolist() == [True, False, True] and src[0, 2] == 3


def test_mix_copy_and_its_loss_on_hand_values():
    codes = torch.tensor([[2, 1]])  # frame t: position 0 holds 2, position 1 holds 1
    src, valid = copy_sources((1, 2), ((0, 0), (0, 1)))
    vocab = torch.zeros(1, 2, 3)  # uniform codebook logits
    copy = torch.zeros(1, 2, 2)
    lp = mix_copy(vocab, copy, codes, src, valid)
    # position 0: 3 vocab + 2 sources -> each 1/5; sources copy codes 2 and 1
    assert torch.allclose(lp[0, 0].exp(), torch.tensor([0.2, 0.4, 0.4]))
    # position 1: its (0, +1) source is outside -> 3 vocab + 1 source (code 1) -> 1/4 each
    assert torch.allclose(lp[0, 1].exp(), torch.tensor([0.25, 0.5, 0.25]))
    target, mask = torch.tensor([[0, 1]]), torch.tensor([[True, True]])
    loss, m = copy_mixture_loss(vocab, copy, codes, src, valid, target, mask)
    assert loss.item() == pytest.approx(-(math.log(0.2) + math.log(0.5)) / 2)
    # with code 0 ~ code 2 (one texture under other light) copying code 2 counts for target 0
    near = torch.eye(3, dtype=torch.bool)
    near[0, 2] = near[2, 0] = True
    loss_near, _ = copy_mixture_loss(vocab, copy, codes, src, valid, target, mask, near)
    assert loss_near.item() == pytest.approx(-(math.log(0.4) + math.log(0.5)) / 2)
    assert m["wm/copy_share"] == pytest.approx((0.4 + 0.25) / 2)


# --------------------------------------------------------------------------- world model
@pytest.fixture(scope="module")
def agent():
    return tiny_agent()


@pytest.fixture(scope="module")
def clips():
    frames, actions = sprite_episodes(8, 32, seed=1)
    return make_clips(list(zip(frames, actions)), context=4, horizon=4, max_clips=16)


@pytest.fixture(scope="module")
def grid_models(agent):
    frames, actions = sprite_episodes(32, 32, seed=0)
    cfg = WorldModelConfig(**{**SPRITE_WM, "tokens": "grid", "tile_size": 4, "steps": 150,
                              "d_model": 32, "layers": 1, "heads": 2})
    return fit_world_models(agent, cfg, list(zip(frames, actions)), 4, ["state+action", "none"],
                            printer=lambda s: None, seeds=2)[0]


def test_world_model_on_grid_codes_beats_copy_last(agent, grid_models, clips):
    wm = grid_models["state+action"]
    assert wm.tokens.name == "grid" and wm.tokens.vocab == 5  # background + 4 quadrant colours
    metrics, r = evaluate(agent, wm, clips, samples=0)
    h1 = metrics["per_horizon"][0]["psnr"]
    assert h1["ceiling"] == pytest.approx(60.0)  # exact tokens
    assert h1["imagined"] >= h1["copy_last"] + 20.0, h1
    assert r["scores"]["imagined"]["psnr"].shape == (16, 4)


def test_ablation_pairs_seeds_and_clips(agent, grid_models, clips):
    assert set(grid_models) == {"state+action", "none", "state+action@seed1", "none@seed1"}
    scores = {k: evaluate(agent, m, clips, samples=0, narration=False)[1]["scores"]
              for k, m in grid_models.items()}
    ab = ablation(scores, 2, (1, 2))
    assert set(ab["differences"]) == {"state+action vs none"}
    d = ab["differences"]["state+action vs none"]["1"]
    assert d["seeds"] == 2 and d["clips"] == 16 and d["lo"] <= d["mean"] <= d["hi"]
    assert d["lo"] > 0  # without the action the next sprite position is a guess


def test_paired_interval_on_hand_values():
    r = paired_interval(np.array([[1.0, 3.0], [1.0, 3.0]]), n_boot=500)
    assert r["mean"] == 2.0 and 1.0 <= r["lo"] < 2.0 < r["hi"] <= 3.0
    assert paired_interval(np.full((3, 5), -0.5))["hi"] == -0.5
    with pytest.raises(ValueError, match="seeds, clips"):
        paired_interval(np.ones(4))
    assert set(phases(np.array([0.9, 0.2]), 2)) == {"all", "day", "night"}
    assert phases(np.array([0.9, 0.2]), 2)["night"].tolist() == [False, True]


# --------------------------------------------------------------------------- words -> pictures
def test_force_teacher_forces_the_last_slot_and_changes_the_state(agent):
    frames = torch.as_tensor(np.stack(sprite_episodes(1, 4, seed=3)[0][0]))[:, None]  # [5, 1, ...]
    ids = prompt_ids(agent, "sprite moved left")
    assert ids.shape == (agent.encoder.k,)
    n = Narrator(agent, window=8)
    n.reset()
    for t in range(3):
        free = n.step(frames[t])
    h = n.force(ids[None])
    assert torch.equal(n._ids[-1][0], ids)
    assert not torch.allclose(h, free.hidden)
    # the forced state is the teacher-forced encoder's state of that context
    e, all_ids = torch.stack(list(n._e), 1), torch.stack(list(n._ids), 1)
    h_tf, _ = agent.encoder.prefill(all_ids, e)[:2]
    assert torch.allclose(h, h_tf[:, -agent.encoder.k:], atol=1e-5)
    # the narrator's own slot track goes on (its counts), from the forced slot: a sentence is
    # open after it iff the prompt's slot ends in a word
    ends = set(n.rule.ends)
    assert int(n.track.age[0]) == (-1 if int(ids[-1]) in ends else 0)
    n.step(frames[3])  # narration continues from the forced state
    assert n.state.slot is n.track
    with pytest.raises(Exception, match="ids"):
        n.force(ids[None, :1])


def test_prompted_imagination_starts_from_the_prompted_state(agent, grid_models, clips):
    wm = grid_models["state+action"]
    ids = prompt_ids(agent, "sprite moved up").expand(3, -1)
    img = imagine(agent, clips.context[:3], clips.actions[:3], 2, world_model=wm, prompt=ids)
    assert img.frames.shape == (3, 2, 16, 16, 3)
    assert says([["sprite moved up"], []], "sprite moved up", 2)
    assert not says([[], ["sprite moved up"]], "sprite moved up", 1)
    assert frequent_sentences([[["a", "b"], ["a"]], [["c"]]], 2) == ["a", "b"]
