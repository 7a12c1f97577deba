"""Imagination: a world model over frame codes, read from the frozen narrator, rolled forward
in pictures and narrated in words.

* the world model, one concept a module (``world_model`` re-exports them all and explains the
  design): ``config`` (``WorldModelConfig``, the condition/decoding/frame-token registries),
  ``frame_tokens`` (frames <-> code grids; ``grid_tokens`` for grid worlds), ``transformer``
  (the network), ``copy_path``, ``masking`` (masked-code training), ``decoding``, ``metrics``
  (PSNR, SSIM, code accuracy), ``transitions`` (data read from the frozen agent), ``dynamics``
  (``WorldModel``, ``train_world_model``, attaching it to an agent), ``rollout``
  (:func:`imagine`, ``Imagination``);
* ``steering`` (words that steer pictures), ``study`` and ``stats`` (the imagination study's
  sections and paired intervals);
* ``python -m agents.imagine`` (``command``, the console script ``byog-imagine``): train, roll out
  and score a world model against copy-last-frame and the tokenizer's ceiling.

Names are imported on first use. The command line's names (``main``, ``cli``,
``ImagineConfig``, ``evaluate``...), which lived in the old module ``agents.imagine``, still
resolve here with a ``DeprecationWarning`` naming their new home.
"""
from __future__ import annotations

from typing import Any

from agents._moved import package_attribute

_API = {
    "Imagination": "agents.imagine.rollout",
    "imagine": "agents.imagine.rollout",
    "WorldModel": "agents.imagine.dynamics",
    "attach_world_model": "agents.imagine.dynamics",
    "attached_world_model": "agents.imagine.dynamics",
    "train_world_model": "agents.imagine.dynamics",
    "WorldModelConfig": "agents.imagine.config",
    "WorldModelError": "agents.imagine.config",
}
# the old module's other names -> where they live now (they warn)
_OLD = {
    "CONDITIONS": "agents.imagine.config",
    "Clips": "agents.imagine.evaluation",
    "ImagineConfig": "agents.imagine.command",
    "METRICS": "agents.imagine.outputs",
    "REPORT": "agents.imagine.outputs",
    "SHEET": "agents.imagine.outputs",
    "VIDEO": "agents.imagine.outputs",
    "WORLD_MODEL_DIR": "agents.imagine.config",
    "_dataset_env": "agents.imagine.episodes",
    "_discrete_actions": "agents.imagine.episodes",
    "_jsonable": "agents.imagine.command",
    "_split": "agents.imagine.episodes",
    "_studies": "agents.imagine.command",
    "build_transitions": "agents.imagine.transitions",
    "cli": "agents.imagine.command",
    "code_accuracy": "agents.imagine.metrics",
    "compare_decoding": "agents.imagine.evaluation",
    "dataset_episodes": "agents.imagine.episodes",
    "decoding_inputs": "agents.imagine.command",
    "evaluate": "agents.imagine.evaluation",
    "event_f1": "agents.imagine.evaluation",
    "fit_world_models": "agents.imagine.command",
    "frame_metrics": "agents.imagine.evaluation",
    "frame_tokens_for": "agents.imagine.frame_tokens",
    "main": "agents.imagine.command",
    "make_clips": "agents.imagine.evaluation",
    "model_key": "agents.imagine.study",
    "narrate_clips": "agents.narrate.clip_narration",
    "narrator_states": "agents.imagine.transitions",
    "play_episodes": "agents.imagine.command",
    "psnr": "agents.imagine.metrics",
    "report": "agents.imagine.outputs",
    "sentence_event": "agents.narrate.clip_narration",
    "side_by_side": "agents.imagine.outputs",
    "ssim": "agents.imagine.metrics",
    "table": "agents.imagine.outputs",
    "training_prompts": "agents.imagine.episodes",
    "world_model_dir": "agents.imagine.command",
    "write_outputs": "agents.imagine.outputs",
}


def __getattr__(name: str) -> Any:
    return package_attribute(__name__, name, _API, _OLD)


__all__ = sorted(_API)
