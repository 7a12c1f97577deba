"""Overfit-the-stream tests: BYOG learns a predictable synthetic stream; monitors watch collapse."""
import math

import pytest
import torch
from helpers import cycle_batch, cycle_tokenizer

from agents.config import make_model_config
from agents.model.agent import BYOGAgent


def _train(steps, **over):
    torch.manual_seed(0)
    tok = cycle_tokenizer()
    agent = BYOGAgent(make_model_config("tiny", "byog", text={"tokens_per_frame": 4}, **over), tok)
    opt = torch.optim.Adam(agent.parameters(), lr=5e-3)
    g = torch.Generator().manual_seed(0)
    history = []
    for step in range(steps):
        loss, metrics = agent.training_step(cycle_batch(B=8, T=6, size=8, g=g), step)
        opt.zero_grad()
        loss.backward()
        opt.step()
        agent.update_target()
        history.append(metrics)
    return agent, history, g


@pytest.mark.slow
def test_byog_learns_predictable_stream():
    torch.set_num_threads(1)
    agent, history, g = _train(120, loss={"target_ema": 0.9})
    ev = agent.evaluate(cycle_batch(B=48, T=6, size=8, g=g, pad_first=2))
    assert ev["eval/predictor_nll"] < 0.25 * ev["eval/unigram_nll"]  # well below the baseline
    assert ev["eval/prefix_gain"] > 0.02  # the predictor uses the prefix states
    assert ev["eval/token_accuracy"] > 0.9 > ev["eval/majority_token_accuracy"]
    assert ev["eval/event_f1"] > 0.9
    assert history[-1]["loss/total"] < 0.2 * history[0]["loss/total"]


@pytest.mark.slow
def test_monitors_report_without_grounding():
    torch.set_num_threads(1)
    agent, history, g = _train(25, loss={"w_ground": 0.0, "target_ema": 0.0})
    first, last = history[0], history[-1]
    assert "loss/ground" not in last and last["loss/byog"] < first["loss/byog"]
    for m in (first, last):
        for key in ("monitor/entropy", "monitor/distinct_1", "monitor/distinct_2", "monitor/nil_rate",
                    "monitor/unigram_nll", "monitor/prefix_gain"):
            assert math.isfinite(m[key]), key
        assert 0.0 <= m["monitor/nil_rate"] <= 1.0 and 0.0 <= m["monitor/distinct_1"] <= 1.0
    # an untrained encoder samples near-uniformly; without labels BYOG alone drives the
    # sampled words towards predictable (low-entropy) narration — the monitors must see it
    assert first["monitor/entropy"] > math.log(len(agent.tokenizer)) - 0.5
    assert last["monitor/entropy"] < first["monitor/entropy"]
    ev = agent.evaluate(cycle_batch(B=8, T=6, size=8, g=g))
    assert 0.0 <= ev["eval/nil_rate"] <= 1.0 and ev["eval/token_accuracy"] < 0.9
