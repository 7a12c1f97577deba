"""Numeric precision and compilation, one place for training and narration (``--precision``,
``--compile``).

* ``--precision bf16`` runs the forward passes under ``torch.autocast`` with bfloat16 (on CPU
  too, so it is testable without a GPU): matmuls and convolutions in bf16, reductions, losses,
  weights and the optimizer's state in fp32. ``fp32`` changes nothing.
* ``--compile`` applies ``torch.compile`` (``nn.Module.compile``, in place: state dicts and
  checkpoints keep their names) to the teacher-forced forward of the encoder (the LM layer
  stack, i.e. training and a narrator's window re-encodes), the observation encoder and the
  predictor. The per-token decode path of live narration stays the hand-fused
  :mod:`agents.model.decode_plan` on CPU: one token through a tiny model is a few dozen small ops,
  which a compiled graph does not make faster, and a new graph per cache length would recompile.

This module imports torch lazily so configs can name the choices without importing it.
"""
from __future__ import annotations

import contextlib
from typing import Any

#: The precisions ``--precision`` accepts and the autocast dtype each means (None: no autocast).
PRECISIONS: dict[str, str | None] = {"fp32": None, "bf16": "bfloat16"}


def check_precision(precision: str) -> None:
    """Raise ``ValueError`` naming the choices for an unknown precision."""
    if precision not in PRECISIONS:
        raise ValueError(f"Unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}.")


def autocast(precision: str, device: Any) -> contextlib.AbstractContextManager:
    """The context the forward passes run in: ``torch.autocast`` for ``bf16``, nothing for fp32.

    Args:
        precision: ``fp32`` or ``bf16``.
        device: The device (or its name) the model runs on; its type picks the autocast backend.
    """
    import torch

    check_precision(precision)
    dtype = PRECISIONS[precision]
    if dtype is None:
        return contextlib.nullcontext()
    kind = torch.device(device).type
    return torch.autocast(device_type=kind, dtype=getattr(torch, dtype))


def compile_agent(agent: Any, **kwargs: Any) -> Any:
    """``torch.compile`` the encoder's teacher-forced forward, the observation encoder and the
    predictor of ``agent`` in place (see the module docstring); returns the agent."""
    modules = [agent.encoder.obs, agent.encoder, getattr(agent, "predictor", None)]
    for m in modules:
        if m is not None:
            m.compile(**kwargs)
    return agent


__all__ = ["PRECISIONS", "autocast", "check_precision", "compile_agent"]
