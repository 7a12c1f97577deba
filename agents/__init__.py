"""agents package: the BYOG model and what is done with it, one room a concept.

* ``agents.config`` (``ModelConfig``, the registries of objectives, presets, sizes) and
  ``agents.errors``: torch-free leaves;
* ``agents.model``: ``BYOGAgent`` and its pieces (encoder, LM, predictor, objectives, losses,
  text, KV cache, decode plan, slot rule, monitors, HF layout);
* ``agents.obs``: observation encoders (their own registry) and ``agents.obs.embed``;
* ``agents.training``: the trainer (``python -m agents.training``, ``byog-train``);
* ``agents.narrate``: live narration, single and vector (``python -m agents.narrate``);
* ``agents.imagine``: the world model and imagination (``python -m agents.imagine``);
* ``agents.view``: the HTML narration viewer.

Heavy names are imported lazily, so ``import agents`` and the leaf modules ``agents.config``
and ``agents.errors`` load neither torch nor transformers (tested); ``agents.model.text``,
``agents.obs`` and the model modules do. The old flat module paths (``agents.text``,
``agents.world_model``...) keep importing, with a ``DeprecationWarning`` (:mod:`agents._moved`).
"""
from __future__ import annotations

from typing import Any

from agents import _moved

_moved.install()

_LAZY = {
    "BYOGAgent": "agents.model.agent",
    "ModelConfig": "agents.config",
    "make_model_config": "agents.config",
    "AgentsError": "agents.errors",
    "ModelError": "agents.errors",
    "load_agent": "agents.training.loading",
}


def __getattr__(name: str) -> Any:
    return _moved.package_attribute(__name__, name, _LAZY, {})
