"""Units obs encoder: clustering, the seed's three options, temperature, determinism, I/O."""
import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

from agents.obs import ObsEncoderConfig, ObsEncoderError, build_obs_encoder
from agents.obs.units import UnitsEncoder, assign_units, clip_transform, squared_distances
from agents.obs.vqvae import VQVAEEncoder

COLOURS = torch.tensor([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]],
                       dtype=torch.uint8)


def colour_clips(B: int = 20, T: int = 10, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 5, (B, T), generator=g)
    frames = COLOURS[labels][:, :, None, None, :].expand(B, T, 8, 8, 3).clone()
    return frames, labels


def blobs(n_clusters=4, per=50, dim=6, spread=0.05, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(n_clusters, dim, generator=g) * 3
    labels = torch.arange(n_clusters).repeat_interleave(per)
    x = centres[labels] + spread * torch.randn(len(labels), dim, generator=g)
    return x, labels, centres


def test_recovers_planted_clusters_from_pixels():
    frames, labels = colour_clips()
    enc = build_obs_encoder(ObsEncoderConfig(kind="units", units_k=5, units_pixel_size=2,
                                             units_embedding="onehot"))
    stats = enc.fit(frames, progress=False)
    assert stats["units/frames"] == 200 and stats["units/used"] == 5
    assert stats["units/inertia_per_frame"] < 1e-6
    ids = enc.unit_ids(frames)
    assert ids.shape == (20, 10) and ids.dtype == torch.long
    assert adjusted_rand_score(labels.flatten(), ids.flatten()) == 1.0
    feats = enc(frames)
    assert feats.shape == (20, 10, 5) and torch.equal(feats.argmax(-1), ids)
    assert enc.out_dim == 5 and not any(p.requires_grad for p in enc.parameters())


def test_recovers_planted_clusters_from_embedding_column():
    x, labels, _ = blobs()
    emb = x.view(20, 10, 6)
    enc = UnitsEncoder(ObsEncoderConfig(kind="units", units_k=4, units_source="embedding",
                                        units_embedding="centroid"))
    assert enc.needs_column == "embedding" and enc.out_dim is None  # known once fitted
    enc.fit([{"frames": torch.zeros(20, 10, 1, 1, 3, dtype=torch.uint8), "embedding": emb}],
            progress=False)
    assert enc.out_dim == 6
    ids = enc.unit_ids(None, embedding=emb)
    assert adjusted_rand_score(labels, ids.flatten()) == 1.0
    with pytest.raises(ObsEncoderError, match="columns=\\('embedding',\\)"):
        enc(torch.zeros(1, 2, 4, 4, 3, dtype=torch.uint8))
    # the centroid feature is the (near-exact) cluster mean
    assert torch.allclose(enc(None, embedding=emb), enc.centroids[ids])


def _ct(*args, **kw):
    return clip_transform(*args, **kw)[0]


def test_clip_transform_hand_values():
    f = torch.tensor([[[1.0], [2.0], [4.0]]])
    assert torch.allclose(_ct(f, deltas=True), torch.tensor([[[0.0], [1.0], [2.0]]]))
    # the running mean of frames <= t: 1, 1.5, 7/3
    assert torch.allclose(_ct(f, subtract_mean=True), torch.tensor([[[0.0], [0.5], [5 / 3]]]))
    valid = torch.tensor([[True, True, False]])
    assert torch.allclose(_ct(f, valid, deltas=True), torch.tensor([[[0.0], [1.0], [0.0]]]))
    assert torch.allclose(_ct(f, valid, subtract_mean=True), torch.tensor([[[0.0], [0.5], [0.0]]]))
    # both: deltas first (0, 1, 2), then their running mean (0, 0.5, 1) is removed
    assert torch.allclose(_ct(f, deltas=True, subtract_mean=True),
                          torch.tensor([[[0.0], [0.5], [1.0]]]))


def test_clip_transform_carry_continues_a_stream():
    f = torch.tensor([[[1.0], [2.0], [4.0], [7.0]]])
    whole = _ct(f, deltas=True, subtract_mean=True)
    head, carry = clip_transform(f[:, :2], deltas=True, subtract_mean=True)
    tail, _ = clip_transform(f[:, 2:], deltas=True, subtract_mean=True, carry=carry)
    assert torch.allclose(torch.cat([head, tail], 1), whole)
    # a window whose previous frame is known starts with its real delta
    started = {"prev_feat": torch.tensor([[3.0]]), "started": torch.tensor([True])}
    assert torch.allclose(_ct(f[:, 2:], deltas=True, carry=started), torch.tensor([[[1.0], [3.0]]]))


def _offset_clips():
    """Clips alternating patterns A/B, each clip shifted by its own large offset."""
    pattern = torch.tensor([[0.0, 1.0], [1.0, 0.0]])  # A, B
    offsets = torch.tensor([[0.0, 0.0], [10.0, 10.0], [-10.0, 5.0], [20.0, -20.0]])
    which = torch.tensor([0, 1] * 4)                   # A B A B ... per clip
    emb = pattern[which][None] + offsets[:, None]      # [4, 8, 2]
    return emb, which.expand(4, 8)


def test_subtract_mean_clusters_patterns_not_clips():
    emb, which = _offset_clips()
    batch = [{"frames": torch.zeros(4, 8, 1, 1, 3, dtype=torch.uint8), "embedding": emb}]
    base = {"kind": "units", "units_k": 2, "units_source": "embedding", "units_embedding": "onehot"}
    plain = UnitsEncoder(ObsEncoderConfig(**base))
    plain.fit(batch, progress=False)
    centred = UnitsEncoder(ObsEncoderConfig(**base, units_subtract_mean=True))
    centred.fit(batch, progress=False)
    ari_plain = adjusted_rand_score(which.flatten(), plain.unit_ids(None, embedding=emb).flatten())
    ari_centred = adjusted_rand_score(which.flatten(),
                                      centred.unit_ids(None, embedding=emb).flatten())
    assert ari_centred == 1.0 and ari_plain < 0.2


def test_deltas_cluster_motion_not_scene():
    # each clip: a different static scene, moving right (+1) then left (-1) in turn
    g = torch.Generator().manual_seed(0)
    scenes = torch.randn(6, 1, 3, generator=g) * 10
    steps = torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0])
    pos = torch.cat([torch.zeros(1), steps.cumsum(0)])            # [8]
    emb = scenes + pos[None, :, None] * torch.tensor([1.0, 0.0, 0.0])  # [6, 8, 3]
    motion = torch.cat([torch.tensor([-1]), (steps > 0).long()]).expand(6, 8)
    batch = [{"frames": torch.zeros(6, 8, 1, 1, 3, dtype=torch.uint8), "embedding": emb}]
    base = {"kind": "units", "units_k": 3, "units_source": "embedding", "units_embedding": "onehot"}
    plain, moving = UnitsEncoder(ObsEncoderConfig(**base)), UnitsEncoder(
        ObsEncoderConfig(**base, units_deltas=True))
    plain.fit(batch, progress=False)
    moving.fit(batch, progress=False)
    ids = moving.unit_ids(None, embedding=emb)
    # frames 1.. : the unit is the direction of motion, identical across all six scenes
    assert adjusted_rand_score(motion[:, 1:].flatten(), ids[:, 1:].flatten()) == 1.0
    assert adjusted_rand_score(motion[:, 1:].flatten(),
                               plain.unit_ids(None, embedding=emb)[:, 1:].flatten()) < 0.2


def test_temperature_behaviour():
    x, _, centres = blobs(n_clusters=4, per=25, spread=0.5)
    nearest = squared_distances(x, centres).argmin(1)
    assert torch.equal(assign_units(x, centres, temperature=0.0), nearest)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(assign_units(x, centres, temperature=1e-4, generator=g), nearest)
    # high temperature spreads the assignment towards uniform
    one = x[:1].expand(4000, -1)
    hot = assign_units(one, centres, temperature=1e6, generator=g)
    freq = torch.bincount(hot, minlength=4).float() / 4000
    assert torch.allclose(freq, torch.full((4,), 0.25), atol=0.04)
    # a middle temperature samples with the softmax(-d^2 / T) probabilities
    T = float(squared_distances(x[:1], centres).std())
    probs = torch.softmax(-squared_distances(x[:1], centres)[0] / T, 0)
    mid = torch.bincount(assign_units(one, centres, temperature=T, generator=g), minlength=4)
    assert torch.allclose(mid.float() / 4000, probs, atol=0.04)


def test_train_mode_samples_eval_mode_takes_argmax():
    frames, labels = colour_clips()
    enc = UnitsEncoder(ObsEncoderConfig(kind="units", units_k=5, units_pixel_size=2,
                                        units_temperature=1e6))
    enc.fit(frames, progress=False)
    nearest = enc.eval().unit_ids(frames)
    assert adjusted_rand_score(labels.flatten(), nearest.flatten()) == 1.0
    sampled = enc.train().unit_ids(frames, generator=torch.Generator().manual_seed(0))
    assert (sampled != nearest).float().mean() > 0.5  # ~uniform over 5 units: ~80% differ
    again = enc.unit_ids(frames, generator=torch.Generator().manual_seed(0))
    assert torch.equal(sampled, again)                # seeded sampling is reproducible


def test_fit_is_deterministic_with_a_seed():
    x, _, _ = blobs(n_clusters=5, per=30, spread=1.0, seed=1)
    emb = x.view(15, 10, 6)
    batch = [{"frames": torch.zeros(15, 10, 1, 1, 3, dtype=torch.uint8), "embedding": emb}]
    cfg = ObsEncoderConfig(kind="units", units_k=5, units_source="embedding", units_seed=3)
    a, b = UnitsEncoder(cfg), UnitsEncoder(cfg)
    a.fit(batch, progress=False)
    b.fit(batch, progress=False)
    assert torch.equal(a.centroids, b.centroids)


def test_learned_embedding_is_trainable_and_saved(tmp_path):
    frames, _ = colour_clips()
    enc = build_obs_encoder(ObsEncoderConfig(kind="units", units_k=5, units_pixel_size=2,
                                             out_dim=12))
    assert enc.out_dim == 12 and enc.embedding.weight.requires_grad
    enc.fit(frames, progress=False)
    enc.eval()
    feats = enc(frames[:2])
    feats.sum().backward()
    assert enc.embedding.weight.grad.abs().sum() > 0
    enc.save(tmp_path / "u")
    loaded = build_obs_encoder(ObsEncoderConfig(kind="units"), fitted_path=tmp_path / "u").eval()
    assert torch.equal(loaded(frames), enc(frames))
    assert torch.equal(loaded.centroids, enc.centroids)


@pytest.mark.slow  # pays the process's first conv-backward warm-up (~5 s on a busy CPU)
def test_vqvae_source_round_trip(tmp_path):
    frames = colour_clips(B=4, T=8)[0].repeat(1, 1, 2, 2, 1)  # 16x16
    vq = VQVAEEncoder(ObsEncoderConfig(kind="vqvae", vqvae_hidden=8, vqvae_codebook_size=4,
                                       vqvae_code_dim=3, vqvae_pool=1))
    vq.fit(frames.flatten(0, 1), steps=2, batch_size=8, progress=False)
    vq.save(tmp_path / "vq")
    cfg = ObsEncoderConfig(kind="units", units_k=3, units_source="vqvae",
                           units_vqvae_path=str(tmp_path / "vq"), units_embedding="centroid")
    enc = build_obs_encoder(cfg)
    assert enc.out_dim == 3
    enc.fit(frames, progress=False)
    enc.save(tmp_path / "u")
    (tmp_path / "vq" / "model.safetensors").unlink()  # the units checkpoint is self-contained
    loaded = UnitsEncoder.load(tmp_path / "u")
    assert torch.equal(loaded(frames), enc(frames))


def test_errors():
    with pytest.raises(ObsEncoderError, match="units.vqvae_path"):
        ObsEncoderConfig(kind="units", units_source="vqvae")
    with pytest.raises(ObsEncoderError, match="units.temperature must be >= 0"):
        ObsEncoderConfig(kind="units", units_temperature=-1)
    enc = UnitsEncoder(ObsEncoderConfig(kind="units", units_k=8))
    with pytest.raises(ObsEncoderError, match="not been fitted"):
        enc.unit_ids(torch.zeros(1, 2, 8, 8, 3, dtype=torch.uint8))
    with pytest.raises(ObsEncoderError, match="Only 4 valid frames to fit 8 units"):
        enc.fit(np.zeros((4, 8, 8, 3), np.uint8), progress=False)


def test_minibatch_path_recovers_clusters():
    frames, labels = colour_clips()
    enc = UnitsEncoder(ObsEncoderConfig(kind="units", units_k=5, units_pixel_size=2))
    enc.fit(frames, exact_below=0, kmeans_batch_size=64, progress=False)  # MiniBatchKMeans
    assert adjusted_rand_score(labels.flatten(), enc.unit_ids(frames).flatten()) == 1.0
