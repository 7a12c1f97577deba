"""Validation: the model's monitors over a few fixed batches, pooled, and example narrations."""
from __future__ import annotations

import math
from typing import Any

import torch

from agents.model import monitors as M
from agents.model.text import slot_annotations, unslot


def to_device(batch: dict[str, Any], device: torch.device | str) -> dict[str, Any]:
    """Move a batch's tensors to ``device`` (lists stay as they are)."""
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


@torch.no_grad()
def validate(agent: Any, batches: list[dict[str, Any]], *, step: int, tolerance: int = 2,
             device: str | torch.device = "cpu") -> tuple[dict[str, float], list[torch.Tensor]]:
    """Run ``agent.evaluate`` on each batch, then score the narration of all batches together.

    Batch-level monitors (predictor NLL, prefix gain, entropy, teacher-forced accuracy, gates)
    are averaged over batches (a monitor NaN in every batch is kept as NaN, so a collapse stays
    visible); the narration metrics that pool (token accuracy, its majority baseline, event
    precision/recall/F1, distinct-n, ``<nil>`` rate) are recomputed once on all windows together
    by the same :func:`agents.model.monitors.narration_metrics` that ``evaluate`` uses, so small
    batches do not skew them.

    Returns:
        (metrics under ``val/…``, the greedy narration ids ``[B, T, k]`` of each batch).
    """
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    preds, truths, anns, valids = [], [], [], []
    for raw in batches:
        batch = to_device(raw, device)
        ev = agent.evaluate(batch, step=step, tolerance=tolerance)
        for key, value in ev.items():
            if isinstance(value, (int, float)):
                name = "val/" + key.split("/", 1)[-1]
                sums.setdefault(name, 0.0)
                counts.setdefault(name, 0)
                if math.isfinite(value):
                    sums[name] += float(value)
                    counts[name] += 1
        valid = batch["valid"].bool()
        preds.append(ev.ids.cpu())  # the greedy narration evaluate scored, not a second decode
        truths.append(slot_annotations(batch["annotations"], valid.cpu(), agent.tokenizer,
                                       agent.cfg.text).ids)
        anns.extend(batch["annotations"])
        valids.append(valid.cpu())
    out = {k: (sums[k] / counts[k] if counts[k] else float("nan")) for k in sums}
    if preds:
        pooled = M.narration_metrics(torch.cat(preds), agent.tokenizer, torch.cat(valids),
                                     truth=torch.cat(truths), annotations=anns, tolerance=tolerance)
        out.update({f"val/{k}": v for k, v in pooled.items()})
        out["val/accuracy_over_majority"] = (out["val/token_accuracy"]
                                             - out["val/majority_token_accuracy"])
    return out, preds


def format_examples(agent: Any, batches: list[dict[str, Any]], preds: list[torch.Tensor], *,
                    windows: int = 1, lines: int = 8) -> str:
    """Greedy narration beside the true annotations for the first ``windows`` validation windows
    (only frames where either says something, at most ``lines`` per window)."""
    out: list[str] = []
    done = 0
    for batch, ids in zip(batches, preds):
        narrated = unslot(ids, agent.tokenizer)
        for b in range(ids.shape[0]):
            if done >= windows:
                return "\n".join(out)
            done += 1
            ep, start = int(batch["episode_index"][b]), int(batch["start"][b])
            out.append(f"  episode {ep}, frames {start}..{start + ids.shape[1] - 1}:")
            shown = 0
            n_valid = int(batch["valid"][b].sum())
            for t in range(n_valid):
                true, said = batch["annotations"][b][t], narrated[b][t]
                if not true and not said:
                    continue
                out.append(f"    t={start + t:4d}  true: {' | '.join(true) or '-':<40.40}  "
                           f"narrated: {' | '.join(said) or '-'}")
                shown += 1
                if shown >= lines:
                    break
            if shown == 0:
                out.append("    (no annotations and no narration in this window)")
    return "\n".join(out)
