"""agents package: the BYOG model (``agents.model.BYOGAgent``), its config, text and encoders.

Heavy names are imported lazily, so ``import agents`` and the leaf modules ``agents.config``
and ``agents.errors`` load neither torch nor transformers (tested); ``agents.text``,
``agents.obs`` and the model modules do.
"""
from __future__ import annotations

from typing import Any

_LAZY = {
    "BYOGAgent": "agents.model",
    "ModelConfig": "agents.config",
    "make_model_config": "agents.config",
    "AgentsError": "agents.errors",
    "ModelError": "agents.errors",
    "load_agent": "agents.training.loading",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'agents' has no attribute {name!r}")
