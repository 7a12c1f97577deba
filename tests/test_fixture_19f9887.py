"""A checkpoint and dataset written by main at 19f9887 (before the restructuring of issue 23),
committed under tests/fixtures/19f9887/ (``make.sh`` wrote them with that code) with what main
narrated from them just before the restructuring (``narration_a3b71da.json``, ``narrate.sh``):
today's code loads them and narrates token for token the same, offline and live (past the
8-frame window, so the context slides).

19f9887's own narration (``narration_19f9887.json``) differs on purpose: issue 25 (3b81f93)
ends a sentence in the first slot past its carry bound (the ``max_carry`` cut), so from that
slot on the narration follows another context; the test checks that the first difference is
exactly such a cut."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "19f9887"


@pytest.fixture(scope="module")
def agent():
    from agents.training import load_agent

    return load_agent(FIXTURE / "run")


def test_the_old_checkpoint_narrates_token_for_token_the_same(agent):
    from collect.dataset import open_dataset

    want = json.loads((FIXTURE / "narration_a3b71da.json").read_text())
    ds = open_dataset(FIXTURE / "data")
    assert ds.num_episodes == len(want) == 2
    assert agent.cfg.window == 8  # the loader's window of an old checkpoint, mapped
    for i in range(ds.num_episodes):
        frames = torch.as_tensor(ds.episode(i).frames)
        with torch.no_grad():
            assert agent.narrate(frames[None, :16], greedy=True)[0].tolist() == want[str(i)]["offline"]
        state, live = agent.start(1), []
        for t in range(len(frames)):
            ids, state = agent.narrate_step(state, frames[t][None], greedy=True)
            live.append(ids[0].tolist())
        assert live == want[str(i)]["live"]
    # the fixture is not trivially constant: it would catch a change of the narration
    flat = [tok for ep in want.values() for row in ep["live"] for tok in row]
    assert len(set(flat)) > 2


def test_the_narration_of_19f9887_differs_only_from_the_carry_cut_on(agent):
    old = json.loads((FIXTURE / "narration_19f9887.json").read_text())
    new = json.loads((FIXTURE / "narration_a3b71da.json").read_text())
    nil = agent.special.nil
    for ep in old:
        for kind in ("offline", "live"):
            diff = [t for t, (a, b) in enumerate(zip(old[ep][kind], new[ep][kind])) if a != b]
            first = diff[0]
            assert new[ep][kind][first] == [nil] * len(new[ep][kind][first])  # the cut slot
            assert old[ep][kind][:first] == new[ep][kind][:first]
