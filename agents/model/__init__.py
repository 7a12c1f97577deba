"""The BYOG model: :class:`~agents.model.agent.BYOGAgent` and the pieces it is built from.

* ``agent``: ``BYOGAgent`` (``training_step -> (loss, metrics)``, ``evaluate``, ``narrate``,
  save/load) and its ``Evaluation``;
* ``encoder`` (``NarrationEncoder``: frames + tokens -> narration), ``lm`` (GPT-NeoX roles,
  ``TokenLM``), ``decode_plan`` + ``kv_cache`` (the fused CPU decode step and its cache),
  ``predictor``, ``objectives`` (predictor losses, registered), ``losses`` (loss/mask/EMA
  functions), ``slot_rule`` (the slot format narration keeps), ``text`` (tokenizer, slots),
  ``monitors`` (every metric), ``lora``, ``hf`` (the Hugging Face layout), ``weights``,
  ``accel`` (autocast, compile).

``from agents.model import BYOGAgent`` is the public path; it is imported on first use, so
``import agents.model.text`` does not build the agent module. Names the old single module
``agents.model`` held besides (``select_rows``, ``WEIGHTS``...) still resolve, with a
``DeprecationWarning`` naming ``agents.model.agent``.
"""
from __future__ import annotations

from typing import Any

from agents._moved import package_attribute

_API = {"BYOGAgent": "agents.model.agent", "Evaluation": "agents.model.agent"}
_OLD_MODULE = "agents.model.agent"  # what ``agents.model`` was before it became this package
_OLD_NAMES = frozenset({  # the old module's other names: they warn
    "CONFIG", "L", "M", "ModelConfig", "ModelError", "NarrationEncoder", "ObjectiveInputs",
    "ObjectiveOutput", "ObsEncoder", "Predictor", "SlotRule", "SlotTrack", "TOKENIZER_DIR",
    "TokenLM", "WEIGHTS", "_as_long", "_eval_mode", "build_gpt_neox", "build_obs_encoder",
    "get_objective", "load_tokenizer", "narration_rule", "save_tokenizer", "select_rows",
    "slot_annotations", "special_ids",
})


def __getattr__(name: str) -> Any:
    return package_attribute(__name__, name, _API, _OLD_MODULE, _OLD_NAMES)


__all__ = sorted(_API)
