"""The observation-encoder registry: the listing, old flat configs and flags mapped onto the
per-plugin configs, plugins by import path, and the recipe "add an encoder" end to end (a toy
encoder from tests/plugins fitted, trained, saved, and narrated after a reload in a fresh
process)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import synthetic_dataset, tiny_args

from agents.config import ModelConfig
from agents.errors import ObsEncoderError
from agents.model.hf import read_agent_config
from agents.obs.__main__ import main as obs_main
from agents.obs.config import fitted_obs_kinds, obs_config_from_dict
from agents.training.command import cli
from agents.training.config import parse_args

LEGACY = json.loads((Path(__file__).parent / "test_obs_legacy_configs.json").read_text())
TOY = "plugins.toy_obs:toy"


def test_listing_names_every_kind_and_its_options(capsys):
    assert obs_main(["list"]) == 0
    out = capsys.readouterr().out
    for line in ("cnn: small CNN", "vqvae: VQ-VAE", "units: k-means", "precomputed: the dataset's",
                 "--model.obs.frame_delta (default True)", "--model.obs.k (default 64)"):
        assert line in out
    assert obs_main(["list", "--plugin", "plugins.toy_obs"]) == 0
    assert "toy: mean colour" in capsys.readouterr().out
    assert obs_main(["list", "--plugin", "no_such_plugin_pkg"]) == 2
    assert "error: Module 'no_such_plugin_pkg' cannot be imported" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["cnn", "vqvae", "units", "precomputed"])
def test_old_flat_model_configs_still_load(kind):
    """model_config.json files written with the flat 25-field ObsEncoderConfig."""
    obs = ModelConfig.from_saved({"obs": LEGACY[kind]}).obs
    assert obs.kind == kind
    expected = {"cnn": {"channels": (32, 32), "frame_delta": True, "arch": "patch", "out_dim": 64},
                "units": {"k": 3, "pixel_size": 2, "dim": 16, "deltas": True, "out_dim": None},
                "vqvae": {"hidden": 8, "codebook_size": 4, "features": "codes"},
                "precomputed": {"dim": 6, "adapter": "layernorm"}}[kind]
    assert {name: getattr(obs, name) for name in expected} == expected
    assert obs_config_from_dict(obs.to_dict()) == obs  # and today's format round-trips


def test_old_flat_flags_map_onto_the_plugin_options(tmp_path):
    base = ["--data", "d", "--out", str(tmp_path)]
    with pytest.warns(UserWarning, match="cnn_channels is an option of the 'cnn'"):
        cfg = parse_args([*base, "--model.obs.cnn_channels", "8", "8", "--model.obs.kind", "units",
                          "--model.obs.units_k", "5", "--model.obs.units-deltas",
                          "--model.obs.units_source=pixels", "--model.obs.out_dim", "16"])
    assert type(cfg.model.obs).__name__ == "UnitsConfig"
    assert (cfg.model.obs.k, cfg.model.obs.deltas, cfg.model.obs.out_dim) == (5, True, 16)
    assert parse_args([*base, "--model.obs.cnn_frame_delta", "False"]).model.obs.frame_delta is False
    assert parse_args([*base, "--model.obs.cnn_frame_delta", "None"]).model.obs.frame_delta is True
    new = parse_args([*base, "--model.obs.no-frame-delta", "--model.obs.channels", "4", "4"])
    assert (new.model.obs.frame_delta, new.model.obs.channels) == (False, (4, 4))
    assert parse_args([*base, "--model.obs.kind", "vqvae", "--model.obs.hidden", "8"]).model.obs.hidden == 8
    assert {"units", "vqvae"} <= set(fitted_obs_kinds()) and "cnn" not in fitted_obs_kinds()


def test_a_checkpoint_naming_a_missing_plugin_fails_with_one_line():
    with pytest.raises(ObsEncoderError, match="needs module 'gone_pkg.obs', which cannot be "
                                              "imported .*; install it or put it on PYTHONPATH"):
        ModelConfig.from_saved({"obs": {"kind": "ghost", "plugin": "gone_pkg.obs"}})
    with pytest.raises(ObsEncoderError, match="Unknown observation encoder 'ghost'; known: cnn, "):
        obs_config_from_dict({"kind": "ghost"})


@pytest.mark.slow
def test_recipe_a_toy_encoder_trains_saves_and_narrates_in_a_fresh_process(tmp_path, plugin_env):
    data = synthetic_dataset(tmp_path / "ds", episodes=4, length=12)
    run = tmp_path / "run"
    # the kind is a string entry point; old flat cnn flags in tiny_args are ignored with a warning
    assert cli(tiny_args(data, run, 2, "--model.obs.kind", TOY, "--model.obs.gain", "2.0")) == 0
    saved = read_agent_config(next(run.glob("checkpoints/*/agent")))[0]["obs"]
    assert saved == {"kind": "toy", "plugin": "plugins.toy_obs", "out_dim": 32, "gain": 2.0}
    fitted = json.loads((run / "obs_encoder" / "config.json").read_text())
    assert fitted["kind"] == "toy"  # fitted by the trainer because the encoder requires_fit
    frames = torch.randint(0, 255, (1, 6, 16, 16, 3), generator=torch.Generator().manual_seed(0),
                           dtype=torch.uint8)
    torch.save(frames, tmp_path / "frames.pt")
    code = ("import sys, json, torch; from agents.training import load_agent; "
            f"a = load_agent({str(run)!r}); f = torch.load({str(tmp_path / 'frames.pt')!r}); "
            "assert 'plugins.toy_obs' in sys.modules and not a.encoder.obs.requires_fit; "
            "print(json.dumps([a.narrate(f).tolist(), a.encoder.obs.mean.tolist()]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env=plugin_env, check=False)
    assert out.returncode == 0, out.stderr
    from agents.training import load_agent

    agent = load_agent(run)
    ids, mean = json.loads(out.stdout)
    assert ids == agent.narrate(frames).tolist() and mean == agent.encoder.obs.mean.tolist()
    assert any(m > 0 for m in mean)  # fitted on the dataset's frames, not left at zero


@pytest.mark.slow
def test_a_run_saved_with_the_flat_obs_config_resumes_and_loads(tmp_path):
    """config.yaml, meta.json and model_config.json as the flat ObsEncoderConfig wrote them."""
    import yaml

    from agents.training import checkpoint as C
    from agents.training import loading as L

    data = synthetic_dataset(tmp_path / "ds", episodes=4, length=12)
    run = tmp_path / "run"
    assert cli(tiny_args(data, run, 2, "--model.obs.cnn_frame_delta", "False")) == 0
    flat = {**LEGACY["cnn"], "out_dim": 32, "cnn_channels": [8, 8], "cnn_frame_delta": False}
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["model"]["obs"] = flat
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    ckpt = C.latest_checkpoint(run)
    meta = json.loads((ckpt / "meta.json").read_text())
    meta["config"]["model"]["obs"] = flat
    (ckpt / "meta.json").write_text(json.dumps(meta))
    agent_cfg = read_agent_config(ckpt / "agent")[0]  # and the agent dir in its old layout
    (ckpt / "agent" / "config.json").unlink()
    (ckpt / "agent" / "model_config.json").write_text(json.dumps({**agent_cfg, "obs": flat}))
    frames = torch.randint(0, 255, (1, 4, 16, 16, 3), dtype=torch.uint8)
    before = L.load_agent(run).narrate(frames)
    assert cli(["--data", str(data), "--out", str(run), "--steps", "3", "--resume"]) == 0
    assert C.latest_checkpoint(run).name.endswith("3") and before.shape == (1, 4, 4)


def test_any_fitted_per_frame_encoder_can_write_an_embedding_column(tmp_path):
    from agents.obs import build_obs_encoder
    from agents.obs.embedders import load_embedder

    frames = torch.randint(0, 255, (12, 8, 8, 3), generator=torch.Generator().manual_seed(0),
                           dtype=torch.uint8)
    toy = build_obs_encoder({"kind": TOY, "out_dim": 5})
    toy.fit(frames)
    toy.save(tmp_path / "toy")
    emb = load_embedder(f"{TOY}:{tmp_path / 'toy'}", probe_shape=(8, 8))
    assert emb.dim == 5 and torch.allclose(emb(frames[:3]), toy.eval().encode_frames(frames[:3]))
    units = build_obs_encoder({"kind": "units", "k": 2, "pixel_size": 2, "deltas": True})
    units.fit(frames, progress=False)
    units.save(tmp_path / "units")
    with pytest.raises(ObsEncoderError, match="only encoders whose features are per frame"):
        load_embedder(f"units:{tmp_path / 'units'}")
