"""Tokenizer training/saving/loading and the slotting of annotations into frame slots."""
from __future__ import annotations

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from agents.model.text import (
    SPECIAL_TOKENS,
    SlotConfig,
    TextError,
    load_tokenizer,
    save_tokenizer,
    slot_annotations,
    special_ids,
    train_tokenizer,
    unslot,
    vocab_hash,
)

CORPUS = [
    "You collected wood.",
    "zombie came into view",
    "health 5/9",
    "placed table",
    "crafted wood_pickaxe",
    "collected wood.",
]


@pytest.fixture(scope="module")
def tok() -> PreTrainedTokenizerFast:
    return train_tokenizer(CORPUS)


def ids_of(tok, sentence: str) -> list[int]:
    return tok(sentence, add_special_tokens=False)["input_ids"]


# --------------------------------------------------------------------------- tokenizer


def test_specials_come_first(tok):
    sp = special_ids(tok)
    assert sp.as_tuple() == (0, 1, 2, 3, 4)
    assert tok.convert_ids_to_tokens(list(range(5))) == list(SPECIAL_TOKENS)
    assert set(SPECIAL_TOKENS) <= set(tok.all_special_tokens)
    assert tok.pad_token_id == 0


def test_word_level_lowercase_and_exact_decode(tok):
    # Word level: one id per word, punctuation isolated, underscores kept inside words.
    assert len(ids_of(tok, "You collected wood.")) == 4
    assert len(ids_of(tok, "crafted wood_pickaxe")) == 2
    assert ids_of(tok, "YOU COLLECTED WOOD.") == ids_of(tok, "you collected wood.")
    for s in ["you collected wood.", "health 5/9", "crafted wood_pickaxe"]:
        assert tok.decode(ids_of(tok, s)) == s
    unk = special_ids(tok).unk
    assert ids_of(tok, "dragon came into view")[0] == unk
    assert ids_of(tok, "dragon came into view")[1:] == ids_of(tok, "zombie came into view")[1:]


def test_min_frequency_and_max_vocab():
    t = train_tokenizer(["a b", "a c", "a b"], min_frequency=2)
    words = set(t.get_vocab()) - set(SPECIAL_TOKENS)
    assert words == {"▁a", "▁b"}  # "c" was seen once
    t = train_tokenizer(["a b", "a c", "a b"], max_vocab=6)
    assert len(t) == 6 and "▁a" in t.get_vocab()  # the most frequent word survives
    with pytest.raises(TextError, match="max_vocab"):
        train_tokenizer(["a"], max_vocab=5)
    with pytest.raises(TextError, match="min_frequency"):
        train_tokenizer(["a"], min_frequency=0)


def test_save_load_round_trip_and_vocab_hash(tok, tmp_path):
    h = vocab_hash(tok)
    assert h == vocab_hash(train_tokenizer(CORPUS))  # same corpus, same hash
    assert h != vocab_hash(train_tokenizer(CORPUS + ["a new word"]))
    save_tokenizer(tok, tmp_path / "tok")
    back = load_tokenizer(tmp_path / "tok")
    assert vocab_hash(back) == h
    assert back.get_vocab() == tok.get_vocab()
    assert special_ids(back) == special_ids(tok)
    for s in CORPUS:
        assert ids_of(back, s) == ids_of(tok, s)
        assert back.decode(ids_of(back, s)) == s.lower()


def test_load_errors(tmp_path):
    with pytest.raises(TextError, match="No tokenizer directory"):
        load_tokenizer(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TextError, match="Could not load a tokenizer"):
        load_tokenizer(tmp_path / "empty")


def _pretrained_bpe_dir(path) -> str:
    """A small byte-level BPE tokenizer saved like pythia's (GPT-NeoX): no <nil>/<sep>/<pad>."""
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(CORPUS * 5, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<|endoftext|>", eos_token="<|endoftext|>"
    )
    fast.save_pretrained(str(path))
    return fast


def test_pretrained_bpe_gets_specials_and_slots_subwords(tmp_path):
    base = _pretrained_bpe_dir(tmp_path / "bpe")
    n_base = len(base)
    tok = load_tokenizer(tmp_path / "bpe")
    sp = special_ids(tok)
    # The five specials are new ids appended after the pretrained vocabulary.
    assert len(tok) == n_base + 5
    assert sorted(sp.as_tuple()) == list(range(n_base, n_base + 5))
    assert tok.pad_token == "<pad>"
    assert tok("<nil>", add_special_tokens=False)["input_ids"] == [sp.nil]  # never split
    # Specials survive save/load, with the same ids.
    save_tokenizer(tok, tmp_path / "bpe2")
    again = load_tokenizer(tmp_path / "bpe2")
    assert special_ids(again) == sp and vocab_hash(again) == vocab_hash(tok)
    # Subword slotting round trips through decode.
    ann = [[["You collected wood."], [], ["crafted wood_pickaxe", "health 5/9"]]]
    k = max(len(ids_of(tok, s)) for s in CORPUS) * 2 + 1
    s = slot_annotations(ann, torch.ones(1, 3, dtype=torch.bool), tok, SlotConfig(k, 0))
    assert s.cut.tolist() == [0] and s.carried.tolist() == [0]
    assert unslot(s.ids, tok) == ann
    assert s.ids[0, 0, : len(ids_of(tok, "You collected wood."))].tolist() == ids_of(
        tok, "You collected wood."
    )


def test_special_ids_names_the_fix():
    bare = Tokenizer(models.WordLevel({"a": 0, "<unk>": 1}, unk_token="<unk>"))
    fast = PreTrainedTokenizerFast(tokenizer_object=bare)
    with pytest.raises(TextError, match=r"load_tokenizer"):
        special_ids(fast)


# --------------------------------------------------------------------------- slotting


def test_slot_config_validation():
    with pytest.raises(TextError, match="tokens_per_frame"):
        SlotConfig(tokens_per_frame=0)
    with pytest.raises(TextError, match="max_carry"):
        SlotConfig(max_carry=-1)


def test_slots_sep_nil_pad_and_round_trip(tok):
    sp = special_ids(tok)
    ann = [
        [["You collected wood.", "placed table"], [], ["health 5/9"], []],
        [["zombie came into view"], ["crafted wood_pickaxe"], [], []],
    ]
    valid = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]], dtype=torch.bool)
    s = slot_annotations(ann, valid, tok, SlotConfig(tokens_per_frame=8, max_carry=2))
    assert s.ids.shape == (2, 4, 8) and s.ids.dtype == torch.long
    w = ids_of(tok, "You collected wood.")
    p = ids_of(tok, "placed table")
    h = ids_of(tok, "health 5/9")
    nil, sep, pad = sp.nil, sp.sep, sp.pad
    assert s.ids[0, 0].tolist() == w + [sep] + p + [nil]
    assert s.ids[0, 1].tolist() == [nil] * 8
    assert s.ids[0, 2].tolist() == h + [nil] * 4
    assert s.ids[1, 3].tolist() == [pad] * 8  # invalid frame
    assert s.cut.tolist() == [0, 0] and s.carried.tolist() == [0, 0]
    lowered = [[[x.lower() for x in fr] for fr in win] for win in ann]
    assert unslot(s.ids, tok) == lowered
    assert unslot(s.ids[1], tok) == lowered[1]  # [T, k] accepted too


def test_overflow_carried_then_cut(tok):
    """k=4, max_carry=1: 8 tokens at frame 0 -> 4 carried into frame 1... and the bound cuts."""
    sp = special_ids(tok)
    nil, sep = sp.nil, sp.sep
    w = ids_of(tok, "You collected wood.")  # 4 tokens
    z = ids_of(tok, "zombie came into view")  # 4 tokens
    p = ids_of(tok, "placed table")  # 2 tokens
    assert (len(w), len(z), len(p)) == (4, 4, 2)
    ann = [[["You collected wood.", "zombie came into view"], [], ["placed table"], [], []]]
    valid = torch.ones(1, 5, dtype=torch.bool)

    # Generous bound: everything carried, nothing cut.
    s = slot_annotations(ann, valid, tok, SlotConfig(tokens_per_frame=4, max_carry=2))
    assert s.ids[0].tolist() == [
        w,  # frame 0: its first sentence fills the slot exactly
        [sep] + z[:3],  # frame 1: the sentence boundary, then carried tokens
        [z[3], sep] + p[:2],  # frame 2: the rest, then frame 2's own sentence
        [nil] * 4,
        [nil] * 4,
    ]
    assert s.cut.tolist() == [0]
    assert s.carried.tolist() == [4]  # the four tokens of "zombie came into view"
    assert unslot(s.ids, tok)[0] == [["you collected wood."], ["zombie came into view"],
                                     ["placed table"], [], []]

    # Bound of one frame: at frame 2 the last token of frame 0's sentence is cut.
    s = slot_annotations(ann, valid, tok, SlotConfig(tokens_per_frame=4, max_carry=1))
    assert s.ids[0].tolist() == [w, [sep] + z[:3], [sep] + p + [nil], [nil] * 4, [nil] * 4]
    assert s.cut.tolist() == [1] and s.carried.tolist() == [3]

    # No carry at all: the whole second sentence is cut at its own frame.
    s = slot_annotations(ann, valid, tok, SlotConfig(tokens_per_frame=4, max_carry=0))
    assert s.ids[0].tolist() == [w, [nil] * 4, p + [nil] * 2, [nil] * 4, [nil] * 4]
    assert s.cut.tolist() == [4] and s.carried.tolist() == [0]
    assert unslot(s.ids, tok)[0] == [["you collected wood."], [], ["placed table"], [], []]


def test_window_end_and_padding_cut_the_backlog(tok):
    sp = special_ids(tok)
    z = ids_of(tok, "zombie came into view")
    # Window 0: the sentence arrives on the last frame with k=3: 1 token left at the window end.
    # Window 1: frame 1 is padding, so the backlog (1 token) is cut there; a stray annotation on
    # a padded frame (2 tokens) is counted as cut too.
    ann = [
        [[], [], ["zombie came into view"]],
        [["zombie came into view"], [], ["placed table"]],
    ]
    valid = torch.tensor([[1, 1, 1], [1, 0, 0]], dtype=torch.bool)
    s = slot_annotations(ann, valid, tok, SlotConfig(tokens_per_frame=3, max_carry=4))
    assert s.ids[0, 2].tolist() == z[:3]
    assert s.ids[1].tolist() == [z[:3], [sp.pad] * 3, [sp.pad] * 3]
    assert s.cut.tolist() == [1, 1 + 2]
    assert s.carried.tolist() == [0, 0]


def test_sentence_ending_on_slot_boundary_gets_sep_before_next(tok):
    """A full slot ending a sentence, then a new sentence at the next frame: <sep> first."""
    sp = special_ids(tok)
    w = ids_of(tok, "You collected wood.")
    p = ids_of(tok, "placed table")
    ann = [[["You collected wood."], ["placed table"], []]]
    s = slot_annotations(ann, torch.ones(1, 3, dtype=torch.bool), tok, SlotConfig(4, 2))
    assert s.ids[0].tolist() == [w, [sp.sep] + p + [sp.nil], [sp.nil] * 4]
    assert s.carried.tolist() == [0]  # frame 1's own sentence is not carried
    assert unslot(s.ids, tok)[0] == [["you collected wood."], ["placed table"], []]


def test_unslot_reads_model_output_leniently(tok):
    sp = special_ids(tok)
    w = ids_of(tok, "You collected wood.")
    # <bos> ignored, a trailing <sep> and repeated specials make no empty sentences.
    ids = torch.tensor([[[sp.bos] + w + [sp.sep, sp.sep, sp.nil], [sp.nil] * 8]])
    assert unslot(ids, tok) == [[["you collected wood."], []]]
    with pytest.raises(TextError, match=r"\[B, T, k\]"):
        unslot(torch.zeros(3, dtype=torch.long), tok)


def test_slot_shape_errors(tok):
    with pytest.raises(TextError, match="valid must be bool"):
        slot_annotations([[[]]], torch.ones(3, dtype=torch.bool), tok, SlotConfig())
    with pytest.raises(TextError, match="annotations must be 1 lists of 2"):
        slot_annotations([[[]]], torch.ones(1, 2, dtype=torch.bool), tok, SlotConfig())
