"""One frozen pretrained GPT-NeoX base shared by encoder and predictor through peft LoRA adapters.

Adapters: ``encoder`` and ``predictor`` (trainable) and, with an EMA target, ``target`` (a
frozen EMA copy of ``encoder``). Adapters are switched with :func:`agents.model.lm.activate_adapter`,
which leaves ``requires_grad`` alone (peft's ``set_adapter`` would freeze the other adapter
and silently zero its gradient when both forwards share one ``backward()``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from agents.config import LoRAConfig

TRAINABLE_ADAPTERS = ("encoder", "predictor")


def make_lora_model(base: nn.Module, cfg: LoRAConfig, *, with_target: bool) -> nn.Module:
    """Wrap ``base`` with adapters ``encoder``, ``predictor`` (+ ``target``); base frozen."""
    from peft import LoraConfig, get_peft_model  # lazy: importing peft takes seconds

    lc = LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                    target_modules=list(cfg.target_modules), bias="none")
    model = get_peft_model(base, lc, adapter_name="encoder")
    model.add_adapter("predictor", lc)
    if with_target:
        model.add_adapter("target", lc)
        copy_adapter(model, "encoder", "target")
    for name, p in model.named_parameters():
        p.requires_grad = any(f".{a}." in name for a in TRAINABLE_ADAPTERS) and ".lora_" in name
    return model


def adapter_parameters(model: nn.Module, adapter: str) -> dict[str, torch.Tensor]:
    """The LoRA tensors of one adapter, keyed by their name with the adapter name removed."""
    out = {}
    for name, p in model.named_parameters():
        if ".lora_" in name and f".{adapter}." in name:
            out[name.replace(f".{adapter}.", ".")] = p
    return out


@torch.no_grad()
def copy_adapter(model: nn.Module, src: str, dst: str) -> None:
    """Copy adapter ``src``'s weights into adapter ``dst``."""
    a, b = adapter_parameters(model, src), adapter_parameters(model, dst)
    for key, p in b.items():
        p.copy_(a[key])


def base_parameters(model: nn.Module) -> dict[str, torch.Tensor]:
    """Parameters of the shared base model (everything that is not a LoRA tensor)."""
    return {n: p for n, p in model.named_parameters() if ".lora_" not in n}
