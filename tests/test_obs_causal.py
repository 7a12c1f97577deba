"""Issue 12 defect 2: the units encoder's clip options (running mean, deltas) are causal, and
live narration (one frame at a time) gives the same units as an offline clip; the per-stream
state hook (init_state / step / reset_state) behaves the same for every encoder."""
from __future__ import annotations

import pytest
import torch

from agents.obs import ObsEncoderConfig, build_obs_encoder

UNITS = {"kind": "units", "units_k": 6, "units_pixel_size": 2, "units_embedding": "onehot"}
OPTIONS = [{"units_subtract_mean": True}, {"units_deltas": True},
           {"units_subtract_mean": True, "units_deltas": True}]


def _clips(B=6, T=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 255, (B, T, 8, 8, 3), generator=g, dtype=torch.uint8)


def _fitted(**options):
    enc = build_obs_encoder(ObsEncoderConfig(**UNITS, **options))
    enc.fit(_clips(seed=1), progress=False)
    return enc.eval()


@pytest.mark.parametrize("options", OPTIONS)
def test_units_before_a_cut_do_not_depend_on_later_frames(options):
    enc = _fitted(**options)
    frames = _clips(B=4)
    later = frames.clone()
    later[:, 8:] = _clips(B=4, seed=7)[:, 8:]  # only frames t >= 8 change
    assert torch.equal(enc.unit_ids(frames)[:, :8], enc.unit_ids(later)[:, :8])


@pytest.mark.parametrize("options", OPTIONS)
def test_live_units_match_the_offline_clip(options):
    enc = _fitted(**options)
    frames = _clips(B=3, T=10, seed=3)
    offline = enc(frames)  # [3, 10, k] one-hot units of the clip (an episode's start)
    assert offline.argmax(-1).unique().numel() > 1
    # the agent's live path (NarrationEncoder.embed_frame, one frame at a time)
    from agents.config import make_model_config
    from agents.model.agent import BYOGAgent
    from agents.model.text import train_tokenizer

    cfg = make_model_config("tiny", "captioner", obs=dict(UNITS, out_dim=None, **options),
                            text={"tokens_per_frame": 2})
    agent = BYOGAgent(cfg, train_tokenizer(["a b"]), obs_encoder=enc).eval()
    state = agent.encoder.start(3)
    with torch.no_grad():
        live = torch.stack([agent.encoder.embed_frame(state, frames[:, t]) for t in range(10)], 1)
        want = agent.encoder.frame_embeddings(frames)
    torch.testing.assert_close(live, want)
    # and the encoder's own per-stream hook
    s = enc.init_state(3)
    steps = []
    for t in range(10):
        f, s = enc.step(s, frames[:, t])
        steps.append(f)
    assert torch.equal(torch.stack(steps, 1), offline)


def _encoder(name):
    torch.manual_seed(0)
    if name.startswith("cnn"):
        return build_obs_encoder(ObsEncoderConfig(out_dim=8, cnn_channels=(4, 4),
                                                  cnn_frame_delta=name == "cnn-delta")).eval()
    if name == "precomputed":
        return build_obs_encoder(ObsEncoderConfig(kind="precomputed", precomputed_dim=6,
                                                  precomputed_adapter="layernorm")).eval()
    if name == "vqvae":
        enc = build_obs_encoder(ObsEncoderConfig(kind="vqvae", vqvae_hidden=4, vqvae_code_dim=3,
                                                 vqvae_codebook_size=4))
        enc.fit(_clips(seed=1).flatten(0, 1), steps=1, batch_size=8, progress=False)
        return enc
    return _fitted(units_subtract_mean=True, units_deltas=True)


@pytest.mark.parametrize("name", ["cnn-delta", "cnn-plain", "precomputed", "vqvae", "units"])
def test_stepping_streams_gives_the_offline_clip_and_reset_starts_one_afresh(name):
    enc = _encoder(name)
    frames = _clips(B=2, T=5, seed=4)
    emb = torch.randn(2, 5, 6, generator=torch.Generator().manual_seed(0))
    kw = {"embedding": emb} if enc.needs_column else {}

    def stream(state, ts):
        out = []
        for t in ts:
            f, state = enc.step(state, frames[:, t], embedding=emb[:, t] if kw else None)
            out.append(f)
        return torch.stack(out, 1), state

    with torch.no_grad():
        offline = enc(frames, **kw)
        live, state = stream(enc.init_state(2), range(3))
        torch.testing.assert_close(live, offline[:, :3])
        # stream 1 starts a new episode at frame 3: it gets a fresh clip's features there
        state = enc.reset_state(state, torch.tensor([False, True]))
        rest, _ = stream(state, range(3, 5))
        fresh = enc(frames[1:, 3:], **({"embedding": emb[1:, 3:]} if kw else {}))
    torch.testing.assert_close(rest[0], offline[0, 3:])
    torch.testing.assert_close(rest[1], fresh[0])
