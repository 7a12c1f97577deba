"""Text side of the BYOG agent: the tokenizer and the slotting of annotations into frame slots.

Each frame owns a slot of ``k`` token positions (``SlotConfig.tokens_per_frame``). A window's
per-frame annotations become ids ``[B, T, k]``:

* A frame's sentences are written into its slot, ``<sep>`` between sentences, the rest of the
  slot padded with ``<nil>``.
* What does not fit is *carried*: it continues at the start of the next slot(s), before that
  frame's own sentences. The backlog is bounded: at frame ``t`` tokens whose frame is older
  than ``t - max_carry`` are *cut* (``max_carry=0``: whatever overflows its own slot is cut).
  Tokens still pending when the window's valid frames end are cut too. ``Slotted.cut`` and
  ``Slotted.carried`` count them (annotation tokens only, never ``<sep>``/``<nil>``).
* Padded (invalid) frames hold ``<pad>`` everywhere.

**Delimiting, so that** :func:`unslot` **can read the stream back.** The slots of a window are
one token stream in which a sentence ends at ``<sep>``, ``<nil>`` or ``<pad>``, and *only*
there: a slot that ends on an annotation token means the sentence continues in the next slot.
Consequently, when a sentence ends exactly at the last position of a slot and another sentence
follows, the next slot starts with ``<sep>``. :func:`unslot` attributes each sentence to the
frame whose slot holds its first token, so a carried sentence appears (late) at the frame where
it started to be emitted; evaluation compares events with a timing tolerance anyway. Without
carry or cut, ``unslot(slot_annotations(a).ids) == a`` up to the tokenizer's normalisation.

**Tokenizer.** :func:`train_tokenizer` builds a word-level ``tokenizers`` tokenizer with the
special tokens first (``<pad>=0, <bos>=1, <nil>=2, <sep>=3, <unk>=4``) and a lowercase
normaliser. Its pre-tokenizer is ``Metaspace`` followed by isolating punctuation (a word keeps
its leading-space marker ``▁``, underscores stay inside words), rather than the plain
``Whitespace`` pre-tokenizer: with it ``decode`` restores the exact sentence text
(``"health 5/9."`` round trips instead of becoming ``"health 5 / 9 ."``), which the event
parser needs when greedy narration is scored. A pretrained tokenizer (e.g. pythia's BPE) is
loaded from a local directory by :func:`load_tokenizer`, which adds whichever of the special
tokens are missing; the model must then give those new ids trainable embedding rows
(``special_ids(tok)`` lists them, ``len(tok)`` is the vocabulary size to embed).
"""
from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

# SlotConfig lives in the torch-free agents.config; TextError in agents.errors (old paths kept)
from agents.config import SlotConfig
from agents.errors import TextError

SPECIAL_TOKENS: tuple[str, ...] = ("<pad>", "<bos>", "<nil>", "<sep>", "<unk>")
"""The special tokens, in the id order :func:`train_tokenizer` gives them (0..4)."""


@dataclass(frozen=True)
class SpecialIds:
    """Ids of the special tokens in one tokenizer."""

    pad: int
    bos: int
    nil: int
    sep: int
    unk: int

    def as_tuple(self) -> tuple[int, ...]:
        """All five ids, in :data:`SPECIAL_TOKENS` order."""
        return (self.pad, self.bos, self.nil, self.sep, self.unk)


def special_ids(tokenizer: PreTrainedTokenizerFast) -> SpecialIds:
    """Ids of ``<pad> <bos> <nil> <sep> <unk>`` in ``tokenizer``.

    Raises:
        TextError: if one of them is missing (load the tokenizer with :func:`load_tokenizer`).
    """
    # convert_tokens_to_ids maps an unknown token to <unk> (or None): check the way back too.
    ids = [tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS]
    missing = [
        t for t, i in zip(SPECIAL_TOKENS, ids) if i is None or tokenizer.convert_ids_to_tokens(i) != t
    ]
    if missing:
        raise TextError(
            f"The tokenizer lacks the special token(s) {missing}; load it with "
            "agents.model.text.load_tokenizer(path) or build it with agents.model.text.train_tokenizer(...), "
            "which add them."
        )
    return SpecialIds(*ids)


def _word_level_pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    # Metaspace keeps the word boundary in the token ("▁wood"), so decoding is exact; the split
    # isolates punctuation ("wood." -> "▁wood", ".") while \w keeps "wood_pickaxe" one word.
    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always"),
            pre_tokenizers.Split(Regex(r"[^\w\s▁]"), behavior="isolated"),
        ]
    )


def train_tokenizer(
    sentences: Iterable[str],
    *,
    min_frequency: int = 1,
    max_vocab: int | None = None,
    lowercase: bool = True,
) -> PreTrainedTokenizerFast:
    """Train a word-level tokenizer on annotation sentences (labelled training episodes only).

    Args:
        sentences: the annotation sentences (any iterable; read once).
        min_frequency: words seen fewer times map to ``<unk>``.
        max_vocab: at most this many entries including the 5 special tokens (None: no bound).
        lowercase: lowercase the text before splitting it into words.

    Returns:
        A ``PreTrainedTokenizerFast`` whose ids 0..4 are ``<pad> <bos> <nil> <sep> <unk>``.
    """
    if min_frequency < 1:
        raise TextError(f"min_frequency must be >= 1, got {min_frequency}.")
    if max_vocab is not None and max_vocab <= len(SPECIAL_TOKENS):
        raise TextError(
            f"max_vocab={max_vocab} leaves no room for words beside the {len(SPECIAL_TOKENS)} "
            "special tokens; pass a larger max_vocab or None."
        )
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    norm = [normalizers.NFKC()] + ([normalizers.Lowercase()] if lowercase else [])
    tok.normalizer = normalizers.Sequence(norm)
    tok.pre_tokenizer = _word_level_pre_tokenizer()
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.WordLevelTrainer(
        vocab_size=max_vocab if max_vocab is not None else 2**31 - 1,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        show_progress=False,
    )
    tok.train_from_iterator((s for s in sentences if s), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        bos_token="<bos>",
        unk_token="<unk>",
        sep_token="<sep>",
    )
    return _ensure_specials(fast)


def _ensure_specials(tokenizer: PreTrainedTokenizerFast) -> PreTrainedTokenizerFast:
    """Register every token of :data:`SPECIAL_TOKENS` as a special token (adding missing ones)."""
    have = set(tokenizer.all_special_tokens)
    extra = [t for t in SPECIAL_TOKENS if t not in have]
    if extra:
        try:  # transformers 5
            tokenizer.add_special_tokens(
                {"extra_special_tokens": extra}, replace_extra_special_tokens=False
            )
        except TypeError:  # transformers 4
            tokenizer.add_special_tokens(
                {"additional_special_tokens": extra}, replace_additional_special_tokens=False
            )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = "<pad>"
    return tokenizer


def save_tokenizer(tokenizer: PreTrainedTokenizerFast, path: str | Path) -> Path:
    """Save ``tokenizer`` as a Hugging Face tokenizer directory (``tokenizer.json`` + config)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(path))
    return path


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerFast:
    """Load our tokenizer, or any local pretrained one (e.g. pythia's), with the specials added.

    Never downloads: ``path`` must be a local tokenizer directory (or a cached checkpoint dir).

    Raises:
        TextError: if ``path`` holds no loadable tokenizer.
    """
    path = Path(path)
    if not path.exists():
        raise TextError(
            f"No tokenizer directory at {str(path)!r}; pass the directory written by "
            "agents.model.text.save_tokenizer or a local pretrained checkpoint directory."
        )
    try:
        tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except Exception as exc:
        # the tokenizers library raises a bare Exception for a malformed tokenizer.json
        if not isinstance(exc, (OSError, ValueError)) and type(exc) is not Exception:
            raise
        raise TextError(
            f"Could not load a tokenizer from {str(path)!r} ({exc}); the directory needs a "
            "tokenizer.json (or the files of a pretrained tokenizer) and tokenizer_config.json."
        ) from None
    if not getattr(tok, "is_fast", False):
        raise TextError(
            f"The tokenizer at {str(path)!r} is a slow (Python) tokenizer; BYOG needs a fast "
            "tokenizer (a directory with tokenizer.json)."
        )
    return _ensure_specials(tok)


def vocab_hash(tokenizer: PreTrainedTokenizerFast) -> str:
    """A stable hex digest of the vocabulary (token -> id, added tokens included).

    Stored in checkpoints so a model is never paired with a different vocabulary.
    """
    items = sorted(tokenizer.get_vocab().items(), key=lambda kv: (kv[1], kv[0]))
    blob = json.dumps(items, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


@dataclass
class Slotted:
    """A window's annotations as token slots."""

    ids: torch.Tensor
    """``int64 [B, T, k]`` token ids."""
    cut: torch.Tensor
    """``int64 [B]`` annotation tokens cut by the carry bound or the window's end."""
    carried: torch.Tensor
    """``int64 [B]`` annotation tokens emitted in a later slot than their own frame's."""


def _encode_sentences(sentences: list[str], tokenizer: PreTrainedTokenizerFast) -> dict[str, list[int]]:
    """Token ids of each distinct sentence (one batched call to the fast tokenizer)."""
    uniq = list(dict.fromkeys(s for s in sentences if s and s.strip()))
    if not uniq:
        return {}
    enc = tokenizer(uniq, add_special_tokens=False)["input_ids"]
    return dict(zip(uniq, enc))


def slot_annotations(
    annotations: list[list[list[str]]],
    valid: torch.Tensor,
    tokenizer: PreTrainedTokenizerFast,
    cfg: SlotConfig,
) -> Slotted:
    """Write a batch of windows' per-frame annotations into frame slots.

    Args:
        annotations: ``B`` lists of ``T`` lists of sentences (``collate_windows``' layout).
        valid: ``bool [B, T]``, False on padded frames (their slots are all ``<pad>``).
        tokenizer: a tokenizer with our special tokens (see :func:`special_ids`).
        cfg: slot size and carry bound.

    Returns:
        :class:`Slotted` with ids ``[B, T, k]`` and per-window cut/carried counts.
    """
    valid = torch.as_tensor(valid, dtype=torch.bool)
    if valid.dim() != 2:
        raise TextError(f"valid must be bool [B, T], got shape {tuple(valid.shape)}.")
    B, T = valid.shape
    if len(annotations) != B or any(len(a) != T for a in annotations):
        raise TextError(
            f"annotations must be {B} lists of {T} per-frame sentence lists to match valid "
            f"{tuple(valid.shape)}; got lengths {[len(a) for a in annotations]}."
        )
    sp = special_ids(tokenizer)
    k = cfg.tokens_per_frame
    cache = _encode_sentences([s for win in annotations for fr in win for s in fr], tokenizer)
    rows = [
        _slot_window(frames, ok, cache, sp, cfg)
        for frames, ok in zip(annotations, valid.tolist())
    ]
    return Slotted(
        ids=torch.tensor([r[0] for r in rows], dtype=torch.long).view(B, T, k),
        cut=torch.tensor([r[1] for r in rows], dtype=torch.long).view(B),
        carried=torch.tensor([r[2] for r in rows], dtype=torch.long).view(B),
    )


def _slot_window(
    frames: list[list[str]],
    valid: list[bool],
    cache: dict[str, list[int]],
    sp: SpecialIds,
    cfg: SlotConfig,
) -> tuple[list[int], int, int]:
    """One window: flat ids ``[T * k]``, cut count, carried count."""
    k, max_carry = cfg.tokens_per_frame, cfg.max_carry
    out: list[int] = []
    backlog: deque[list] = deque()  # entries [origin_frame, token_ids, next_index]
    open_sentence = False  # the last emitted token was an annotation token
    n_cut = n_carried = 0
    for t, (sentences, ok) in enumerate(zip(frames, valid)):
        if not ok:
            # A padded frame ends the stream: what is still pending (and any stray annotation
            # on the padded frame itself) is cut, never silently dropped.
            n_cut += sum(len(e[1]) - e[2] for e in backlog)
            n_cut += sum(len(cache.get(s, ())) for s in sentences)
            backlog.clear()
            open_sentence = False
            out.extend([sp.pad] * k)
            continue
        backlog.extend([t, cache[s], 0] for s in sentences if cache.get(s))
        # Origins are non-decreasing along the backlog, so the too-old ones are at its head.
        while backlog and backlog[0][0] < t - max_carry:
            origin, toks, i = backlog.popleft()
            n_cut += len(toks) - i
        slot: list[int] = []
        while len(slot) < k and backlog:
            entry = backlog[0]
            origin, toks, i = entry
            if i == 0 and open_sentence:
                slot.append(sp.sep)
                open_sentence = False
                continue
            take = min(k - len(slot), len(toks) - i)
            slot.extend(toks[i : i + take])
            if origin < t:
                n_carried += take
            entry[2] = i + take
            open_sentence = True
            if entry[2] == len(toks):
                backlog.popleft()
        if len(slot) < k:
            slot.extend([sp.nil] * (k - len(slot)))
            open_sentence = False
        out.extend(slot)
    n_cut += sum(len(e[1]) - e[2] for e in backlog)
    return out, n_cut, n_carried


def unslot(ids: torch.Tensor, tokenizer: PreTrainedTokenizerFast) -> list:
    """Read slots back into per-frame sentences (the inverse of :func:`slot_annotations`).

    A sentence ends at ``<sep>``, ``<nil>`` or ``<pad>`` and belongs to the frame whose slot
    holds its first token; ``<bos>`` is ignored. Ids are decoded with the tokenizer (word-level
    or subword alike).

    Args:
        ids: ``[B, T, k]`` or ``[T, k]`` token ids.
        tokenizer: the tokenizer the ids come from.

    Returns:
        ``B`` lists of ``T`` sentence lists for ``[B, T, k]``; ``T`` sentence lists for ``[T, k]``.
    """
    ids = torch.as_tensor(ids)
    if ids.dim() == 2:
        return unslot(ids.unsqueeze(0), tokenizer)[0]
    if ids.dim() != 3:
        raise TextError(f"unslot expects ids [B, T, k] or [T, k], got shape {tuple(ids.shape)}.")
    sp = special_ids(tokenizer)
    return [_unslot_window(window, tokenizer, sp) for window in ids.tolist()]


def _unslot_window(
    window: list[list[int]], tokenizer: PreTrainedTokenizerFast, sp: SpecialIds
) -> list[list[str]]:
    """One window's slots ``[T][k]`` -> per-frame sentences."""
    ends = {sp.sep, sp.nil, sp.pad}
    frames: list[list[str]] = [[] for _ in window]
    pieces: list[tuple[int, list[int]]] = []  # (frame of the first token, token ids)
    current: list[int] | None = None
    for t, slot in enumerate(window):
        for tok_id in slot:
            if tok_id in ends:
                current = None
            elif tok_id != sp.bos:
                if current is None:
                    current = []
                    pieces.append((t, current))
                current.append(tok_id)
    for t, toks in pieces:
        text = tokenizer.decode(toks, skip_special_tokens=False).strip()
        if text:
            frames[t].append(text)
    return frames
