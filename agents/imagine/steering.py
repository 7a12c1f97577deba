"""Words that steer pictures: imagine from a *given* sentence and check the narrator says it back.

For each clip and each prompt sentence, the sentence is teacher-forced into the last real
frame's narration slot (:meth:`agents.narrate.narrator.Narrator.force`) and the world model imagines
from that state (``imagine(..., prompt=ids)``); the same clips are imagined unprompted (the
narrator's own words in that slot). Both imagined clips are then narrated by the agent *from the
same unprompted context* (its narration of the real context frames), so that the two arms differ
only in their pictures, never in the words already in the narrator's context.

Score: the share of (clip, prompt) pairs whose imagined frames within ``tolerance`` frames of the
prompted slot (imagined frames 1..tolerance) are narrated with the prompt's event, minus the same
share for the unprompted imagination of the same clips (paired per clip and prompt).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch


def prompt_ids(agent: Any, sentence: str) -> torch.Tensor:
    """A sentence as one narration slot: long [k] (``<sep>``/``<nil>`` as in training)."""
    from agents.model.text import slot_annotations

    return slot_annotations([[[sentence]]], torch.ones(1, 1, dtype=torch.bool), agent.tokenizer,
                            agent.cfg.text).ids[0, 0]


def frequent_sentences(annotations: Sequence[Sequence[Sequence[str]]], n: int) -> list[str]:
    """The ``n`` most frequent annotation sentences of episodes (lists of per-frame lists), the
    most frequent first (ties by text): prompts the narrator was taught to say."""
    counts = Counter(s for ep in annotations for frame in ep for s in frame)
    return [s for s, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]


def says(narration: Sequence[Sequence[str]], sentence: str, frames: int) -> bool:
    """Whether the event of ``sentence`` is among the sentences narrated for the first
    ``frames`` frames (``narration``: per-frame sentence lists); parsed events compare by kind
    and arguments, unparsed sentences by text."""
    from agents.narrate.clip_narration import sentence_event

    target = sentence_event(sentence)
    return any(sentence_event(s) == target for fr in narration[:frames] for s in fr)


@torch.no_grad()
def steering(agent: Any, wm: Any, context: torch.Tensor, actions: torch.Tensor,
             prompts: Sequence[str], *, steps: int, tolerance: int = 2, seed: int = 0,
             ) -> dict[str, Any]:
    """The prompted-imagination score on clips ``context`` uint8 [B, C, H, W, 3] under
    ``actions`` long [B, steps] (see the module docstring).

    Returns:
        ``{"prompted": bool [P, B], "unprompted": bool [P, B], "prompts": [...], "narration":
        {prompt: B narrations of the prompted imagination}, "codes_changed": float [P]}``:
        whether the narrator said prompt p reading clip b's imagined frames, with and without the
        prompt, and the share of imagined codes the prompt changed.
    """
    from agents.imagine.rollout import imagine
    from agents.narrate.clip_narration import narrate_clips

    B = context.shape[0]
    window = wm.cfg.window_for(agent)
    free = imagine(agent, context, actions, steps, world_model=wm, seed=seed)
    free_said = narrate_clips(agent, context, free.frames, window=window)
    prompted, unprompted, texts, changed = [], [], {}, []
    for p in prompts:
        ids = prompt_ids(agent, p).expand(B, -1)
        img = imagine(agent, context, actions, steps, world_model=wm, seed=seed, prompt=ids)
        said = narrate_clips(agent, context, img.frames, window=window)
        prompted.append([says(n, p, tolerance) for n in said])
        unprompted.append([says(n, p, tolerance) for n in free_said])
        texts[p] = said
        # did the words change the pictures at all? share of grid positions whose code differs
        changed.append(float((img.codes != free.codes).float().mean()))
    return {"prompts": list(prompts), "prompted": np.array(prompted, bool),
            "unprompted": np.array(unprompted, bool), "narration": texts,
            "codes_changed": np.array(changed)}
