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
# the old module's other names -> where they live now (they warn)
_OLD = {
    "CONFIG": "agents.model.agent",
    "ModelConfig": "agents.config",
    "ModelError": "agents.errors",
    "NarrationEncoder": "agents.model.encoder",
    "ObjectiveInputs": "agents.model.objectives",
    "ObjectiveOutput": "agents.model.objectives",
    "ObsEncoder": "agents.obs",
    "Predictor": "agents.model.predictor",
    "SlotRule": "agents.model.slot_rule",
    "SlotTrack": "agents.model.slot_rule",
    "TOKENIZER_DIR": "agents.model.agent",
    "TokenLM": "agents.model.lm",
    "WEIGHTS": "agents.model.agent",
    "_as_long": "agents.model.batch",
    "_eval_mode": "agents.model.batch",
    "build_gpt_neox": "agents.model.lm",
    "build_obs_encoder": "agents.obs",
    "get_objective": "agents.model.objectives",
    "load_tokenizer": "agents.model.text",
    "narration_rule": "agents.model.slot_rule",
    "save_tokenizer": "agents.model.text",
    "select_rows": "agents.model.batch",
    "slot_annotations": "agents.model.text",
    "special_ids": "agents.model.text",
}


def __getattr__(name: str) -> Any:
    return package_attribute(__name__, name, _API, _OLD)


__all__ = sorted(_API)
