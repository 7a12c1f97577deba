"""A toy predictor objective, registered from the test suite (docs/architecture.md's recipe).

Objective ``toy``: the predictor sees every encoder state (no cut) and predicts each token
from them, a teacher-forced "reconstruct the narration" loss. Configs name it
``"plugins.toy_objective:toy"`` so a fresh process imports this module first.
"""
from __future__ import annotations

import torch

from agents.config import PRESETS, PresetSpec
from agents.model import losses as L
from agents.model.objectives import ObjectiveInputs, ObjectiveOutput, register_objective


@register_objective("toy")
def toy_objective(inp: ObjectiveInputs) -> ObjectiveOutput:
    pos = L.frame_mask(inp.valid, inp.k)  # [B, L] every valid position counts
    logits = inp.predictor.forward_prefix(inp.x, inp.targets, pos)  # all states seen
    loss, metrics = L.prefix_loss(logits, inp.targets, pos)
    with torch.no_grad():
        ce = L.token_ce(logits, inp.targets)
        per_seq = (ce * pos).sum(1) / pos.sum(1).clamp_min(1)
    metrics["toy/calls"] = 1.0
    return ObjectiveOutput(loss, metrics, per_seq, pos.any(1))


# A preset naming the objective: `--preset plugins.toy_objective:toy` on the command line.
PRESETS.register("toy", PresetSpec("the toy objective (reconstruct the narration, no cut)",
                                   {"predictor": {"mode": "plugins.toy_objective:toy"}}))
