"""Unit tests of agents.model.losses against hand-computed values."""
import math

import pytest
import torch
import torch.nn.functional as F

from agents.model import losses as L


def test_prefix_loss_hand_value_and_per_sequence_mean():
    logits = torch.zeros(2, 3, 4)  # uniform: CE = log 4 everywhere ...
    logits[0, 2, 1] = math.log(3.0)  # ... except here: p(1) = 3 / 6 = 0.5
    targets = torch.tensor([[0, 0, 1], [2, 3, 0]])
    mask = torch.tensor([[False, True, True], [True, False, False]])
    loss, m = L.prefix_loss(logits, targets, mask)
    seq0 = (math.log(4) + math.log(2)) / 2  # per-sequence mean first
    seq1 = math.log(4)
    assert loss.item() == pytest.approx((seq0 + seq1) / 2, abs=1e-6)
    assert m["byog/positions"] == 3 and m["byog/sequences"] == 2


def test_prefix_loss_ignores_unmasked_labels_and_never_nan():
    torch.manual_seed(0)
    logits = torch.randn(3, 8, 5, requires_grad=True)
    targets = torch.randint(0, 5, (3, 8))
    mask = torch.zeros(3, 8, dtype=torch.bool)
    mask[0, 4:] = True
    mask[1, 6:] = True  # row 2: no future at all (e.g. one valid frame)
    base, _ = L.prefix_loss(logits, targets, mask)
    changed = targets.clone()
    changed[~mask] = (changed[~mask] + 1) % 5  # every unmasked label changes
    again, _ = L.prefix_loss(logits, changed, mask)
    assert again.item() == base.item()
    changed[0, 5] = (changed[0, 5] + 1) % 5  # a masked label: the loss moves
    assert L.prefix_loss(logits, changed, mask)[0].item() != base.item()
    empty, met = L.prefix_loss(logits, targets, torch.zeros_like(mask))
    assert torch.isfinite(empty) and empty.item() == 0.0 and met["byog/sequences"] == 0
    empty.backward()  # still attached to the graph
    assert logits.grad is not None and torch.all(logits.grad == 0)


def test_sample_cuts_range_determinism_and_batch_independence():
    n_valid = torch.tensor([8, 2, 1, 0, 5])
    ep = torch.tensor([3, 4, 5, 6, 7])
    st = torch.tensor([0, 10, 20, 30, 40])
    cuts = L.sample_cuts(n_valid, seed=1, episode_index=ep, start=st, step=9)
    assert cuts[2] == 0 and cuts[3] == 0  # fewer than 2 valid frames: no cut
    assert cuts[1] == 1  # [1, n-1] with n = 2
    for c, n in zip(cuts.tolist(), n_valid.tolist()):
        if n >= 2:
            assert 1 <= c <= n - 1
    perm = torch.tensor([4, 3, 2, 1, 0])
    again = L.sample_cuts(n_valid[perm], seed=1, episode_index=ep[perm], start=st[perm], step=9)
    assert torch.equal(again, cuts[perm])  # same window, same cut, wherever it sits
    many = L.sample_cuts(torch.full((200,), 8), seed=1, episode_index=torch.arange(200),
                         start=torch.zeros(200), step=0)
    assert set(many.tolist()) == set(range(1, 8))  # uniform over the whole range


def test_prefix_masks_values():
    valid = torch.tensor([[True, True, True, False], [True, True, False, False]])
    m, tgt = L.prefix_masks(torch.tensor([1, 0]), valid, k=2)
    assert m.tolist() == [[1, 1, 0, 0, 0, 0, 0, 0], [0] * 8]
    assert tgt.tolist() == [[0, 0, 1, 1, 1, 1, 0, 0], [0] * 8]  # padded frame 3 never counts


def test_parallel_windows_and_loss_match_naive_loop():
    torch.manual_seed(1)
    B, T, k, K, V = 2, 3, 2, 3, 6
    ids = torch.randint(0, V, (B, T * k))
    valid = torch.tensor([[True, True, True], [True, True, False]])
    pv = L.frame_mask(valid, k)
    idx = L.parallel_indices(valid, k, "frame")
    assert idx.tolist() == [1, 3, 5]
    inputs, targets, mask = L.parallel_windows(ids, pv, idx, K)
    logits = torch.randn(B, len(idx), K, V)
    loss, _ = L.parallel_loss(logits, targets, mask)
    total, count = 0.0, 0
    for b in range(B):
        for n, i in enumerate(idx.tolist()):
            for j in range(K):
                p = i + 1 + j
                assert inputs[b, n, j] == ids[b, min(i + j, T * k - 1)]
                if p < T * k and pv[b, p] and pv[b, i]:
                    total += F.cross_entropy(logits[b, n, j][None], ids[b, p][None]).item()
                    count += 1
    assert count == int(mask.sum()) == 7  # row 0: 3 + 2 + 0; row 1: 2 + 0 + 0 (padding)
    assert loss.item() == pytest.approx(total / count, rel=1e-6)


def test_grounding_loss_ignores_pad_and_weights_nil():
    pad, nil = 0, 2
    logits = torch.zeros(1, 4, 5)
    logits[0, 1, 3] = math.log(4.0)  # p(3) = 4 / (4 + 4); elsewhere uniform over 5
    targets = torch.tensor([[pad, 3, nil, 4]])
    loss, m = L.grounding_loss(logits, targets, pad_id=pad, nil_id=nil, nil_weight=0.5)
    expect = (math.log(2) + 0.5 * math.log(5) + math.log(5)) / 2.5
    assert loss.item() == pytest.approx(expect, rel=1e-6)
    assert m["ground/word_accuracy"] == pytest.approx(0.5)  # target 3 hit, target 4 missed


def test_soft_kl_matches_torch_and_is_zero_on_itself():
    torch.manual_seed(2)
    z, t = torch.randn(2, 3, 7), torch.randn(2, 3, 7)
    kl = L.soft_kl(z, t, tau=2.0)
    ref = F.kl_div(F.log_softmax(z, -1), F.log_softmax(t / 2.0, -1), log_target=True,
                   reduction="none").sum(-1)
    assert torch.allclose(kl, ref, atol=1e-6)
    assert torch.allclose(L.soft_kl(t, t, tau=1.0), torch.zeros(2, 3), atol=1e-6)
    banned = t.clone()
    banned[..., 0] = float("-inf")  # a banned token in the target stays finite
    assert torch.isfinite(L.soft_kl(z, banned, tau=1.0)).all()


def test_ema_update_formula():
    t = [torch.tensor([1.0, 2.0]), torch.tensor([[0.0]])]
    o = [torch.tensor([3.0, -2.0]), torch.tensor([[10.0]])]
    L.ema_update(t, o, decay=0.75)
    assert torch.allclose(t[0], torch.tensor([1.5, 1.0]))
    assert torch.allclose(t[1], torch.tensor([[2.5]]))
    with pytest.raises(ValueError, match="shape mismatch"):
        L.ema_update([torch.zeros(2)], [torch.zeros(3)], 0.5)


def test_reinforce_loss_hand_value():
    logp = torch.tensor([[-1.0, -2.0], [-0.5, -0.5]], requires_grad=True)
    mask = torch.tensor([[True, True], [True, False]])
    reward = torch.tensor([1.0, -1.0])
    loss, m = L.reinforce_loss(logp, mask, reward, baseline=0.5)
    # advantages 0.5, -1.5; sequence log-probs -3, -0.5
    assert loss.item() == pytest.approx(-(0.5 * -3.0 + -1.5 * -0.5) / 2)
    loss.backward()
    assert torch.allclose(logp.grad, torch.tensor([[-0.25, -0.25], [0.75, 0.0]]))
    assert m["reinforce/advantage"] == pytest.approx(-0.5)


# ----------------------------------------------------------------------------- per-row noise
def test_row_seed_depends_on_every_key_part_and_stream():
    base = L.row_seed(0, 3, 16, 7)
    assert base == L.row_seed(0, 3, 16, 7) and 0 <= base < 2**63
    others = {L.row_seed(1, 3, 16, 7), L.row_seed(0, 4, 16, 7), L.row_seed(0, 3, 17, 7),
              L.row_seed(0, 3, 16, 8), L.row_seed(0, 3, 16, 7, stream=0)}
    assert base not in others and len(others) == 5


def test_row_noise_rows_are_independent_of_the_batch_and_block_size():
    seeds = [L.row_seed(0, e, 0, 0) for e in range(4)]
    probs = torch.full((4, 10), 0.1)
    whole = L.RowNoise(seeds, positions=6)
    a = torch.stack([whole(probs) for _ in range(6)], 1)  # [4, 6, 10]
    # one row alone, drawn one position per block: the same stream
    alone = L.RowNoise(seeds[2:3], positions=6, max_block_elems=10)
    b = torch.stack([alone(probs[:1]) for _ in range(6)], 1)
    assert torch.equal(a[2], b[0])
    assert (a > 0).all() and not torch.equal(a[0], a[1])
    # each row is Exp(1): mean ~ 1 over many draws
    many = L.RowNoise(seeds[:1], positions=2000)(torch.full((1, 1000), 1e-3))
    assert abs(float(many.mean()) - 1.0) < 0.1
    with pytest.raises(ValueError, match="built for 4 rows"):
        whole(probs[:2])


def test_history_dropout_silences_input_slots_and_their_inner_targets():
    ids = torch.arange(2 * 5 * 3).view(2, 5, 3) + 10  # [B, T, k], all words
    valid = torch.ones(2, 5, dtype=torch.bool)
    valid[1, 3:] = False
    seeds = [L.row_seed(0, e, 0, 0, stream=2) for e in range(2)]
    inp, tgt = L.history_dropout(ids, valid, rate=0.5, seeds=seeds, nil_id=2, pad_id=0)
    drop = (inp == 2).all(-1)  # [B, T] silenced frames
    assert drop.any() and not drop.all() and not drop[1, 3:].any()  # padded frames never chosen
    assert torch.equal(inp[~drop], ids[~drop])
    assert torch.equal(tgt[..., 0], ids[..., 0])  # slot position 0 keeps its target
    assert torch.all(tgt[drop][:, 1:] == 0) and torch.equal(tgt[~drop], ids[~drop])
    again = L.history_dropout(ids[:1], valid[:1], rate=0.5, seeds=seeds[:1], nil_id=2, pad_id=0)
    assert torch.equal(again[0], inp[:1])  # per-row draws: the same alone as in the batch
    same = L.history_dropout(ids, valid, rate=0.0, seeds=seeds, nil_id=2, pad_id=0)
    assert same[0] is ids and same[1] is ids
