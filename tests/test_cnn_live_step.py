"""The cnn encoder's lean live step (CNNEncoder.step): the module path's function, fewer ops."""
import pytest
import torch

from agents.obs.base import ObsEncoder
from agents.obs.cnn import CNNEncoder

pytestmark = pytest.mark.usefixtures("one_thread")


def frames(B=2, T=6, side=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (B, T, side, side, 3), generator=g, dtype=torch.uint8)


def make(channels=(8, 8), frame_delta=True, patch=4, grid=4):
    torch.manual_seed(0)
    return CNNEncoder(out_dim=16, channels=channels, frame_delta=frame_delta, patch=patch,
                      grid=grid).eval()


def stream(enc, clip, step=None):
    """Step ``enc`` through ``clip`` [B, T, ...] one frame at a time -> [B, T, out_dim]."""
    step = step or enc.step
    state, out = enc.init_state(clip.shape[0]), []
    for t in range(clip.shape[1]):
        f, state = step(state, clip[:, t])
        out.append(f)
    return torch.stack(out, 1), state


def refuse_module_path(monkeypatch):
    def module_path(*a, **k):
        raise AssertionError("the module path ran where the lean path applies")
    monkeypatch.setattr(ObsEncoder, "step", module_path)


@pytest.mark.parametrize("channels", [(8,), (8, 8), (8, 8, 8)])
@pytest.mark.parametrize("frame_delta", [True, False])
def test_lean_step_gives_the_offline_clip(channels, frame_delta, monkeypatch):
    enc, clip = make(channels, frame_delta), frames()
    with torch.no_grad():
        offline = enc(clip)
        refuse_module_path(monkeypatch)  # the frame side is patch x grid: the lean path runs
        live, state = stream(enc, clip)
        torch.testing.assert_close(live, offline, rtol=1e-5, atol=1e-5)
        # stream 1 starts a new episode: its first frame gets a zero delta, as a fresh clip's
        state = enc.reset_state(state, torch.tensor([False, True]))
        more = frames(seed=1)[:, :2]
        f, _ = enc.step(state, more[:, 0])
        fresh = enc(more[1:, :1])[:, 0]
    torch.testing.assert_close(f[1:], fresh, rtol=1e-5, atol=1e-5)
    if frame_delta:  # and stream 0 its delta to frame 5 of the first clip
        with torch.no_grad():
            cont = enc(more[:1, :1], prev_frame=clip[:1, -1])[:, 0]
        torch.testing.assert_close(f[:1], cont, rtol=1e-5, atol=1e-5)


def test_lean_step_follows_weight_updates():
    """The folded patch weights are kept while the weights are unchanged, refolded after."""
    enc, clip = make(), frames()
    with torch.no_grad():
        before, _ = stream(enc, clip)
        enc.convs[0].weight.mul_(0.5)  # an optimizer step is an in-place update like this one
        enc.convs[0].bias.add_(0.1)
        after, _ = stream(enc, clip)
        offline = enc(clip)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, offline, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", ["grad", "train", "pool", "conv-arch"])
def test_module_path_where_the_lean_one_does_not_apply(case, monkeypatch):
    """Autograd, training mode, a frame the pool must resize and the conv arch take the module
    path (the lean one is inference-only and restates the patch arch at its own grid)."""
    side = 12 if case == "pool" else 16
    enc = (CNNEncoder(out_dim=16, channels=(8, 8), arch="conv", frame_delta=True).eval()
           if case == "conv-arch" else make())
    if case == "train":
        enc.train()
    clip = frames(side=side)
    ran = []
    module_step = ObsEncoder.step
    monkeypatch.setattr(ObsEncoder, "step", lambda *a, **k: ran.append(1) or module_step(*a, **k))
    with torch.set_grad_enabled(case == "grad"):
        live, _ = stream(enc, clip)
        offline = enc(clip)
    assert len(ran) == clip.shape[1]
    torch.testing.assert_close(live, offline)
    if case == "grad":
        live.sum().backward()
        assert enc.convs[0].weight.grad is not None
