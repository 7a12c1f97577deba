"""BC heads that converge: the head starts at the action prior, stops on its BC-validation NLL
and says when it reached its cap still improving; the convex check (logistic regression, C tuned
on BC-validation) beside it."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from experiments.action_transfer import Blocks, train_head
from experiments.features import ConstantFeaturizer, Featurizer
from experiments.heads import ActionHead, convex_metrics, fit_convex_head, prior_logits

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class _Given(Featurizer):
    """Features stored in the frames' first pixel channel (a known signal per step)."""

    episode_level = True

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.out_dim, self.context = dim, 16

    def sequence(self, frames, valid=None, *, annotations=None, infos=None):
        return frames[..., 0, : self.out_dim, 0].float() / 255.0  # [B, T, D]


def blocks(n: int, seed: int, noise: float = 0.0) -> Blocks:
    """Action = argmax of 4 given features (plus label noise): learnable, not instantly."""
    g = torch.Generator().manual_seed(seed)
    L = 12
    x = torch.randint(0, 255, (n, L, 4), generator=g)
    acts = x.argmax(-1)
    flip = torch.rand(n, L, generator=g) < noise
    acts = torch.where(flip, torch.randint(0, 4, (n, L), generator=g), acts)
    frames = torch.zeros(n, L, 1, 4, 3, dtype=torch.uint8)
    frames[..., 0, :, 0] = x.to(torch.uint8)
    return Blocks(frames, acts, torch.ones(n, L, dtype=torch.bool), None, ids=list(range(n)))


def test_prior_logits_are_the_smoothed_log_frequencies():
    acts = torch.tensor([[0, 0, 1, -1], [0, 2, -1, -1]])  # counts 3, 1, 1, 0 (+1 each) over 9
    torch.testing.assert_close(prior_logits(acts, 4), torch.tensor([4 / 9, 2 / 9, 2 / 9, 1 / 9]).log())


def test_a_head_cut_short_is_at_cap_improving_and_one_given_room_stops_on_its_own():
    feat = _Given(4)
    train, val = blocks(32, 0), blocks(8, 1)

    def run(steps: int) -> dict:
        torch.manual_seed(0)
        head = ActionHead(in_dim=4, num_actions=4, hidden=16)
        return train_head(feat, head, train, steps=steps, batch_size=8, lr=3e-3, train_encoder=False, seed=0,
                          progress=False, val=val, eval_every=5, patience=3, min_delta=1e-3)

    short, long = run(10), run(3000)
    assert short["train/steps_run"] == 10 and short["train/at_cap_improving"] == 1.0
    assert long["train/steps_run"] < 3000 and long["train/at_cap_improving"] == 0.0


def test_a_head_that_stopped_improving_before_its_cap_is_not_counted():
    """A constant featurizer on a prior-initialised head has nothing to learn: its NLL stops
    improving (by min_delta) at once, so even a run to the cap is not 'still improving'."""
    train, val = blocks(16, 0), blocks(8, 1)
    torch.manual_seed(0)
    head = ActionHead(in_dim=1, num_actions=4, hidden=8)
    with torch.no_grad():
        head.out.bias.copy_(prior_logits(train.actions, 4))
    res = train_head(ConstantFeaturizer(), head, train, steps=20, batch_size=8, lr=1e-4, train_encoder=False, seed=0,
                     progress=False, val=val, eval_every=5, patience=10, min_delta=0.05)
    assert res["train/steps_run"] == 20 and res["train/at_cap_improving"] == 0.0


def test_convex_head_learns_a_linear_task_with_c_tuned_on_validation_and_reads_the_mission():
    rng = np.random.default_rng(0)

    def split(m: int) -> tuple:
        x = rng.normal(size=(m, 3))
        missions = list(rng.choice(["go left", "go right"], size=m))
        # the action depends on the features *and* the mission (unseen in the features)
        y = (x[:, 0] > 0).astype(int) + 2 * np.array([s == "go right" for s in missions])
        return x, y, missions

    head = fit_convex_head(split(400), split(100), num_actions=5, Cs=(1e-4, 1.0))
    assert head.C == 1.0 and head.missions == ["go left", "go right"]
    m = convex_metrics(head, *split(200))
    assert m["acc"] > 0.9 and m["nll"] < 0.5
    without = fit_convex_head(split(400)[:2] + (None,), split(100)[:2] + (None,), num_actions=5)
    assert convex_metrics(without, *split(200)[:2], None)["acc"] < 0.7  # the mission was needed


def test_blocks_rows_keep_each_steps_mission():
    b = blocks(2, 0)
    b.valid[1, 5:] = False
    b.missions = ["a", "b"]
    x, y, missions = b.rows(torch.arange(2 * 12 * 3, dtype=torch.float).view(2, 12, 3))
    assert x.shape == (17, 3) and y.shape == (17,) and missions == ["a"] * 12 + ["b"] * 5
