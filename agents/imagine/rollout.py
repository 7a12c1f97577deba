"""Rollouts (``agent.imagine``): imagine frames after real ones, feeding each imagined frame back
to the narrator whose new state conditions the next step.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from agents.imagine.config import WorldModelError
from agents.imagine.dynamics import WorldModel, attached_world_model


# ---------------------------------------------------------------------------------------------
# Rollouts: agent.imagine
# ---------------------------------------------------------------------------------------------
@dataclass
class Imagination:
    """Imagined continuations of ``B`` clips.

    Attributes:
        frames: uint8 [B, K, H, W, 3] imagined frames (decoded codes).
        codes: long [B, K, h, w] the world model's codes.
        narration_ids: long [B, K, k] the agent's narration of the imagined frames.
        narration: B lists of K strings (``""`` for a silent frame).
    """

    frames: torch.Tensor
    codes: torch.Tensor
    narration_ids: torch.Tensor
    narration: list[list[str]]


@torch.no_grad()
def imagine(agent: Any, frames: Any, actions: Any = None, steps: int = 16, *,
            world_model: WorldModel | None = None, greedy: bool = True, temperature: float = 1.0,
            seed: int = 0, decoding: str | None = None, window: int | None = None,
            prompt: Any = None) -> Imagination:
    """Imagine ``steps`` frames after each clip of real frames, and narrate them.

    Args:
        agent: A :class:`agents.model.agent.BYOGAgent` (it narrates; its state conditions the model).
        frames: uint8 [B, T, H, W, 3] (or [T, H, W, 3]) real frames; imagination starts after
            the last one, with the agent's narration context built over all T.
        actions: long [B, steps] (or [steps]): the action taken at the last real frame, then at
            each imagined frame (an imagined episode when they come from a policy). ``None`` (or
            -1 entries) means *no action input*: the model's learned "no action" id, trained by
            action dropout, so it predicts under the action prior of the training data (the
            marginal over actions) rather than under one action.
        steps: K, frames to imagine.
        world_model: The model (default: ``agent.world_model``, loaded from the checkpoint).
        greedy: Argmax codes; otherwise sampled at ``temperature`` (seeded by ``seed``).
        temperature: Sampling temperature.
        seed: Seed of the sampling and of the narrator.
        decoding: Override of the config's decoding scheme.
        window: Narration context window (default ``world_model.cfg.window_for(agent)``).
        prompt: long [B, k] narration slot ids teacher-forced into the last real frame's slot
            (:meth:`agents.narrate.narrator.Narrator.force`): imagination then starts from the state of
            the agent having *said* that (see :mod:`agents.imagine.steering`); None: its own words.

    Returns:
        An :class:`Imagination`.
    """
    from agents.narrate.narrator import Narrator

    wm = world_model or attached_world_model(agent)
    x, acts = _checked_inputs(wm, frames, actions, steps)
    B = x.shape[0]
    nar = Narrator(agent, batch_size=B, window=window or wm.cfg.window_for(agent), greedy=True,
                   seed=seed)
    state = _context_state(nar, x, prompt)
    codes = wm.tokens.encode(x[:, -1])
    frame = x[:, -1]
    gen = torch.Generator().manual_seed(seed)
    out_f, out_c, out_ids, texts = [], [], [], []
    for s in range(steps):
        a = None if acts is None else acts[:, s]
        pred = wm.predict(codes, state, a, greedy=greedy, temperature=temperature, generator=gen,
                          decoding=decoding)
        if wm.cfg.copy_pixels:  # kept tiles keep their pixels (see WorldModel.copied_from)
            frame = wm.tokens.render(pred, frame, wm.copied_from(codes, pred, state, a))
        else:
            frame = wm.tokens.decode(pred)
        codes = pred
        step = nar.step(frame)
        state = step.hidden[:, -1].float()
        out_f.append(frame)
        out_c.append(codes)
        out_ids.append(step.ids)
        texts.append(step.text)
    return Imagination(frames=torch.stack(out_f, 1), codes=torch.stack(out_c, 1),
                       narration_ids=torch.stack(out_ids, 1),
                       narration=[[texts[s][b] for s in range(steps)] for b in range(B)])


def _context_state(nar: Any, x: torch.Tensor, prompt: Any) -> torch.Tensor:
    """Narrate the real frames ``x`` [B, T, ...] (teacher-forcing ``prompt`` into the last
    frame's slot when given): the last real frame's state [B, D], its narration included."""
    nar.reset()
    for t in range(x.shape[1]):
        step = nar.step(x[:, t])
    hidden = step.hidden if prompt is None else nar.force(torch.as_tensor(prompt).view(x.shape[0], -1))
    return hidden[:, -1].float()


def _checked_inputs(wm: WorldModel, frames: Any, actions: Any, steps: int
                    ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``imagine``'s frames as uint8 [B, T, H, W, 3] and actions as long [B, >= steps] (or None),
    or one error line naming what does not fit the world model."""
    x = torch.as_tensor(np.asarray(frames))
    if x.dim() == 4:
        x = x[None]
    if x.dtype != torch.uint8 or x.dim() != 5 or tuple(x.shape[2:]) != tuple(wm.tokens.frame_shape):
        raise WorldModelError(f"imagine expects uint8 frames [B, T, {', '.join(map(str, wm.tokens.frame_shape))}]"
                              f", got {x.dtype} {tuple(x.shape)}; pass frames of the env the "
                              "world model was trained on.")
    if steps < 1:
        raise WorldModelError(f"steps must be >= 1, got {steps}.")
    if actions is None:
        return x, None
    acts = torch.as_tensor(np.asarray(actions), dtype=torch.long).reshape(x.shape[0], -1)
    if acts.shape[1] < steps:
        raise WorldModelError(f"{acts.shape[1]} actions per clip for {steps} steps; pass one "
                              "action per imagined frame (or None).")
    return x, acts
