"""Per-plugin obs config validation (old flat names too), build_obs_encoder, the precomputed
encoder, frame sources."""
import numpy as np
import pytest
import torch

from agents.obs import CNNEncoder, ObsEncoderConfig, ObsEncoderError, build_obs_encoder
from agents.obs.config import obs_config_from_dict
from agents.obs.data import iter_clip_batches
from agents.obs.precomputed import PrecomputedEncoder
from agents.obs.units_config import UnitsConfig


@pytest.mark.parametrize("kwargs, message", [
    ({"kind": "clip"}, "Unknown observation encoder 'clip'; known: cnn, precomputed, units, vqvae"),
    ({"out_dim": 0}, "out_dim must be a positive width"),
    ({"cnn_channels": ()}, "cnn.channels must be a non-empty tuple"),
    ({"kind": "vqvae", "vqvae_downsample": 9}, "vqvae.downsample must be in 1..5"),
    ({"kind": "vqvae", "codebook_update": "kmeans"}, "vqvae.codebook_update must be one of 'loss', 'ema'"),
    ({"kind": "vqvae", "vqvae_ema_decay": 1.0}, "vqvae.ema_decay must be in"),
    ({"kind": "units", "units_k": 1}, "units.k must be >= 2"),
    ({"kind": "precomputed", "adapter": "mlp"}, "precomputed.adapter must be one of"),
])
def test_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ObsEncoderError, match=message):
        ObsEncoderConfig(**kwargs)


def test_config_dict_round_trip():
    # old flat names map onto the plugin's; another kind's old options were inert and drop
    cfg = ObsEncoderConfig(kind="units", cnn_channels=(8, 8), units_k=5, units_deltas=True)
    assert type(cfg) is UnitsConfig and cfg == UnitsConfig(k=5, deltas=True)
    assert cfg.units_k == 5  # old attribute names still read
    assert cfg.to_dict()["plugin"] == "agents.obs.units_config"
    assert obs_config_from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ObsEncoderError, match="Unknown option\\(s\\) \\['bogus'\\] for the 'cnn'"):
        obs_config_from_dict({"bogus": 1})
    with pytest.raises(AttributeError):
        _ = cfg.cnn_arch  # another kind's old name is not an attribute of this one


def test_cnn_default_and_width():
    enc = build_obs_encoder(ObsEncoderConfig(out_dim=32, cnn_channels=(8, 16)))
    assert isinstance(enc, CNNEncoder) and not enc.requires_fit
    assert enc.needs_column is None
    out = enc(torch.randint(0, 255, (2, 3, 20, 24, 3), dtype=torch.uint8))
    assert out.shape == (2, 3, 32)
    # by default a frame's features read it and its predecessor (frame deltas) ...
    frames = torch.randint(0, 255, (1, 2, 16, 16, 3), dtype=torch.uint8)
    assert torch.allclose(enc(frames)[0, 1], enc.encode_frames(frames[0, 1:], frames[0, :1])[0], atol=1e-6)
    # ... and without deltas a clip's features equal those of its frames encoded alone
    plain = build_obs_encoder(ObsEncoderConfig(out_dim=32, cnn_channels=(8, 16), cnn_frame_delta=False))
    assert torch.allclose(plain(frames)[0, 1], plain.encode_frames(frames[0, 1:])[0], atol=1e-6)
    with pytest.raises(ObsEncoderError, match="expects frames uint8 \\[B, T, H, W, 3\\]"):
        enc(torch.zeros(2, 16, 16, 3, dtype=torch.uint8))


def test_precomputed_passthrough_and_adapters():
    emb = torch.randn(2, 5, 6)
    plain = build_obs_encoder(ObsEncoderConfig(kind="precomputed", precomputed_dim=6))
    assert plain.needs_column == "embedding" and plain.out_dim == 6
    assert not list(plain.parameters())
    assert torch.equal(plain(None, embedding=emb), emb)
    ln = PrecomputedEncoder(ObsEncoderConfig(kind="precomputed", precomputed_dim=6,
                                             precomputed_adapter="layernorm"))
    out = ln(None, embedding=emb)
    assert torch.allclose(out.mean(-1), torch.zeros(2, 5), atol=1e-5)
    lin = build_obs_encoder(ObsEncoderConfig(kind="precomputed", precomputed_dim=6, out_dim=4,
                                             precomputed_adapter="layernorm+linear"))
    out = lin(torch.zeros(2, 5, 8, 8, 3, dtype=torch.uint8), embedding=emb)
    assert out.shape == (2, 5, 4)
    out.sum().backward()
    assert lin.adapter[1].weight.grad.abs().sum() > 0


def test_precomputed_errors():
    with pytest.raises(ObsEncoderError, match="needs its dim option"):
        build_obs_encoder(ObsEncoderConfig(kind="precomputed"))
    enc = build_obs_encoder(ObsEncoderConfig(kind="precomputed", precomputed_dim=6))
    with pytest.raises(ObsEncoderError, match="python -m agents.obs.embed"):
        enc(torch.zeros(1, 2, 4, 4, 3, dtype=torch.uint8))
    with pytest.raises(ObsEncoderError, match="float \\[B, T, 6\\], got \\(1, 2, 5\\)"):
        enc(None, embedding=torch.zeros(1, 2, 5))
    with pytest.raises(ObsEncoderError, match="no linear adapter"):
        build_obs_encoder(ObsEncoderConfig(kind="precomputed", precomputed_dim=6, out_dim=3))


def test_frame_sources():
    frames = np.random.default_rng(0).integers(0, 255, (6, 4, 4, 3), dtype=np.uint8)
    (clip,) = iter_clip_batches(frames)
    assert clip["frames"].shape == (1, 6, 4, 4, 3) and clip["valid"].all()
    items = [{"frames": torch.as_tensor(frames[:3]), "valid": torch.tensor([True, True, False]),
              "embedding": torch.ones(3, 2)}] * 2
    class Windows(torch.utils.data.Dataset):
        def __len__(self):
            return len(items)

        def __getitem__(self, i):
            return items[i]

    batches = list(iter_clip_batches(Windows(), batch_size=2))
    assert len(batches) == 1 and batches[0]["valid"].tolist() == [[True, True, False]] * 2
    assert batches[0]["embedding"].shape == (2, 3, 2)
    with pytest.raises(ObsEncoderError, match="Expected uint8 RGB frames"):
        list(iter_clip_batches(np.zeros((2, 4, 4), np.float32)))
    with pytest.raises(ObsEncoderError, match="Cannot read training frames from a int"):
        list(iter_clip_batches(3))
