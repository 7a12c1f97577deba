"""Metrics over time: any monitor applied to consecutive time buckets of one long episode."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


def bucketed(metric_fn: Callable[..., Any], *per_step: Sequence, bucket: int,
             merge_tail: bool = False) -> list[Any]:
    """Apply ``metric_fn`` to consecutive time buckets of one long episode.

    Each of ``per_step`` is indexed by step along its first dimension (a list of per-frame
    sentence lists, a ``[T, k]`` id tensor, ...); bucket ``i`` covers steps
    ``[i * bucket, (i + 1) * bucket)`` (the last may be shorter) and gets
    ``metric_fn(*(x[i*bucket:(i+1)*bucket] for x in per_step))``. With ``merge_tail`` a last
    bucket shorter than half a bucket joins the one before it: ``--steps 2000`` gives 2,001
    frames, and a one-frame bucket's F1 or ``<nil>`` rate (0 or 1) is noise, not a trend.

    >>> bucketed(lambda xs: sum(xs) / len(xs), [1, 1, 0, 0, 0], bucket=2)
    [1.0, 0.0, 0.0]
    >>> bucketed(len, list(range(9)), bucket=4), bucketed(len, list(range(9)), bucket=4, merge_tail=True)
    ([4, 4, 1], [4, 5])
    """
    if bucket < 1:
        raise ValueError(f"bucket must be >= 1 step, got {bucket}.")
    if not per_step:
        raise ValueError("bucketed needs at least one per-step sequence.")
    n = len(per_step[0])
    if any(len(x) != n for x in per_step):
        raise ValueError(
            f"The per-step sequences differ in length ({[len(x) for x in per_step]}); "
            "pass sequences over the same steps."
        )
    starts = list(range(0, n, bucket))
    if merge_tail and len(starts) > 1 and 2 * (n - starts[-1]) < bucket:
        starts.pop()  # the short tail joins the bucket before it
    return [metric_fn(*(x[s:e] for x in per_step)) for s, e in zip(starts, starts[1:] + [n])]
