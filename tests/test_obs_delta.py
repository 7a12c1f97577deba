"""The cnn observation encoder's frame-delta input ([o_t, o_t - o_{t-1}], cnn_frame_delta)."""
import pytest
import torch

from agents.obs import build_obs_encoder
from agents.obs.base import ObsEncoderError
from agents.obs.cnn import CNNEncoder
from agents.obs.cnn_config import CNNConfig
from agents.obs.config import ObsEncoderConfig, obs_config_from_dict


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def clip(B=2, T=5, H=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (B, T, H, H, 3), generator=g, dtype=torch.uint8)


def make(**kw):
    torch.manual_seed(0)
    return CNNEncoder(out_dim=16, channels=(8, 8), frame_delta=True, **kw).eval()


def test_config_builds_a_six_channel_cnn_and_defaults_to_on():
    assert CNNConfig().frame_delta is True  # on by default; the old tri-state None meant on
    assert ObsEncoderConfig(cnn_frame_delta=None).frame_delta is True
    on = build_obs_encoder(ObsEncoderConfig(out_dim=16, cnn_channels=(8, 8)))
    off = build_obs_encoder(ObsEncoderConfig(out_dim=16, cnn_channels=(8, 8), cnn_frame_delta=False))
    assert off.convs[0].in_channels == 3 and not off.uses_previous_frame
    assert on.convs[0].in_channels == 6 and on.uses_previous_frame
    cfg = ObsEncoderConfig(cnn_frame_delta=False)
    assert obs_config_from_dict(cfg.to_dict()).frame_delta is False
    assert not ObsEncoderConfig(kind="units").uses_previous_frame  # no cnn option leaks over


def test_patch_arch_keeps_where_things_are():
    """One patch cell per tile: changing one tile changes the features, and the cell grid is
    flattened (not pooled away), so the same tile at two places gives different features."""
    torch.manual_seed(0)
    enc = build_obs_encoder(ObsEncoderConfig(out_dim=32, cnn_channels=(8, 8), cnn_frame_delta=False)).eval()
    assert enc.convs[0].kernel_size == (8, 8) and enc.convs[0].stride == (8, 8)
    assert enc.head[1].in_features == 8 * 8 * 8  # channels x grid x grid
    x = torch.zeros(1, 1, 64, 64, 3, dtype=torch.uint8)
    a, b = x.clone(), x.clone()
    a[0, 0, 0:8, 0:8] = 255  # a white tile top-left
    b[0, 0, 56:64, 56:64] = 255  # the same tile bottom-right
    fa, fb, f0 = enc(a), enc(b), enc(x)
    assert not torch.allclose(fa, f0, atol=1e-5) and not torch.allclose(fa, fb, atol=1e-5)
    # any frame size: a 96x80 frame pools its 12x10 cells to the 8x8 grid
    assert enc(torch.zeros(2, 3, 96, 80, 3, dtype=torch.uint8)).shape == (2, 3, 32)
    with pytest.raises(ObsEncoderError, match="cnn.arch must be one of"):
        ObsEncoderConfig(cnn_arch="vit")
    with pytest.raises(ObsEncoderError, match="cnn.patch"):
        ObsEncoderConfig(cnn_patch=0)


def test_each_frame_sees_its_predecessor_and_the_first_a_zero_delta():
    enc, x = make(), clip()
    out = enc(x)  # [B, T, 16]
    assert out.shape == (2, 5, 16)
    def flat(t):
        return t.reshape(-1, *t.shape[2:])
    prev = torch.cat([x[:, :1], x[:, :-1]], 1)
    assert torch.allclose(out, enc.encode_frames(flat(x), flat(prev)).view(2, 5, 16), atol=1e-6)
    # the first frame alone (zero delta) gives the same features as inside the clip
    assert torch.allclose(out[:, 0], enc(x[:, :1])[:, 0], atol=1e-6)
    # a later frame depends on its predecessor, not only on itself
    assert not torch.allclose(out[:, 3], enc(x[:, 3:4])[:, 0], atol=1e-4)
    # frame by frame with prev_frame == the whole clip (live narration == offline)
    steps = [enc(x[:, :1])[:, 0]] + [enc(x[:, t:t + 1], prev_frame=x[:, t - 1])[:, 0]
                                    for t in range(1, 5)]
    assert torch.allclose(torch.stack(steps, 1), out, atol=1e-6)


def test_padding_never_leaks_into_a_real_frames_delta():
    enc, x = make(), clip()
    valid = torch.tensor([[False, False, True, True, True], [True, True, True, False, False]])
    y = x.clone()
    y[0, :2] = 7  # change only the padded frames
    y[1, 3:] = 200
    a, b = enc(x, valid=valid), enc(y, valid=valid)
    assert torch.allclose(a[valid], b[valid], atol=1e-6)
    # the first real frame after padding starts with a zero delta
    assert torch.allclose(a[0, 2], enc(x[:1, 2:3])[0, 0], atol=1e-6)


def test_gradients_reach_the_delta_channels():
    enc, x = make(), clip()
    enc.train()
    enc(x).square().sum().backward()
    g = enc.convs[0].weight.grad  # [8, 6, k, k]
    assert g.shape[1] == 6 and g[:, 3:].abs().sum() > 0 and g[:, :3].abs().sum() > 0


def test_bad_prev_frame_gives_one_clear_error():
    enc, x = make(), clip()
    with pytest.raises(ObsEncoderError, match=r"prev_frame must be uint8 \[B, H, W, 3\]"):
        enc(x, prev_frame=x[:, 0, :6])
    with pytest.raises(ObsEncoderError, match=r"expects frames uint8 \[B, T, H, W, 3\]"):
        enc(x[:, 0])
