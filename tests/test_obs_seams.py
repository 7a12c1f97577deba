"""The two seam bugs of issue 11 between the observation encoders and their callers:
``encoder.fit(dataset_dir)`` (the call the encoders' own error messages recommend) and
``BYOGAgent.from_pretrained`` on a saved agent with a fitted (vqvae / units) encoder."""
from __future__ import annotations

import pytest
import torch
from helpers import synthetic_dataset

from agents.config import make_model_config
from agents.model.agent import BYOGAgent
from agents.model.text import train_tokenizer
from agents.obs import ObsEncoderConfig, build_obs_encoder


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    return synthetic_dataset(tmp_path_factory.mktemp("seams") / "ds", episodes=3, length=12, size=16)


def test_units_fit_reads_a_dataset_directory(dataset_dir):
    enc = build_obs_encoder(ObsEncoderConfig(kind="units", units_k=3, units_pixel_size=2))
    stats = enc.fit(dataset_dir, window=4, progress=False)
    assert not enc.requires_fit and stats["units/frames"] == 36  # 3 episodes x 12 frames


def test_vqvae_fit_reads_a_dataset_directory(dataset_dir):
    enc = build_obs_encoder(ObsEncoderConfig(kind="vqvae", vqvae_hidden=8, vqvae_codebook_size=4,
                                             vqvae_code_dim=4))
    history = enc.fit(dataset_dir, steps=2, batch_size=8, window=4, progress=False)
    assert not enc.requires_fit and len(history["loss"]) == 2


def test_from_pretrained_rebuilds_a_saved_units_agent(tmp_path):
    tok = train_tokenizer(["saw thing0", "wood in view"])
    cfg = make_model_config("tiny", "byog", obs={"kind": "units", "out_dim": None, "units_k": 3,
                                                 "units_pixel_size": 2, "units_dim": 16},
                            text={"tokens_per_frame": 2})
    enc = build_obs_encoder(cfg.obs)
    enc.fit(torch.randint(0, 255, (30, 16, 16, 3), dtype=torch.uint8), progress=False)
    torch.manual_seed(0)
    agent = BYOGAgent(cfg, tok, obs_encoder=enc).eval()
    agent.save_pretrained(tmp_path / "agent")
    again = BYOGAgent.from_pretrained(tmp_path / "agent").eval()  # no obs_encoder passed
    assert not again.encoder.obs.requires_fit
    assert torch.equal(again.encoder.obs.centroids, enc.centroids)
    frames = torch.randint(0, 255, (2, 5, 16, 16, 3), dtype=torch.uint8)
    assert torch.equal(again.narrate(frames), agent.narrate(frames))
