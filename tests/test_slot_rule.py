"""The slot format narration keeps (agents.model.slot_rule): the carry cut and the slot early exit.

Unit tests of the rule on hand-written token streams, then live narration of a recorded Crafter
episode by a narrator trained on it (so its slots end in ``<nil>`` as a trained narrator's do):
the live slots obey the invariants ``slot_annotations`` guarantees for training; the early exit
gives the same tokens as decoding every position wherever the slot is well formed, single and
vector, and reports where it is not.
"""
from dataclasses import replace

import numpy as np
import pytest
import torch

from agents.config import SlotConfig, make_model_config
from agents.model.agent import BYOGAgent
from agents.model.slot_rule import SlotRule
from agents.model.text import slot_annotations, special_ids, train_tokenizer
from agents.narrate.narrator import Narrator
from agents.narrate.vector_narration import VectorNarrator

pytestmark = pytest.mark.usefixtures("one_torch_thread")

NIL, SEP, PAD, W = 2, 3, 0, 7  # W: any word id
K = 4  # tokens per frame


def run_rule(rule, slots):
    """Apply ``rule`` to one stream's chosen tokens [[k ids] per frame] -> written tokens, track."""
    track = rule.start(1, "cpu")
    out = []
    for slot in slots:
        row = []
        for j, tok in enumerate(slot):
            row.append(int(rule.force(track, torch.tensor([tok]), j)))
        rule.end_slot(track)
        out.append(row)
    return out, track


def test_a_sentence_is_cut_in_the_first_slot_past_its_carry_bound():
    rule = SlotRule(nil=NIL, ends=(SEP, NIL, PAD), max_carry=1, early_exit=False)
    # a sentence begun in slot 0 runs on through slots 1 and 2: slot 2 is past max_carry = 1
    chosen = [[NIL, NIL, W, W], [W, W, W, W], [W, W, NIL, NIL], [W, NIL, NIL, NIL]]
    out, track = run_rule(rule, chosen)
    assert out[:2] == chosen[:2] and out[2] == [NIL, W, NIL, NIL]  # cut at slot 2's first token
    assert int(track.cut[0]) == 1
    # the word after the cut opened a new sentence in slot 2: it may run on into slot 3
    assert out[3] == chosen[3]
    # an end token the model chose itself at the bound is kept (nothing cut)
    out, track = run_rule(rule, [[W] * 4, [W] * 4, [SEP, W, NIL, NIL]])
    assert out[2] == [SEP, W, NIL, NIL] and int(track.cut[0]) == 0
    # without the cut the sentence runs on
    out, _ = run_rule(replace(rule, max_carry=None), chosen)
    assert out == chosen


def test_early_exit_writes_nil_after_a_slots_first_nil_and_counts_ill_formed_slots():
    rule = SlotRule(nil=NIL, ends=(SEP, NIL, PAD), max_carry=None, early_exit=True)
    chosen = [[W, NIL, NIL, NIL], [W, NIL, W, NIL], [NIL, NIL, NIL, NIL]]
    out, track = run_rule(rule, chosen)
    assert out == [[W, NIL, NIL, NIL], [W, NIL, NIL, NIL], [NIL, NIL, NIL, NIL]]
    assert int(track.ill_formed[0]) == 1  # slot 1 had a word after its <nil>


def test_bad_rules_are_refused():
    with pytest.raises(ValueError, match="must hold <nil>"):
        SlotRule(nil=NIL, ends=(SEP,))
    with pytest.raises(ValueError, match="max_carry"):
        SlotRule(nil=NIL, ends=(NIL,), max_carry=-1)
    for share in (0.0, 1.5):
        with pytest.raises(ValueError, match="word_share"):
            SlotRule(nil=NIL, ends=(NIL,), word_share=share)
        with pytest.raises(ValueError, match="sentence_share"):
            SlotRule(nil=NIL, ends=(NIL,), sentence_share=share)


def logits_of(probs):
    """Logits [1, V] (V = 10) with these probabilities ({id: p}, the rest equal)."""
    p = torch.full((10,), (1.0 - sum(probs.values())) / (10 - len(probs)))
    for i, v in probs.items():
        p[i] = v
    return p.log()[None]


def test_the_word_gate_says_nil_instead_of_guessing_which_thing():
    W2 = 8
    split = logits_of({NIL: 0.1, W: 0.42, W2: 0.42})  # something happened, but which thing?
    sure = logits_of({NIL: 0.1, W: 0.85, W2: 0.02})
    rule = SlotRule(nil=NIL, ends=(SEP, NIL, PAD), max_carry=None, early_exit=False, word_share=0.6)
    track = rule.start(1, "cpu")
    w = torch.tensor([W])
    assert int(rule.force(track, w, 0, split)) == NIL and int(track.gated[0]) == 1
    assert int(rule.force(track, w, 1, sure)) == W  # a sure first word is said
    assert int(rule.force(track, w, 2, split)) == W  # inside a sentence nothing is gated
    assert int(rule.force(track, w, 3, split)) == W
    rule.end_slot(track)
    assert int(rule.force(track, w, 0, split)) == W  # the sentence carried into this slot goes on
    assert int(rule.force(track, torch.tensor([SEP]), 1, split)) == SEP  # an end token: never
    assert int(track.gated[0]) == 1
    assert int(rule.force(track, w, 2, split)) == NIL  # after <sep> a sentence begins: gated
    # the share is of the words' probability, not of everything: a likely <nil> does not gate
    assert int(rule.force(track, w, 3, logits_of({NIL: 0.9, W: 0.09}))) == W
    assert int(track.gated[0]) == 2
    # without the gate (or without logits) the guess is said
    off = replace(rule, word_share=None)
    assert int(off.force(off.start(1, "cpu"), w, 0, split)) == W
    assert int(rule.force(rule.start(1, "cpu"), w, 0)) == W
    # the early exit's filled positions follow the slot's <nil>: a split word there would have
    # been gated, so the slot is well formed; a sure one would not, so it is ill-formed
    ex = replace(rule, early_exit=True)
    for probs, ill, gated in ((split, 0, 1), (sure, 1, 0)):
        track = ex.start(1, "cpu")
        assert int(ex.force(track, torch.tensor([NIL]), 0, sure)) == NIL
        ex.end_slot(track, torch.tensor([[W]]), probs[:, None])
        assert (int(track.ill_formed[0]), int(track.gated[0])) == (ill, gated)


def test_the_sentence_gate_takes_back_a_sentence_whole():
    """Rule 4: a sentence with an unsure word in the slot it began in is left unsaid whole (its
    first word was sure, its second split: "facing stone" vs "facing water"), and so is its
    continuation in the next slot; sure sentences and the tokens decoded are untouched."""
    W2 = 8
    split = logits_of({NIL: 0.1, W: 0.42, W2: 0.42})
    sure = logits_of({NIL: 0.1, W: 0.85, W2: 0.02})
    end = logits_of({NIL: 0.9, SEP: 0.05})
    rule = SlotRule(nil=NIL, ends=(SEP, NIL, PAD), max_carry=None, early_exit=False,
                    sentence_share=0.6)
    track = rule.start(1, "cpu")
    # slot 0: [sure W, split W2] <sep> [sure W ... runs on into slot 1]
    ids = torch.tensor([[W, W2, SEP, W]])
    said = rule.say(track, ids, torch.cat([sure, split, end, sure])[None])
    assert said.tolist() == [[NIL, NIL, SEP, W]] and ids.tolist() == [[W, W2, SEP, W]]
    assert int(track.hushed[0]) == 1
    # slot 1: the sure sentence goes on; then a sentence whose second word is split, carried on
    said = rule.say(track, torch.tensor([[W, SEP, W, W2]]), torch.cat([split, end, sure, split])[None])
    assert said.tolist() == [[W, SEP, NIL, NIL]]  # a carried word is not judged again
    # slot 2: the unsaid sentence's continuation stays unsaid, what follows it is said
    said = rule.say(track, torch.tensor([[W, SEP, W, NIL]]), torch.cat([sure, end, sure, end])[None])
    assert said.tolist() == [[NIL, SEP, W, NIL]] and int(track.hushed[0]) == 2
    # a new stream (an env reset) has no sentence open
    track.reset_rows(torch.tensor([True]))
    said = rule.say(track, torch.tensor([[W, NIL, NIL, NIL]]), torch.cat([sure, end, end, end])[None])
    assert said.tolist() == [[W, NIL, NIL, NIL]]
    # off: the slot as decoded
    off = replace(rule, sentence_share=None)
    assert torch.equal(off.say(off.start(1, "cpu"), ids, torch.cat([sure, split, end, sure])[None]), ids)


# --------------------------------------------------------------------------- recorded episodes


@pytest.fixture(scope="module")
def recorded():
    """Two recorded Crafter episodes (frames uint8 [T, 64, 64, 3], per-frame annotations) played
    by the scripted policy."""
    from collect.policies import play_episode

    return [play_episode("crafter", "crafter-scripted", seed=seed, max_steps=60) for seed in (0, 1)]


@pytest.fixture(scope="module")
def trained(recorded):
    """A tiny captioner trained for a few seconds on windows of the recorded episodes: its
    slots hold words and end in <nil>, as a trained narrator's do."""
    tok = train_tokenizer([s for _, ann in recorded for fr in ann for s in fr])
    torch.manual_seed(0)
    cfg = make_model_config("tiny", "captioner", text={"tokens_per_frame": K, "max_carry": 1})
    agent = BYOGAgent(cfg, tok)
    opt = torch.optim.Adam(agent.parameters(), lr=3e-3)
    rng = np.random.default_rng(0)
    T = 8
    for step in range(60):
        batch = {"frames": [], "annotations": [], "prev_frame": []}
        for _ in range(8):
            frames, ann = recorded[int(rng.integers(2))]
            s = int(rng.integers(0, len(frames) - T))
            batch["frames"].append(torch.as_tensor(frames[s:s + T]))
            batch["prev_frame"].append(torch.as_tensor(frames[max(s - 1, 0)]))
            batch["annotations"].append(ann[s:s + T])
        batch = {"frames": torch.stack(batch["frames"]), "prev_frame": torch.stack(batch["prev_frame"]),
                 "annotations": batch["annotations"], "valid": torch.ones(8, T, dtype=torch.bool),
                 "actions": torch.zeros(8, T, dtype=torch.long), "rewards": torch.zeros(8, T),
                 "episode_index": torch.arange(8), "start": torch.zeros(8, dtype=torch.long),
                 "labelled": torch.ones(8, dtype=torch.bool)}
        loss, _ = agent.training_step(batch, step)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return agent.eval()


def narrate(agent, frames, **kw):
    """Live greedy narration of one episode: ids [T, k], per-step ill-formed flags, narrator."""
    n = Narrator(agent, window=8, keep=4, greedy=True, decode=False, **kw)
    n.reset()
    steps = [n.step(f[None]) for f in frames]
    return (torch.stack([s.ids[0] for s in steps]), torch.stack([s.ill_formed[0] for s in steps]),
            torch.stack([s.hidden[0] for s in steps]), n)


def sentence_spans(ids, sp):
    """(first slot, last slot) of every sentence in a stream of slots [T, k]."""
    ends = {sp.sep, sp.nil, sp.pad}
    spans, start, last = [], None, None
    for t, slot in enumerate(ids.tolist()):
        for tok in slot:
            if tok in ends:
                if start is not None:
                    spans.append((start, last))
                start = None
            else:
                start, last = (t if start is None else start), t
    if start is not None:
        spans.append((start, last))
    return spans


def slot_format_violations(ids, sp, max_carry):
    """(sentences spanning more than max_carry + 1 slots, slots with a word after a <nil>)."""
    long_ = sum(b - a > max_carry for a, b in sentence_spans(ids, sp))
    after_nil = 0
    for slot in ids.tolist():
        if sp.nil in slot:
            after_nil += any(t != sp.nil for t in slot[slot.index(sp.nil):])
    return long_, after_nil


@pytest.mark.parametrize("agent_kind", ["trained", "untrained"])
def test_live_slots_obey_the_invariants_of_the_training_targets(recorded, trained, agent_kind):
    """What ``slot_annotations`` guarantees for training (checked on the targets too), live;
    and without the rule the same narrator breaks it (so the check can fail)."""
    agent = trained
    if agent_kind == "untrained":  # runs its sentences on without end: the cut must act
        torch.manual_seed(1)
        agent = BYOGAgent(trained.cfg, trained.tokenizer).eval()
    sp = special_ids(agent.tokenizer)
    mc = agent.cfg.text.max_carry
    broken = [0, 0]
    for frames, ann in recorded:
        target = slot_annotations([ann], torch.ones(1, len(ann), dtype=torch.bool), agent.tokenizer,
                                  SlotConfig(tokens_per_frame=K, max_carry=mc)).ids[0]
        assert slot_format_violations(target, sp, mc) == (0, 0)
        ids, _, _, n = narrate(agent, frames)
        assert n.reencodes > 0  # the window slid: the rule's state crossed re-encodes
        assert slot_format_violations(ids, sp, mc) == (0, 0)
        free, _, _, _ = narrate(agent, frames, cut=False, early_exit=False)
        broken = [a + b for a, b in zip(broken, slot_format_violations(free, sp, mc))]
        if agent_kind == "untrained":
            assert n.slot_counts()["cut_tokens"] > 0
    if agent_kind == "untrained":  # the check can fail: the free decoder breaks the format
        assert broken[0] > 0


@pytest.mark.parametrize("word_share", [None, 0.9])
def test_early_exit_gives_the_same_tokens_where_the_slot_is_well_formed(recorded, trained,
                                                                        word_share):
    """Single stream: with and without the early exit (no cut in either; the word gate in
    both or neither), token for token up to the first slot the early exit reports ill-formed
    (after it the contexts legitimately differ), hidden states equal up to rounding; the
    report is exact."""
    sp = special_ids(trained.tokenizer)
    exits = 0
    for frames, _ in recorded:
        fast, ill, h_fast, n = narrate(trained, frames, cut=False, early_exit=True,
                                       word_share=word_share)
        slow, _, h_slow, _ = narrate(trained, frames, cut=False, early_exit=False,
                                     word_share=word_share)
        exits += n.slot_counts()["early_exit_frames"]
        _, after_nil = slot_format_violations(slow, sp, 10**6)
        first = int(ill.nonzero()[0]) if ill.any() else len(frames)
        assert torch.equal(fast[:first], slow[:first])
        torch.testing.assert_close(h_fast[:first], h_slow[:first], atol=1e-4, rtol=1e-4)
        if first < len(frames):  # that slot: the same up to its first <nil>, a word after it
            j = slow[first].tolist().index(sp.nil)
            assert torch.equal(fast[first, :j + 1], slow[first, :j + 1])
            assert (fast[first, j:] == sp.nil).all() and (slow[first, j:] != sp.nil).any()
        else:  # no ill-formed slot reported: the free decoder wrote none either
            assert after_nil == 0
    assert exits > 0  # the trained narrator's slots do end early


@pytest.mark.parametrize("gate", [{}, {"word_share": 0.9}, {"sentence_share": 0.9}])
def test_vector_early_exit_equals_single_stream_on_recorded_episodes(recorded, trained, gate):
    """Two envs in one batched decode (the fill at per-row positions) equal each env narrated
    alone, with the rule on (and the word or sentence gate), token for token; a later episode
    starts on one env mid-run."""
    (fa, _), (fb, _) = recorded
    T = min(len(fa), len(fb))
    a2 = fa[: T // 2]  # env 0 plays a short episode, then episode b from its start
    stream0 = np.concatenate([a2, fb[: T - len(a2)]])
    starts = np.zeros((T, 2), bool)
    starts[0] = True
    starts[len(a2), 0] = True
    vec = VectorNarrator(trained, num_envs=2, window=8, keep=4, greedy=True, decode=False, **gate)
    vec.reset()
    steps = [vec.step(np.stack([stream0[t], fb[t]]), starts=starts[t]) for t in range(T)]
    ids = torch.stack([s.ids for s in steps], 1)  # [2, T, k]
    hidden = torch.stack([s.hidden for s in steps], 1)  # [2, T, k, D]
    assert vec.slot_counts()["early_exit_frames"] > 0
    assert (vec.slot_counts()["gated_words"] > 0) == ("word_share" in gate)
    assert (vec.slot_counts()["hushed_sentences"] > 0) == ("sentence_share" in gate)
    single_a, _, h_a, _ = narrate(trained, a2, **gate)
    single_b, _, h_b, _ = narrate(trained, fb[:T], **gate)
    single_b0, _, h_b0, _ = narrate(trained, fb[: T - len(a2)], **gate)
    assert torch.equal(ids[0, : len(a2)], single_a)
    assert torch.equal(ids[0, len(a2):], single_b0)
    assert torch.equal(ids[1], single_b)
    # the filled positions' states too (rotary and cache slots at each row's own positions)
    torch.testing.assert_close(hidden[0], torch.cat([h_a, h_b0]), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(hidden[1], h_b, atol=1e-4, rtol=1e-4)


def test_offline_narration_keeps_the_rule(recorded, trained):
    """BYOGAgent.narrate (offline windows) writes the same slot format and counts what it cut."""
    sp = special_ids(trained.tokenizer)
    frames = torch.as_tensor(recorded[0][0][:16])[None]
    rule = trained.encoder.slot_rule
    track = rule.start(1, "cpu")
    ids = trained.narrate(frames, track=track)[0]
    assert slot_format_violations(ids, sp, trained.cfg.text.max_carry) == (0, 0)
    live, _, _, _ = narrate(trained, recorded[0][0][:8])
    assert torch.equal(ids[:8], live)  # within the live window: offline == live


def test_the_word_gate_silences_only_sentence_first_words(recorded, trained):
    """Live narration with the gate equals narration without it up to the first token where
    they differ; there the gate wrote <nil> where a sentence would have begun (the token before
    it in the stream ends a sentence), and each step reports what it gated."""
    sp = special_ids(trained.tokenizer)
    ends = {sp.sep, sp.nil, sp.pad}
    differed = 0
    for frames, _ in recorded:
        gated, _, _, n = narrate(trained, frames, word_share=0.9)
        said, _, _, _ = narrate(trained, frames)
        a, b = gated.reshape(-1), said.reshape(-1)
        assert n.slot_counts()["gated_words"] > 0
        if torch.equal(a, b):
            continue
        i = int((a != b).nonzero()[0])
        assert int(a[i]) == sp.nil and int(b[i]) not in ends
        assert i == 0 or int(b[i - 1]) in ends  # no sentence was open there
        differed += 1
    assert differed > 0
    # the per-step counts add up to the narrator's total
    n = Narrator(trained, window=8, keep=4, greedy=True, decode=False, word_share=0.9)
    n.reset()
    per_step = sum(int(n.step(f[None]).gated[0]) for f in recorded[0][0])
    assert per_step == n.slot_counts()["gated_words"] > 0


def test_the_sentence_gate_says_whole_sentences_of_the_same_narration(recorded, trained):
    """Live narration with the sentence gate decodes exactly as without it (the same hidden
    states) and says a subset of its sentences, whole: every said sentence is one the free
    narration says in that frame, nothing else; offline windows say the same as live; the
    per-step counts add up."""
    from agents.model.slot_rule import narration_rule
    from agents.model.text import unslot

    hushed = 0
    for frames, _ in recorded:
        said, _, h_said, n = narrate(trained, frames, sentence_share=0.9)
        free, _, h_free, _ = narrate(trained, frames)
        torch.testing.assert_close(h_said, h_free)  # the context is the model's own tokens
        assert ((said == free) | (said == special_ids(trained.tokenizer).nil)).all()
        for s_said, s_free in zip(unslot(said, trained.tokenizer), unslot(free, trained.tokenizer)):
            assert all(s in s_free for s in s_said)  # no fragment: only whole sentences
        hushed += n.slot_counts()["hushed_sentences"]
        assert sum(len(x) for x in unslot(said, trained.tokenizer)) \
            == sum(len(x) for x in unslot(free, trained.tokenizer)) - n.slot_counts()["hushed_sentences"]
    assert hushed > 0
    frames = recorded[0][0][:8]
    live, _, _, n = narrate(trained, frames, sentence_share=0.9)
    e = trained.encoder.frame_embeddings(torch.as_tensor(frames)[None],
                                         torch.ones(1, len(frames), dtype=torch.bool))
    offline, _ = trained.encoder.sample(e, greedy=True,
                                        rule=narration_rule(trained, sentence_share=0.9))
    assert torch.equal(offline[0], live)  # within the live window: offline == live
    n = Narrator(trained, window=8, keep=4, greedy=True, decode=False, sentence_share=0.9)
    n.reset()
    per_step = sum(int(n.step(f[None]).hushed[0]) for f in recorded[0][0])
    assert per_step == n.slot_counts()["hushed_sentences"] > 0


@pytest.mark.parametrize("vector", [False, True])
def test_a_recorded_decoding_said_again_at_any_share_is_that_gates_narration(recorded, trained,
                                                                             vector):
    """``shares=True`` records each step's decoded slot and its word shares; saying them again
    with ``SlotRule.say_shares`` at a share q gives, frame for frame, what a narrator built with
    ``sentence_share=q`` says (the gate never changes decoding): what ``--sentence-share-sweep``
    relies on. Single stream and vector alike; the free narrator's decoded slots are its ids."""
    from agents.model.slot_rule import narration_rule, word_shares

    frames = recorded[0][0]

    def run(**kw):
        if vector:
            n = VectorNarrator(trained, num_envs=1, window=8, keep=4, greedy=True, decode=False, **kw)
        else:
            n = Narrator(trained, window=8, keep=4, greedy=True, decode=False, **kw)
        n.reset()
        return [n.step(f[None]) for f in frames], n

    rec, _ = run(shares=True)
    assert all(torch.equal(s.decoded, s.ids) for s in rec)  # no gate: said = decoded
    ends = torch.tensor(narration_rule(trained).ends)
    for s in rec:  # a word's share of the words' probability (end tokens: not read)
        words = ~torch.isin(s.ids, ends)
        assert s.shares.shape == s.ids.shape and (s.shares[words] > 0).all() \
            and (s.shares[words] <= 1 + 1e-6).all()
    assert run()[0][0].shares.numel() == 0  # off by default: nothing recorded
    hushed = []
    for q in (0.6, 0.9):
        gated, n = run(sentence_share=q)
        rule = narration_rule(trained, sentence_share=q)
        track = rule.start(1, "cpu")
        again = [rule.say_shares(track, s.decoded, s.shares) for s in rec]
        assert all(torch.equal(a, g.ids) for a, g in zip(again, gated))
        assert int(track.hushed.sum()) == n.slot_counts()["hushed_sentences"]
        hushed.append(n.slot_counts()["hushed_sentences"])
        both, _ = run(sentence_share=q, shares=True)  # recording beside the gate changes nothing
        assert all(torch.equal(b.ids, g.ids) and torch.equal(b.decoded, r.ids)
                   for b, g, r in zip(both, gated, rec))
    assert hushed[-1] > 0
    # and say() is say_shares() of the shares it computes
    logits = torch.randn(3, K, trained.encoder.tlm.core.config.vocab_size)
    ids = logits.argmax(-1)
    rule = narration_rule(trained, sentence_share=0.7)
    t1, t2 = rule.start(3, "cpu"), rule.start(3, "cpu")
    assert torch.equal(rule.say(t1, ids, logits),
                       rule.say_shares(t2, ids, word_shares(ids, logits, rule.nil)))
    assert torch.equal(t1.hushed, t2.hushed)
