"""VQ-VAE obs encoder: quantization maths, straight-through gradient, fitting, save/load."""
import pytest
import torch

from agents.obs import ObsEncoderConfig, ObsEncoderError, build_obs_encoder
from agents.obs.vqvae import (
    VQVAE,
    VQVAEEncoder,
    ema_codebook_update,
    quantize,
    straight_through,
    vq_loss,
)

TINY = {"kind": "vqvae", "vqvae_hidden": 16, "vqvae_codebook_size": 8, "vqvae_code_dim": 4,
            "vqvae_downsample": 2, "vqvae_pool": 2}


def pattern_frames(n: int = 48, size: int = 16, seed: int = 0) -> torch.Tensor:
    """Frames made of 4 two-colour patterns (left/right halves), uint8 [n, size, size, 3]."""
    g = torch.Generator().manual_seed(seed)
    colours = (torch.rand(4, 2, 3, generator=g) * 255).to(torch.uint8)
    which = torch.randint(0, 4, (n,), generator=g)
    frames = torch.empty(n, size, size, 3, dtype=torch.uint8)
    frames[:, :, : size // 2] = colours[which, 0][:, None, None]
    frames[:, :, size // 2:] = colours[which, 1][:, None, None]
    return frames


def test_quantize_and_loss_on_hand_example():
    z_e = torch.tensor([[0.0, 0.0], [2.0, 1.0]], requires_grad=True)
    codebook = torch.tensor([[0.0, 1.0], [2.0, 2.0]], requires_grad=True)
    idx, z_q = quantize(z_e, codebook)
    assert idx.tolist() == [0, 1]  # d^2: row0 -> (1, 8); row1 -> (4, 1)
    assert torch.equal(z_q, torch.tensor([[0.0, 1.0], [2.0, 2.0]]))
    loss, m = vq_loss(z_e, z_q, beta=0.25)
    # codebook term mse = (0 + 1 + 0 + 1) / 4 = 0.5; commitment the same, times beta
    assert loss.item() == pytest.approx(0.5 + 0.25 * 0.5)
    assert m == {"vq/codebook": pytest.approx(0.5), "vq/commitment": pytest.approx(0.5)}
    loss.backward()
    # d/dz_q of mse(z_q, sg z_e) = 2 (z_q - z_e) / 4, routed to the chosen codebook rows
    assert torch.allclose(codebook.grad, torch.tensor([[0.0, 0.5], [0.0, 0.5]]))
    # d/dz_e only from the commitment term: beta * 2 (z_e - z_q) / 4
    assert torch.allclose(z_e.grad, torch.tensor([[0.0, -0.125], [0.0, -0.125]]))


def test_ema_loss_drops_codebook_term():
    z_e = torch.tensor([[0.0, 0.0]])
    z_q = torch.tensor([[0.0, 2.0]], requires_grad=True)
    loss, _ = vq_loss(z_e, z_q, beta=0.5, codebook_loss=False)
    assert loss.item() == pytest.approx(0.5 * 2.0)  # beta * mse = 0.5 * 4 / 2
    assert not loss.requires_grad  # no gradient reaches the codebook


def test_ema_codebook_update_formula():
    cs, es, cb = ema_codebook_update(torch.tensor([1.0, 1.0]), torch.tensor([[0.0], [2.0]]),
                                     torch.tensor([[1.0], [3.0], [5.0]]),
                                     torch.tensor([0, 1, 1]), decay=0.5, eps=0.0)
    assert torch.allclose(cs, torch.tensor([1.0, 1.5]))           # .5*1 + .5*[1, 2]
    assert torch.allclose(es, torch.tensor([[0.5], [5.0]]))        # .5*[0, 2] + .5*[1, 8]
    assert torch.allclose(cb, torch.tensor([[0.5], [5.0 / 1.5]]))


def test_straight_through_gradient_reaches_encoder():
    z_e = torch.randn(3, 4, requires_grad=True)
    z_q = torch.randn(3, 4, requires_grad=True)
    out = straight_through(z_e, z_q)
    assert torch.allclose(out, z_q.detach(), atol=1e-6)  # forward value is the quantized one
    w = torch.randn(3, 4)
    (out * w).sum().backward()
    assert torch.equal(z_e.grad, w) and z_q.grad is None

    torch.manual_seed(0)
    vq = VQVAE(hidden=8, n_down=1, codebook_size=4, code_dim=2, beta=0.25, ema=False,
               ema_decay=0.99)
    x = torch.rand(2, 3, 8, 8)
    z_e = vq.encode(x)
    _, z_q = vq.quantize_map(z_e)
    recon = vq.decoder(straight_through(z_e, z_q))
    torch.nn.functional.mse_loss(recon, x).backward()  # reconstruction loss only
    first_conv = vq.encoder[0].weight
    assert first_conv.grad is not None and first_conv.grad.abs().sum() > 0
    assert vq.codebook.grad is None  # the codebook learns only from its own loss


def test_unfitted_encoder_refuses_to_encode():
    enc = build_obs_encoder(ObsEncoderConfig(**TINY))
    assert enc.requires_fit and enc.out_dim == 4 * 2 * 2
    with pytest.raises(ObsEncoderError, match="not been fitted"):
        enc(torch.zeros(1, 2, 16, 16, 3, dtype=torch.uint8))


@pytest.mark.parametrize("update", ["loss", "ema"])
def test_fit_reduces_reconstruction_and_freezes(update):
    torch.set_num_threads(1)
    enc = VQVAEEncoder(ObsEncoderConfig(**TINY, vqvae_codebook_update=update))
    frames = pattern_frames()
    hist = enc.fit(frames, steps=80, batch_size=16, lr=5e-3, restart_every=20, progress=False)
    rec = hist["vq/recon"]
    assert len(rec) == 80
    first, last = sum(rec[:5]) / 5, sum(rec[-5:]) / 5
    assert last < 0.6 * first, (first, last)  # measured ~0.15 (loss), ~0.16 (ema)
    assert not enc.requires_fit and not enc.training
    assert all(not p.requires_grad for p in enc.parameters())
    feats = enc(frames[:6].view(2, 3, 16, 16, 3))
    assert feats.shape == (2, 3, enc.out_dim) and torch.isfinite(feats).all()
    assert not feats.requires_grad


def test_save_load_round_trip_and_feature_kinds(tmp_path):
    enc = VQVAEEncoder(ObsEncoderConfig(**TINY))
    frames = pattern_frames(16)
    enc.fit(frames, steps=3, batch_size=8, progress=False)
    enc.save(tmp_path / "vq")
    loaded = build_obs_encoder(ObsEncoderConfig(kind="vqvae"), fitted_path=tmp_path / "vq")
    assert torch.equal(loaded.encode_frames(frames), enc.encode_frames(frames))
    assert torch.equal(loaded.codes(frames), enc.codes(frames))
    codes = enc.features(frames, "codes")
    assert codes.shape == (16, 8) and torch.allclose(codes.sum(1), torch.ones(16))
    assert enc.features(frames, "pre_quant").shape == (16, 16)
    with pytest.raises(ObsEncoderError, match="gives features of width 16 but out_dim=7"):
        build_obs_encoder(ObsEncoderConfig(kind="vqvae", out_dim=7), fitted_path=tmp_path / "vq")


def test_load_errors_name_the_problem(tmp_path):
    with pytest.raises(ObsEncoderError, match="No fitted vqvae encoder"):
        VQVAEEncoder.load(tmp_path / "missing")
    with pytest.raises(ObsEncoderError, match="fitted_path is only for"):
        build_obs_encoder(ObsEncoderConfig(kind="cnn"), fitted_path=tmp_path)


def test_odd_frame_sizes_are_padded():
    enc = VQVAEEncoder(ObsEncoderConfig(**TINY))
    frames = torch.randint(0, 255, (4, 13, 10, 3), dtype=torch.uint8)
    hist = enc.fit(frames, steps=2, batch_size=4, progress=False)
    assert len(hist["loss"]) == 2
    assert enc.encode_frames(frames).shape == (4, enc.out_dim)


def test_a_fitted_encoder_owns_its_fit_budget():
    """The budget lives in the encoder's config (fit_steps / fit_max_frames), not in the generic
    trainer; a call's own value (the old --obs_fit flags) still overrides it."""
    from agents.obs.units import UnitsEncoder
    from agents.obs.units_config import UnitsConfig

    frames = torch.randint(0, 255, (8, 16, 16, 3), dtype=torch.uint8)
    enc = VQVAEEncoder(ObsEncoderConfig(**TINY, fit_steps=3))
    assert len(enc.fit(frames, batch_size=4, progress=False)["loss"]) == 3
    assert len(VQVAEEncoder(ObsEncoderConfig(**TINY, fit_steps=3)).fit(
        frames, steps=1, batch_size=4, progress=False)["loss"]) == 1
    units = UnitsEncoder(UnitsConfig(k=2, pixel_size=8, fit_max_frames=5))
    assert units.fit(frames, progress=False)["units/frames"] == 5
