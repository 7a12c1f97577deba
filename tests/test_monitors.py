"""Every monitor against hand-computed values."""
from __future__ import annotations

import math

import pytest
import torch

from agents.model.monitors import (
    bucketed,
    collapse_monitors,
    combine_prf,
    distinct_n,
    event_prf,
    grounding_monitors,
    majority_token_accuracy,
    nil_rate,
    prefix_gain,
    slot_counts,
    token_accuracy,
    token_entropy,
    unigram_nll,
)
from agents.model.text import SlotConfig, SpecialIds, slot_annotations, train_tokenizer, unslot
from byog_env.events import Event, parse_event

SP = SpecialIds(pad=0, bos=1, nil=2, sep=3, unk=4)


# --------------------------------------------------------------------------- token monitors


def test_token_entropy_hand_values():
    uniform = torch.zeros(3)
    skewed = torch.tensor([0.5, 0.25, 0.25]).log()
    logits = torch.stack([uniform, skewed])  # [2, 3]
    h_uniform, h_skewed = math.log(3), 1.5 * math.log(2)
    assert token_entropy(logits) == pytest.approx((h_uniform + h_skewed) / 2, abs=1e-6)
    assert token_entropy(logits, torch.tensor([True, False])) == pytest.approx(h_uniform, abs=1e-6)
    # Top-k style -inf logits: zero-probability words add nothing, and nothing turns NaN.
    masked = torch.tensor([[0.0, 0.0, -math.inf, -math.inf]])
    assert token_entropy(masked) == pytest.approx(math.log(2), abs=1e-6)
    # Batched [B, T, V] with a [B, T] mask; an empty mask is nan, not a made-up number.
    big = torch.zeros(2, 4, 5)
    assert token_entropy(big, torch.ones(2, 4, dtype=torch.bool)) == pytest.approx(math.log(5))
    assert math.isnan(token_entropy(big, torch.zeros(2, 4, dtype=torch.bool)))
    with pytest.raises(ValueError, match="mask has shape"):
        token_entropy(big, torch.ones(2, 5, dtype=torch.bool))


def test_distinct_n_hand_values():
    ids = torch.tensor([[5, 6, 5, 2, 5, 6], [7, 7, 2, 2, 2, 2]])
    # Runs (2 ignored): [5 6 5] [5 6] | [7 7]. Unigrams 7, distinct {5,6,7}. Bigrams
    # (5,6) (6,5) (5,6) (7,7): 4, distinct 3.
    assert distinct_n(ids, 1, ignore_ids=[2]) == pytest.approx(3 / 7)
    assert distinct_n(ids, 2, ignore_ids=[2]) == pytest.approx(3 / 4)
    row0 = torch.tensor([[True] * 6, [False] * 6])
    assert distinct_n(ids, 1, [2], row0) == pytest.approx(2 / 5)
    assert distinct_n(ids, 2, [2], row0) == pytest.approx(2 / 3)
    # A masked-out position breaks a run just like an ignored id: (5,6) and (5,6) remain.
    gap = torch.tensor([[True, True, False, True, True, True], [False] * 6])
    assert distinct_n(ids, 2, [2], gap) == pytest.approx(1 / 2)
    # Collapse: one word repeated.
    assert distinct_n(torch.full((2, 8), 9), 1) == pytest.approx(1 / 16)
    assert distinct_n(torch.full((1, 4), 2), 1, [2]) == 0.0  # all ignored (silence): 0, not NaN
    assert math.isnan(distinct_n(torch.full((1, 4), 2), 1, [2], torch.zeros(1, 4, dtype=torch.bool)))
    with pytest.raises(ValueError, match="n >= 1"):
        distinct_n(ids, 0)


def test_nil_rate_hand_values():
    ids = torch.tensor([[2, 2, 5, 0]])
    assert nil_rate(ids, 2) == pytest.approx(2 / 4)
    assert nil_rate(ids, 2, torch.tensor([[True, True, True, False]])) == pytest.approx(2 / 3)


def test_unigram_nll_hand_values():
    targets = torch.tensor([1, 1, 2])
    # Laplace: counts [0, 2, 1, 0] -> p = [1, 3, 2, 1] / 7.
    want = -(2 * math.log(3 / 7) + math.log(2 / 7)) / 3
    assert unigram_nll(targets, None, vocab_size=4) == pytest.approx(want)
    # No smoothing: the entropy of the empirical distribution (2/3, 1/3).
    want = -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3))
    assert unigram_nll(targets, None, 4, smoothing=0.0) == pytest.approx(want)
    # Given counts (e.g. training targets), masked positions left out.
    mask = torch.tensor([True, True, False])
    counts = torch.tensor([1.0, 1.0, 1.0, 1.0])
    assert unigram_nll(targets, mask, 4, counts=counts, smoothing=0.0) == pytest.approx(math.log(4))
    with pytest.raises(ValueError, match="zero probability"):
        unigram_nll(torch.tensor([3]), None, 4, counts=torch.tensor([1.0, 0, 0, 0]), smoothing=0)
    with pytest.raises(ValueError, match="outside"):
        unigram_nll(torch.tensor([4]), None, 4)
    assert math.isnan(unigram_nll(targets, torch.zeros(3, dtype=torch.bool), 4))


def test_prefix_gain():
    assert prefix_gain(2.5, 1.75) == pytest.approx(0.75)
    assert prefix_gain(torch.tensor(1.0), torch.tensor(1.5)) == pytest.approx(-0.5)


def test_token_accuracy_and_majority_baseline():
    target = torch.tensor([[3, 2, 4, 2, 0]])
    pred = torch.tensor([[3, 2, 5, 7, 1]])
    # Only targets 3 and 4 count (nil=2, pad=0 ignored): one of two right.
    assert token_accuracy(pred, target, ignore_ids=(2, 0)) == pytest.approx(0.5)
    assert token_accuracy(pred, target, (2, 0), torch.tensor([[True, True, False, True, True]])) == 1.0
    assert math.isnan(token_accuracy(pred, torch.full_like(target, 2), (2, 0)))
    with pytest.raises(ValueError, match="differ in shape"):
        token_accuracy(pred[:, :3], target, (2,))
    target = torch.tensor([[4, 4, 5, 2, 0, 4, 6]])
    assert majority_token_accuracy(target, (2, 0)) == pytest.approx(3 / 5)
    assert token_accuracy(torch.full_like(target, 4), target, (2, 0)) == pytest.approx(3 / 5)


def test_collapse_monitors_keys_and_values():
    ids = torch.tensor([[[5, 6, 2, 2], [5, 2, 2, 2]], [[0, 0, 0, 0], [0, 0, 0, 0]]])  # [B=2,T=2,k=4]
    valid = torch.tensor([[True, True], [False, False]]).unsqueeze(-1).expand(2, 2, 4)
    logits = torch.zeros(2, 2, 4, 10)
    m = collapse_monitors(ids, SP, logits=logits, mask=valid)
    assert set(m) == {
        "narration/distinct_1",
        "narration/distinct_2",
        "narration/nil_rate",
        "narration/entropy",
    }
    assert m["narration/distinct_1"] == pytest.approx(2 / 3)  # 5 6 | 5
    assert m["narration/distinct_2"] == pytest.approx(1.0)  # (5,6)
    assert m["narration/nil_rate"] == pytest.approx(5 / 8)
    assert m["narration/entropy"] == pytest.approx(math.log(10))


def test_slot_counts_from_slotted():
    tok = train_tokenizer(["a b c d e"])
    s = slot_annotations([[["a b c d e"], []], [["a b"], []]], torch.ones(2, 2, dtype=torch.bool),
                         tok, SlotConfig(tokens_per_frame=2, max_carry=1))
    # Window 0: 2 tokens at frame 0, 2 carried into frame 1, 1 cut at the window end.
    assert s.carried.tolist() == [2, 0] and s.cut.tolist() == [1, 0]
    assert slot_counts(s) == {
        "text/cut_tokens": 1.0,
        "text/carried_tokens": 2.0,
        "text/cut_per_window": 0.5,
        "text/carried_per_window": 1.0,
    }


# --------------------------------------------------------------------------- events


def frames(T: int, **at: list[str]) -> list[list[str]]:
    out: list[list[str]] = [[] for _ in range(T)]
    for key, sentences in at.items():
        out[int(key[1:])] = sentences
    return out


def test_event_prf_tolerance_within_and_just_outside():
    true = frames(16, f3=["collected 1 wood"], f10=["zombie in view"])
    pred = frames(16, f0=["gibberish words"], f5=["collected 1 wood"], f13=["zombie in view"])
    # tol 2: wood matches (|5-3| = 2, within); zombie is 3 frames late (just outside): fp + fn;
    # the unparseable sentence is a false positive.
    r = event_prf(pred, true, tolerance=2)
    assert (r["tp"], r["fp"], r["fn"]) == (1, 2, 1)
    assert r["precision"] == pytest.approx(1 / 3) and r["recall"] == pytest.approx(1 / 2)
    assert r["f1"] == pytest.approx(0.4)
    assert r["unparsed_pred"] == 1 and r["unparsed_true"] == 0
    r = event_prf(pred, true, tolerance=3)
    assert (r["tp"], r["fp"], r["fn"]) == (2, 1, 0)
    assert r["f1"] == pytest.approx(2 * (2 / 3) / (2 / 3 + 1))
    r = event_prf(pred, true, tolerance=1)
    assert (r["tp"], r["fp"], r["fn"]) == (0, 3, 2) and r["f1"] == 0.0


def test_event_prf_one_to_one_and_args_must_match():
    # Two true "collected 1 wood" and one prediction between them: one match, one miss.
    true = frames(8, f2=["collected 1 wood"], f4=["collected 1 wood"])
    pred = frames(8, f3=["collected 1 wood", "collected 2 wood"])
    r = event_prf(pred, true, tolerance=2)
    assert (r["tp"], r["fp"], r["fn"]) == (1, 1, 1)  # "collected 2 wood" has other args
    # Greedy pairing must still find the maximum: true at 0 and 4, predictions at 2 and 3.
    true = frames(8, f0=["cow in view"], f4=["cow in view"])
    pred = frames(8, f2=["cow in view"], f3=["cow in view"])
    assert event_prf(pred, true, 2)["tp"] == 2
    # Silence on a window without events is perfect; silence on events is recall 0.
    assert event_prf(frames(4), frames(4), 2)["f1"] == 1.0
    r = event_prf(frames(4), frames(4, f1=["cow in view"]), 2)
    assert (r["precision"], r["recall"], r["f1"], r["fn"]) == (1.0, 0.0, 0.0, 1)


def test_event_prf_errors_and_unparsed_truth():
    r = event_prf(frames(3), frames(3, f0=["not a template"]), 2)
    assert r["unparsed_true"] == 1 and r["fn"] == 1
    with pytest.raises(ValueError, match="same window"):
        event_prf(frames(3), frames(4), 2)
    with pytest.raises(ValueError, match="tolerance"):
        event_prf(frames(3), frames(3), -1)


def test_combine_prf_sums_counts():
    a = event_prf(frames(4, f0=["cow in view"]), frames(4, f0=["cow in view"]), 2)
    b = event_prf(frames(4, f0=["x"]), frames(4, f1=["cow in view"]), 2)
    c = combine_prf([a, b])
    assert (c["tp"], c["fp"], c["fn"]) == (1, 1, 1)
    assert c["precision"] == 0.5 and c["recall"] == 0.5 and c["f1"] == 0.5
    assert c["unparsed_pred"] == 1


def test_grounding_monitors_on_slots():
    tok = train_tokenizer(["collected 1 wood", "cow in view", "zombie in view"])
    ann = [[["collected 1 wood"], [], ["cow in view"], [], []]]
    valid = torch.tensor([[True, True, True, True, False]])
    target = slot_annotations(ann, valid, tok, SlotConfig(tokens_per_frame=4, max_carry=0)).ids
    pred = target.clone()
    cow, zombie = tok.convert_tokens_to_ids(["▁cow", "▁zombie"])
    assert pred[0, 2, 0] == cow
    pred[0, 2, 0] = zombie  # "zombie in view" narrated instead of "cow in view"
    pred[0, 4] = cow  # junk on the padded frame must not count
    m = grounding_monitors(pred, target, ann, valid, tok, tolerance=1)
    assert m["grounding/token_accuracy"] == pytest.approx(5 / 6)  # 6 annotation words
    assert m["grounding/majority_accuracy"] == pytest.approx(1 / 6)
    # Events: wood matched, zombie a false positive, cow missed.
    assert m["grounding/event_precision"] == 0.5 and m["grounding/event_recall"] == 0.5
    assert m["grounding/event_f1"] == 0.5 and m["grounding/event_unparsed"] == 0.0
    perfect = grounding_monitors(target, target, ann, valid, tok)
    assert perfect["grounding/token_accuracy"] == 1.0 and perfect["grounding/event_f1"] == 1.0


def test_annotations_survive_slotting_and_score_perfectly():
    """Real annotation sentences -> tokenizer -> slots -> unslot -> events: nothing lost."""
    events = [
        Event("collect", {"count": 1, "item": "wood"}),
        Event("see", {"thing": "zombie"}),
        Event("make", {"item": "wood pickaxe"}),
        Event("vital", {"stat": "health", "change": "dropped"}),
        Event("mission", {"text": "go to the red ball"}),
        Event("door", {"action": "opened", "color": "red"}),
    ]
    texts = [e.sentence() for e in events]
    assert [parse_event(t) for t in texts] == events
    tok = train_tokenizer(texts)
    ann = [[texts[:2], [], [texts[2]], texts[3:], [], [], []]]
    valid = torch.ones(1, 7, dtype=torch.bool)
    # Large slots: exact round trip. Small slots: carried sentences arrive late but within the
    # tolerance, and the events still all match.
    s = slot_annotations(ann, valid, tok, SlotConfig(tokens_per_frame=16, max_carry=0))
    assert s.cut.item() == 0 and unslot(s.ids, tok) == ann
    assert event_prf(unslot(s.ids[0], tok), ann[0], tolerance=0)["f1"] == 1.0
    s = slot_annotations(ann, valid, tok, SlotConfig(tokens_per_frame=4, max_carry=3))
    assert s.cut.item() == 0 and s.carried.item() > 0
    r = event_prf(unslot(s.ids[0], tok), ann[0], tolerance=2)
    assert (r["tp"], r["fp"], r["fn"]) == (6, 0, 0)
    assert event_prf(unslot(s.ids[0], tok), ann[0], tolerance=0)["tp"] < 6


# --------------------------------------------------------------------------- over time


def test_bucketed_over_a_long_episode():
    assert bucketed(lambda xs: sum(xs) / len(xs), [1, 1, 0, 0, 0], bucket=2) == [1.0, 0.0, 0.0]
    # Narration of 6 steps, k=2: the first bucket talks, the last says only <nil>.
    ids = torch.tensor([[5, 6], [7, 2], [5, 2], [2, 2], [2, 2], [2, 2]])
    rates = bucketed(lambda x: nil_rate(x, 2), ids, bucket=3)
    assert rates == [pytest.approx(2 / 6), pytest.approx(1.0)]
    # Two aligned sequences (narration and annotations) per bucket.
    pred = frames(6, f0=["cow in view"], f4=["cow in view"])
    true = frames(6, f0=["cow in view"], f5=["cow in view"])
    f1s = bucketed(lambda p, t: event_prf(p, t, 0)["f1"], pred, true, bucket=3)
    assert f1s == [1.0, 0.0]
    with pytest.raises(ValueError, match="differ in length"):
        bucketed(lambda a, b: 0, [1, 2], [1], bucket=1)
    with pytest.raises(ValueError, match="bucket must be"):
        bucketed(len, [1], bucket=0)


def test_narration_metrics_is_the_one_place_evaluate_and_validation_score_narration():
    """Per batch (evaluate) and pooled (validation) narration metrics come from one function:
    pooled over two batches equals one call on their concatenation, and evaluate's figures
    equal narration_metrics on the ids it returns."""
    from agents.config import make_model_config
    from agents.model.agent import BYOGAgent
    from agents.model.monitors import narration_metrics
    from agents.model.text import slot_annotations, train_tokenizer
    from agents.training.evaluate import validate

    tok = train_tokenizer(["collected 1 wood", "tree in view"])
    torch.manual_seed(0)
    agent = BYOGAgent(make_model_config("tiny", "captioner", text={"tokens_per_frame": 4}), tok)

    def batch(seed):
        g = torch.Generator().manual_seed(seed)
        ann = [[["collected 1 wood"] if (t + b) % 3 == 0 else [] for t in range(5)] for b in range(2)]
        return {"frames": torch.randint(0, 256, (2, 5, 16, 16, 3), generator=g, dtype=torch.uint8),
                "valid": torch.ones(2, 5, dtype=torch.bool), "annotations": ann,
                "episode_index": torch.arange(2), "start": torch.zeros(2, dtype=torch.long)}

    b1, b2 = batch(1), batch(2)
    ev = agent.evaluate(b1)
    truth = slot_annotations(b1["annotations"], b1["valid"], tok, agent.cfg.text).ids
    direct = narration_metrics(ev.ids, tok, b1["valid"], truth=truth, annotations=b1["annotations"])
    for key in ("token_accuracy", "majority_token_accuracy", "event_f1", "nil_rate", "distinct_1"):
        assert ev[f"eval/{key}"] == pytest.approx(direct[key], nan_ok=True)
    val, _ = validate(agent, [b1, b2], step=0)
    both = narration_metrics(torch.cat([ev.ids, agent.evaluate(b2).ids]), tok,
                             torch.ones(4, 5, dtype=torch.bool),
                             truth=torch.cat([truth, slot_annotations(b2["annotations"], b2["valid"], tok,
                                                                      agent.cfg.text).ids]),
                             annotations=b1["annotations"] + b2["annotations"])
    for key in ("token_accuracy", "majority_token_accuracy", "event_precision", "event_recall"):
        assert val[f"val/{key}"] == pytest.approx(both[key], nan_ok=True)
