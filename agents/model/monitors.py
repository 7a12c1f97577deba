"""Monitors of the BYOG agent: pure metric functions on tensors and sentence lists.

Collapse detectors (narration token entropy, distinct-1/2, ``<nil>`` rate), the predictor's
loss against a unigram baseline and the *prefix gain*, agreement of greedy narration with the
annotations (non-``<nil>`` token accuracy against a majority baseline, event precision/recall/F1
with a timing tolerance), carried/cut token counts, and per-time-bucket versions of any of
these over long episodes.

Conventions: ``mask`` is a bool tensor of the ids' shape (logits: their shape without the last
dimension), True where a position counts; ``None`` counts every position. A metric with
nothing to measure (an all-False mask) returns ``nan`` rather than a made-up number.
"""
from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch

from agents.model.over_time import bucketed  # noqa: F401  (part of the monitors' API)
from agents.model.text import Slotted, SpecialIds, special_ids, unslot

NAN = float("nan")


def _mask_like(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """``mask`` as a bool tensor of ``x``'s shape (all True when None)."""
    if mask is None:
        return torch.ones(x.shape, dtype=torch.bool, device=x.device)
    mask = torch.as_tensor(mask, device=x.device).bool()
    if mask.shape != x.shape:
        raise ValueError(
            f"mask has shape {tuple(mask.shape)} but the values it masks have shape "
            f"{tuple(x.shape)}; pass a mask of the same shape (or None)."
        )
    return mask


def _kept(ids: torch.Tensor, ignore_ids: Iterable[int], mask: torch.Tensor | None) -> torch.Tensor:
    """Bool mask of positions that count and whose id is not ignored."""
    keep = _mask_like(ids, mask)
    ignore = torch.as_tensor(list(ignore_ids), dtype=ids.dtype, device=ids.device)
    if ignore.numel():
        keep = keep & ~torch.isin(ids, ignore)
    return keep


@torch.no_grad()
def position_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of ``softmax(logits)`` at each position: ``[..., V]`` -> ``[...]``."""
    # entr(p) = -p log p with entr(0) = 0, so -inf logits (top-k masking) stay finite.
    return torch.special.entr(torch.softmax(logits.float(), dim=-1)).sum(-1)


@torch.no_grad()
def token_entropy(logits: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Mean entropy (nats) of the narration distribution ``softmax(logits)`` over positions.

    Args:
        logits: ``[..., V]`` unnormalised log-probabilities.
        mask: ``[...]`` positions that count.
    """
    ent = position_entropy(logits)  # [...]
    keep = _mask_like(ent, mask)
    return float(ent[keep].mean()) if keep.any() else NAN


@torch.no_grad()
def distinct_n(
    ids: torch.Tensor,
    n: int,
    ignore_ids: Iterable[int] = (),
    mask: torch.Tensor | None = None,
) -> float:
    """Distinct-n: distinct n-grams / all n-grams over a batch of token streams.

    Ignored ids (``<nil> <pad> <sep>`` typically) and masked-out positions break a stream into
    runs; n-grams are taken within runs, never across a gap, and pooled over the batch.
    Narration that says no word at all (all ``<nil>``: collapse to silence) has distinct-n 0,
    not NaN, so the monitor does not vanish exactly when it matters; only a mask that counts no
    position at all gives NaN.

    Args:
        ids: ``[B, N]`` token ids (a ``[B, T, k]`` slot tensor flattened to ``[B, T*k]``).
        n: n-gram order (1 or 2 for distinct-1/2).
        ignore_ids: ids that are not narration words.
        mask: ``[B, N]`` positions that count.
    """
    if n < 1:
        raise ValueError(f"distinct_n needs n >= 1, got {n}.")
    if ids.dim() != 2:
        raise ValueError(f"distinct_n expects ids [B, N], got shape {tuple(ids.shape)}.")
    keep = _kept(ids, ignore_ids, mask)
    grams: set[tuple[int, ...]] = set()
    total = 0
    for row, ok in zip(ids.tolist(), keep.tolist()):
        run: list[int] = []
        for tok, good in zip(row + [0], ok + [False]):  # a sentinel closes the last run
            if good:
                run.append(tok)
                continue
            for i in range(len(run) - n + 1):
                grams.add(tuple(run[i : i + n]))
                total += 1
            run = []
    if total:
        return len(grams) / total
    return 0.0 if bool(_mask_like(ids, mask).any()) else NAN


@torch.no_grad()
def nil_rate(ids: torch.Tensor, nil_id: int, mask: torch.Tensor | None = None) -> float:
    """Fraction of counted positions holding ``<nil>``."""
    keep = _mask_like(ids, mask)
    return float((ids[keep] == nil_id).float().mean()) if keep.any() else NAN


@torch.no_grad()
def unigram_nll(
    targets: torch.Tensor,
    mask: torch.Tensor | None,
    vocab_size: int,
    counts: torch.Tensor | None = None,
    smoothing: float = 1.0,
) -> float:
    """Per-token NLL (nats) of the targets under a smoothed unigram model: the baseline to beat.

    The unigram distribution is ``p(v) = (c_v + smoothing) / (sum c + smoothing * V)``, with
    ``c`` the counts of the targets themselves (``counts=None``: then this is the smoothed
    entropy of their empirical unigram distribution, an optimistic baseline) or given counts
    (e.g. from training targets). A predictor that ignores its context cannot do better than
    this on average.

    Args:
        targets: integer ids of any shape.
        mask: positions that count (None: all).
        vocab_size: V.
        counts: ``[V]`` unigram counts to use instead of the targets' own.
        smoothing: additive (Lidstone) smoothing; 1.0 is Laplace.
    """
    if smoothing < 0:
        raise ValueError(f"smoothing must be >= 0, got {smoothing}.")
    keep = _mask_like(targets, mask)
    y = targets[keep].long()
    if y.numel() == 0:
        return NAN
    if int(y.max()) >= vocab_size or int(y.min()) < 0:
        raise ValueError(f"targets hold ids outside [0, vocab_size={vocab_size}).")
    c = torch.bincount(y, minlength=vocab_size).double() if counts is None else counts.double()
    if c.shape != (vocab_size,):
        raise ValueError(f"counts must have shape [{vocab_size}], got {tuple(c.shape)}.")
    p = (c + smoothing) / (c.sum() + smoothing * vocab_size)
    if bool((p[y] <= 0).any()):
        raise ValueError(
            "A target has zero probability under the given counts; use smoothing > 0."
        )
    return float(-p[y].log().mean())


def prefix_gain(loss_without_prefix: float | torch.Tensor, loss_with_prefix: float | torch.Tensor) -> float:
    """Prefix gain = predictor loss with the prefix zeroed minus the loss with it.

    Positive means the predictor uses the encoder's prefix states, not just the teacher-forced
    previous tokens. Measure both losses on the same positions (each future frame's first slot
    position).
    """
    return float(loss_without_prefix) - float(loss_with_prefix)


@torch.no_grad()
def token_accuracy(
    pred_ids: torch.Tensor,
    target_ids: torch.Tensor,
    ignore_ids: Iterable[int],
    mask: torch.Tensor | None = None,
) -> float:
    """Accuracy on the positions whose *target* is a word (not in ``ignore_ids``).

    With ``ignore_ids = (<nil>, <pad>)`` this is the non-``<nil>`` token accuracy of greedy
    narration against the annotation slots.
    """
    if pred_ids.shape != target_ids.shape:
        raise ValueError(
            f"pred_ids {tuple(pred_ids.shape)} and target_ids {tuple(target_ids.shape)} differ in shape."
        )
    keep = _kept(target_ids, ignore_ids, mask)
    if not keep.any():
        return NAN
    return float((pred_ids[keep] == target_ids[keep]).float().mean())


@torch.no_grad()
def majority_token_accuracy(
    target_ids: torch.Tensor,
    ignore_ids: Iterable[int],
    mask: torch.Tensor | None = None,
) -> float:
    """The :func:`token_accuracy` of always predicting the most frequent counted target token."""
    keep = _kept(target_ids, ignore_ids, mask)
    y = target_ids[keep]
    if y.numel() == 0:
        return NAN
    _, freq = torch.unique(y, return_counts=True)
    return float(freq.max()) / y.numel()


def collapse_monitors(
    ids: torch.Tensor,
    special: SpecialIds,
    logits: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    prefix: str = "narration/",
) -> dict[str, float]:
    """The collapse detectors of a batch of narration slots, under stable metric keys.

    Args:
        ids: ``[B, T, k]`` (or ``[B, N]``) narration ids.
        special: the tokenizer's special ids.
        logits: ``[*ids.shape, V]`` the distributions the ids were sampled from (for entropy).
        mask: ids-shaped positions that count (e.g. valid frames).
        prefix: key namespace.

    Returns:
        ``{prefix}entropy`` (only with logits), ``distinct_1``, ``distinct_2``, ``nil_rate``.
    """
    flat = ids.reshape(ids.shape[0], -1)
    fmask = None if mask is None else _mask_like(ids, mask).reshape(flat.shape)
    words_only = (special.pad, special.nil, special.sep, special.bos)
    out = {
        f"{prefix}distinct_1": distinct_n(flat, 1, words_only, fmask),
        f"{prefix}distinct_2": distinct_n(flat, 2, words_only, fmask),
        f"{prefix}nil_rate": nil_rate(flat, special.nil, fmask),
    }
    if logits is not None:
        out[f"{prefix}entropy"] = token_entropy(logits, mask)
    return out


def slot_counts(slotted: Slotted, prefix: str = "text/") -> dict[str, float]:
    """Carried and cut annotation tokens of a slotted batch (totals and per window)."""
    b = max(int(slotted.cut.numel()), 1)
    cut, carried = int(slotted.cut.sum()), int(slotted.carried.sum())
    return {
        f"{prefix}cut_tokens": float(cut),
        f"{prefix}carried_tokens": float(carried),
        f"{prefix}cut_per_window": cut / b,
        f"{prefix}carried_per_window": carried / b,
    }


# --------------------------------------------------------------------------- events


def _default_parser() -> Callable[[str], Any]:
    from byog_env import parse_event

    return parse_event


def _event_key(event: Any) -> str:
    """Hashable identity of an event: its kind and args (order-independent)."""
    return json.dumps([event.kind, event.args], sort_keys=True, default=str)


def _events(
    frames: Sequence[Sequence[str]], parse: Callable[[str], Any]
) -> tuple[dict[str, list[int]], int]:
    """Per event key, the frames where it occurs (sorted); and the number of unparseable sentences."""
    by_key: dict[str, list[int]] = defaultdict(list)
    bad = 0
    for t, sentences in enumerate(frames):
        for s in sentences:
            try:
                by_key[_event_key(parse(s))].append(t)
            except ValueError:
                bad += 1
    return by_key, bad


def _match_count(pred_frames: list[int], true_frames: list[int], tolerance: int) -> int:
    """Size of a maximum one-to-one matching of frames with ``|p - q| <= tolerance``.

    Both lists are sorted; greedily pairing each true event with the earliest unmatched
    prediction inside its window is optimal for points on a line with equal windows.
    """
    i = matched = 0
    for q in true_frames:
        while i < len(pred_frames) and pred_frames[i] < q - tolerance:
            i += 1  # too early for this and every later true event
        if i < len(pred_frames) and pred_frames[i] <= q + tolerance:
            matched += 1
            i += 1
    return matched


def _prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    # Nothing predicted (or nothing to find) is vacuously precise (or complete); F1 is 0 unless
    # both are positive, and 1 for a window with no events where nothing was said.
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn}


def event_prf(
    pred: Sequence[Sequence[str]],
    true: Sequence[Sequence[str]],
    tolerance: int = 2,
    parser: Callable[[str], Any] | None = None,
) -> dict[str, float]:
    """Event precision/recall/F1 of narration against annotations within a timing tolerance.

    Sentences become events with ``byog_env.parse_event``; a predicted event matches a true
    event of the same ``(kind, args)`` at most ``tolerance`` frames away, one to one. A
    predicted sentence that does not parse is a false positive; an annotation that does not
    parse cannot be matched (a false negative); both are counted in ``unparsed_pred`` /
    ``unparsed_true``.

    Args:
        pred: per-frame narrated sentences of ONE window or episode (e.g. from ``unslot``).
        true: per-frame annotations of the same frames.
        tolerance: frames of timing slack (0: same frame only).
        parser: sentence -> event with ``.kind`` and ``.args`` (default ``byog_env.parse_event``).

    Returns:
        ``precision, recall, f1, tp, fp, fn, unparsed_pred, unparsed_true``; combine several
        windows with :func:`combine_prf`.
    """
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0 frames, got {tolerance}.")
    if len(pred) != len(true):
        raise ValueError(
            f"pred covers {len(pred)} frames but true covers {len(true)}; pass the per-frame "
            "sentence lists of the same window."
        )
    parse = parser or _default_parser()
    pred_ev, bad_pred = _events(pred, parse)
    true_ev, bad_true = _events(true, parse)
    tp = sum(_match_count(pred_ev[k], frames, tolerance) for k, frames in true_ev.items() if k in pred_ev)
    n_pred = sum(len(v) for v in pred_ev.values()) + bad_pred
    n_true = sum(len(v) for v in true_ev.values()) + bad_true
    out = _prf(tp, n_pred - tp, n_true - tp)
    out.update(unparsed_pred=bad_pred, unparsed_true=bad_true)
    return out


def combine_prf(results: Iterable[dict[str, float]]) -> dict[str, float]:
    """Pool :func:`event_prf` results of several windows by summing their counts."""
    tp = fp = fn = bad_pred = bad_true = 0
    for r in results:
        tp, fp, fn = tp + r["tp"], fp + r["fp"], fn + r["fn"]
        bad_pred += r.get("unparsed_pred", 0)
        bad_true += r.get("unparsed_true", 0)
    out = _prf(int(tp), int(fp), int(fn))
    if tp + fn == 0:  # pooled over everything, no true event: recall and F1 are undefined,
        out.update(recall=float("nan"), f1=float("nan"))  # not the vacuous 1.0 of one window
    out.update(unparsed_pred=bad_pred, unparsed_true=bad_true)
    return out


def event_lags(
    pred: Sequence[Sequence[str]],
    true: Sequence[Sequence[str]],
    window: int = 16,
    parser: Callable[[str], Any] | None = None,
) -> tuple[list[int], int]:
    """Signed lag of each narrated event to the nearest true event of the same kind.

    For each parseable narrated sentence at frame ``t`` the nearest frame ``q`` holding a true
    event with the same ``(kind, args)`` within ``window`` frames gives the lag ``t - q``
    (positive: narrated late; on a tie the earlier true event, i.e. the positive lag). An event
    with no such true event is unpaired. Not one-to-one: it measures timing, not agreement
    (:func:`event_prf` does that).

    Args:
        pred: per-frame narrated sentences of ONE episode.
        true: per-frame annotations of the same frames.
        window: the largest |lag| that still pairs (frames).
        parser: sentence -> event (default ``byog_env.parse_event``).

    Returns:
        ``(lags, narrated)``: the paired events' signed lags and the number of narrated events
        (parseable sentences); ``len(lags) / narrated`` is the paired share.

    >>> from types import SimpleNamespace as E
    >>> parse = lambda s: E(kind=s, args=[])
    >>> event_lags([[], ["a"], [], ["b"], ["a"]], [["a"], [], [], [], []], parser=parse)
    ([1, 4], 3)
    """
    by_kind = event_lags_by_kind(pred, true, window, parser).values()
    return sorted(x for lags, _ in by_kind for x in lags), sum(n for _, n in by_kind)


def event_lags_by_kind(
    pred: Sequence[Sequence[str]],
    true: Sequence[Sequence[str]],
    window: int = 16,
    parser: Callable[[str], Any] | None = None,
) -> dict[str, tuple[list[int], int]]:
    """:func:`event_lags` per event kind (``see``, ``face``...): where the lag comes from (a
    kind the narrator guesses at pairs with any true event of its kind up to ``window`` away).

    >>> from types import SimpleNamespace as E
    >>> parse = lambda s: E(kind=s[0], args=[s])
    >>> event_lags_by_kind([[], ["a1"], [], ["b1"], ["a1"]], [["a1"], [], [], [], []], parser=parse)
    {'a': ([1, 4], 2), 'b': ([], 1)}
    """
    if window < 0:
        raise ValueError(f"window must be >= 0 frames, got {window}.")
    parse = parser or _default_parser()
    pred_ev, _ = _events(pred, parse)
    true_ev, _ = _events(true, parse)
    out: dict[str, tuple[list[int], int]] = {}
    for key, frames in pred_ev.items():
        kind = json.loads(key)[0]
        lags, n = out.get(kind, ([], 0))
        qs = true_ev.get(key, [])
        for t in frames:
            near = [t - q for q in qs if abs(t - q) <= window]
            if near:
                lags.append(min(near, key=lambda d: (abs(d), -d)))
        out[kind] = (sorted(lags), n + len(frames))
    return dict(sorted(out.items()))


def lag_summary(lags: Sequence[int], narrated: int) -> dict[str, float]:
    """``abs_p50``/``abs_p90`` of |lag| (frames), ``signed_p50``, ``paired_share`` (paired /
    narrated events) and the counts; NaN where there is nothing to summarise."""
    import numpy as np

    a = np.asarray(lags, dtype=float)
    nan = float("nan")
    return {
        "abs_p50": float(np.percentile(np.abs(a), 50)) if a.size else nan,
        "abs_p90": float(np.percentile(np.abs(a), 90)) if a.size else nan,
        "signed_p50": float(np.percentile(a, 50)) if a.size else nan,
        "paired_share": len(a) / narrated if narrated else nan,
        "paired": int(a.size),
        "narrated": int(narrated),
    }


def pooled_f1(counts: Sequence[dict[str, float]]) -> float:
    """F1 of pooled ``tp/fp/fn`` counts (NaN when there is no true event), as :func:`combine_prf`."""
    return float(combine_prf(counts)["f1"]) if counts else float("nan")


def bootstrap_ci(
    stat: Callable[[Sequence[int]], float],
    n: int,
    *,
    resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``stat`` over ``n`` units (episodes) resampled with
    replacement: ``stat(indices)`` gets each resample's unit indices (so paired statistics
    resample both arms' units together). Resamples where ``stat`` is NaN are dropped; (NaN,
    NaN) when fewer than two units or no finite resample."""
    import numpy as np

    if n < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    vals = np.array([stat(rng.integers(0, n, n).tolist()) for _ in range(resamples)], dtype=float)
    vals = vals[np.isfinite(vals)]
    if not vals.size:
        return float("nan"), float("nan")
    a = (1 - level) / 2
    return float(np.quantile(vals, a)), float(np.quantile(vals, 1 - a))


def grounding_monitors(
    pred_ids: torch.Tensor,
    target_ids: torch.Tensor,
    annotations: Sequence[Sequence[Sequence[str]]],
    valid: torch.Tensor,
    tokenizer: Any,
    tolerance: int = 2,
    parser: Callable[[str], Any] | None = None,
    prefix: str = "grounding/",
) -> dict[str, float]:
    """Agreement of greedy narration with the annotations of a batch of windows.

    Args:
        pred_ids: ``[B, T, k]`` greedy narration.
        target_ids: ``[B, T, k]`` the annotation slots (``slot_annotations(...).ids``).
        annotations: the ``B`` windows' per-frame annotations (the events' ground truth).
        valid: ``bool [B, T]`` frames that count.
        tokenizer: the tokenizer of both id tensors.
        tolerance: event timing tolerance in frames.
        parser: sentence -> event (default ``byog_env.parse_event``).
        prefix: key namespace.

    Returns:
        ``token_accuracy`` (non-``<nil>``), ``majority_accuracy`` (its baseline) and the pooled
        ``event_precision``, ``event_recall``, ``event_f1``, ``event_unparsed``.
    """
    sp = special_ids(tokenizer)
    valid = torch.as_tensor(valid, dtype=torch.bool)
    mask = valid.unsqueeze(-1).expand(target_ids.shape)  # [B, T, k]
    ignore = (sp.nil, sp.pad)
    narrated = unslot(pred_ids.masked_fill(~mask, sp.pad), tokenizer)
    truth = [
        [list(frame) if ok else [] for frame, ok in zip(window, row)]
        for window, row in zip(annotations, valid.tolist())
    ]
    events = combine_prf(
        event_prf(p, t, tolerance, parser) for p, t in zip(narrated, truth)
    )
    return {
        f"{prefix}token_accuracy": token_accuracy(pred_ids, target_ids, ignore, mask),
        f"{prefix}majority_accuracy": majority_token_accuracy(target_ids, ignore, mask),
        f"{prefix}event_precision": events["precision"],
        f"{prefix}event_recall": events["recall"],
        f"{prefix}event_f1": events["f1"],
        f"{prefix}event_unparsed": float(events["unparsed_pred"]),
    }


def narration_metrics(
    ids: torch.Tensor,
    tokenizer: Any,
    valid: torch.Tensor,
    *,
    logits: torch.Tensor | None = None,
    truth: torch.Tensor | None = None,
    teacher_forced: torch.Tensor | None = None,
    annotations: Sequence[Sequence[Sequence[str]]] | None = None,
    tolerance: int = 2,
    parser: Callable[[str], Any] | None = None,
) -> dict[str, float]:
    """Every evaluation metric of narrated windows, computed in this one place.

    ``BYOGAgent.evaluate`` (one batch), the trainer's pooled validation and ``agents.narrate.command``'s
    live summary all call it, so a metric means the same thing wherever it is reported.

    Args:
        ids: ``[B, T, k]`` greedy narration.
        tokenizer: the tokenizer of the ids.
        valid: ``bool [B, T]`` frames that count.
        logits: ``[B, T, k, V]`` the distributions the ids came from (adds ``entropy``).
        truth: ``[B, T, k]`` the annotation slots (adds ``token_accuracy`` (non-``<nil>``) and
            its baseline ``majority_token_accuracy``).
        teacher_forced: ``[B, T, k]`` the narration when fed the true previous tokens (adds
            ``teacher_forced_token_accuracy``; the gap to ``token_accuracy`` is the cost of
            free-running decoding). Needs ``truth``.
        annotations: the windows' per-frame sentences (adds ``event_precision``,
            ``event_recall``, ``event_f1``, ``event_unparsed``, with a ``tolerance``-frame
            timing window).

    Returns:
        Un-prefixed keys: ``distinct_1``, ``distinct_2``, ``nil_rate`` always, the rest as above.
    """
    sp = special_ids(tokenizer)
    valid = torch.as_tensor(valid, dtype=torch.bool, device=ids.device)
    mask = valid[:, :, None].expand(ids.shape)  # [B, T, k]
    out = collapse_monitors(ids, sp, logits=logits, mask=mask, prefix="")
    ignore = (sp.nil, sp.pad)
    if truth is not None:
        out["token_accuracy"] = token_accuracy(ids, truth, ignore, mask)
        out["majority_token_accuracy"] = majority_token_accuracy(truth, ignore, mask)
        if teacher_forced is not None:
            out["teacher_forced_token_accuracy"] = token_accuracy(teacher_forced, truth, ignore, mask)
    if annotations is not None:
        narrated = unslot(ids.masked_fill(~mask, sp.pad), tokenizer)
        true = [[list(frame) if ok else [] for frame, ok in zip(window, row)]
                for window, row in zip(annotations, valid.tolist())]
        events = combine_prf(event_prf(p, t, tolerance, parser) for p, t in zip(narrated, true))
        out.update({f"event_{n}": float(events[n]) for n in ("precision", "recall", "f1")})
        out["event_unparsed"] = float(events["unparsed_pred"])
    return out
