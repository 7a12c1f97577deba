"""Imagination: a world model over frame codes, read from the frozen narrator, rolled forward
in pictures and narrated in words.

* ``world_model``: ``WorldModelConfig``, ``WorldModel``, ``train_world_model``, the rollout
  :func:`imagine` (``Imagination``) and attaching a world model to an agent;
  ``grid_tokens`` (grid-aligned tile codes), ``copy_path`` (the pointer to frame t's codes);
* ``steering`` (words that steer pictures), ``study`` and ``stats`` (the imagination study's
  sections and paired intervals);
* ``python -m agents.imagine`` (``cli``, the console script ``byog-imagine``): train, roll out
  and score a world model against copy-last-frame and the tokenizer's ceiling.

Names are imported on first use. The command line's names (``main``, ``cli``,
``ImagineConfig``, ``evaluate``...), which lived in the old module ``agents.imagine``, still
resolve here with a ``DeprecationWarning`` naming ``agents.imagine.command``.
"""
from __future__ import annotations

from typing import Any

from agents._moved import package_attribute

_API = {name: "agents.imagine.world_model" for name in (
    "Imagination", "WorldModel", "WorldModelConfig", "WorldModelError", "attach_world_model",
    "attached_world_model", "imagine", "train_world_model")}
_OLD_MODULE = "agents.imagine.command"  # what ``agents.imagine`` was before it became this package
_OLD_NAMES = frozenset({  # the old module's other names: they warn
    "CONDITIONS", "Clips", "ImagineConfig", "METRICS", "REPORT", "SHEET", "VIDEO",
    "WORLD_MODEL_DIR", "_dataset_env", "_discrete_actions", "_jsonable", "_split", "_studies",
    "build_transitions", "cli", "code_accuracy", "compare_decoding", "dataset_episodes",
    "decoding_inputs", "evaluate", "event_f1", "fit_world_models", "frame_metrics",
    "frame_tokens_for", "main", "make_clips", "model_key", "narrate_clips", "narrator_states",
    "play_episodes", "psnr", "report", "sentence_event", "side_by_side", "ssim", "table",
    "training_prompts", "world_model_dir", "write_outputs",
})


def __getattr__(name: str) -> Any:
    return package_attribute(__name__, name, _API, _OLD_MODULE, _OLD_NAMES)


__all__ = sorted(_API)
