"""Agents in Hugging Face conventions: the layout ``BYOGAgent.save_pretrained`` writes.

One agent directory, which ``huggingface_hub.upload_folder`` uploads as is::

    config.json        {"model_type": "byog", "architectures": ["BYOGAgent"], "byog": <ModelConfig>,
                        "trained_on": <dataset identity>, "format_version": 2, "exports": {...}}
    model.safetensors  every weight of the agent (obs encoder, projector, LMs, predictor, target)
    tokenizer/         the narration tokenizer (AutoTokenizer loads it)
    narrator/          the narrating LM as a stock GPT-NeoX: ``AutoModelForCausalLM`` and
                       ``AutoTokenizer`` load it (special-token rows folded in); absent for
                       cross-attention fusion, which a stock GPT-NeoX cannot hold
    predictor/         the predictor's LM, likewise (when the agent has a predictor)
    narrator_lora/     with LoRA: the encoder adapter as a peft adapter on the base checkpoint
    predictor_lora/    (``PeftModel.from_pretrained(base, dir)``); narrator/ holds it merged
    README.md          a model card: data, config, metrics, how to load

Safetensors only. Directories written before this layout (``model_config.json`` instead of
``config.json``, no LM exports) still load: :func:`read_agent_config` reads either.

What the exported LM computes: given token ids it returns the logits our ``TokenLM`` gives on
the same ids (tested). Our narrator also adds a frame embedding at the first position of each
frame's slot (``inputs_embeds``); that projection stays in ``model.safetensors``.
"""
from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import torch

from agents.errors import ModelError

CONFIG = "config.json"
OLD_CONFIG = "model_config.json"
CARD = "README.md"
FORMAT_VERSION = 2
LM_DIRS = {"narrator": "encoder", "predictor": "predictor"}  # export dir -> agent attribute


def read_agent_config(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model config dict, the rest of config.json) of an agent directory, new or old layout.

    Raises:
        ModelError: neither ``config.json`` (with ``model_type: byog``) nor ``model_config.json``.
    """
    path = Path(path)
    if (path / CONFIG).is_file():
        d = _json_object(path / CONFIG)
        if d.get("model_type") == "byog" and isinstance(d.get("byog"), dict):
            return d["byog"], d
    if (path / OLD_CONFIG).is_file():
        return _json_object(path / OLD_CONFIG), {}
    raise ModelError(f"{str(path)!r} is not a BYOG checkpoint (needs {CONFIG} with "
                     f"model_type 'byog', or {OLD_CONFIG}); pass a directory written by "
                     "BYOGAgent.save_pretrained.")


def _json_object(f: Path) -> dict[str, Any]:
    from collect.untrusted import read_json_object

    return read_json_object(f, what="checkpoint", error=ModelError)


def write_hf_files(agent: Any, path: str | Path, *, trained_on: dict[str, Any] | None = None,
                   metrics: dict[str, Any] | None = None, train_config: dict[str, Any] | None = None,
                   ) -> dict[str, str]:
    """Write config.json, the stock-LM exports and the model card beside ``model.safetensors``.

    Returns:
        What was exported and where (``{"narrator": "narrator", ...}``; a reason instead of a
        directory for what could not be).
    """
    path = Path(path)
    exports: dict[str, str] = {}
    for name in LM_DIRS:
        if _lm_of(agent, name) is None:
            continue
        try:
            export_lm(agent, path / name, role=name)
            exports[name] = name
        except ModelError as e:
            exports[name] = f"not exported: {e}"
        if agent.shared_lm is not None:
            save_lora_adapter(agent, path / f"{name}_lora", role=name)
            exports[f"{name}_lora"] = f"{name}_lora"
    trained_on = trained_on if trained_on is not None else getattr(agent, "trained_on", None)
    cfg = {"model_type": "byog", "architectures": ["BYOGAgent"], "format_version": FORMAT_VERSION,
           "byog": agent.cfg.to_dict(), "trained_on": trained_on or {}, "exports": exports}
    (path / CONFIG).write_text(json.dumps(cfg, indent=2, default=str))
    (path / CARD).write_text(model_card(agent, exports, trained_on or {}, metrics or {},
                                        train_config or {}))
    from collect.durable import make_durable

    make_durable(path)  # the umask's modes (safetensors writes 0600), fsynced
    return exports


def _lm_of(agent: Any, role: str) -> Any:
    part = getattr(agent, LM_DIRS[role], None)
    return None if part is None else part.tlm


def export_lm(agent: Any, path: str | Path, *, role: str = "narrator") -> Path:
    """Save one of the agent's LMs as a stock ``GPTNeoXForCausalLM`` + tokenizer directory.

    The special tokens' trainable delta rows are added into the embedding and output matrices;
    a LoRA adapter is merged into a copy of the base. ``AutoModelForCausalLM.from_pretrained``
    then gives, on token ids, the logits of our ``TokenLM``.

    Raises:
        ModelError: a cross-attention narrator (its gated blocks sit between the layers: a
            stock GPT-NeoX cannot hold them), or an agent without that LM.
    """
    if role not in LM_DIRS:
        raise ModelError(f"Unknown LM {role!r}; choose one of {', '.join(LM_DIRS)}.")
    tlm = _lm_of(agent, role)
    if tlm is None:
        raise ModelError(f"This agent has no {role} LM (a captioner has no predictor).")
    if role == "narrator" and agent.cfg.fusion == "xattn":
        raise ModelError("the narrator uses gated cross-attention (byog-xattn), which a stock "
                         "GPT-NeoX cannot hold; use BYOGAgent.from_pretrained for the whole agent.")
    with torch.no_grad():
        if tlm.adapter is not None:  # LoRA: merge this role's adapter into a copy of the base
            from agents.model.lm import causal_lm_core

            peft_model = copy.deepcopy(tlm.lm)
            lm = causal_lm_core(peft_model.merge_and_unload(adapter_names=[tlm.adapter]))
        else:
            lm = copy.deepcopy(tlm.core)
        ids = tlm.special_ids
        lm.get_input_embeddings().weight[ids] += tlm.delta_in.to(lm.dtype)
        lm.get_output_embeddings().weight[ids] += tlm.delta_out.to(lm.dtype)
    path = Path(path)
    if path.exists():
        shutil.rmtree(path)
    lm.config.architectures = ["GPTNeoXForCausalLM"]
    from transformers.utils import logging as hf_logging

    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a "Writing model shards" bar per checkpoint is noise
    try:
        lm.save_pretrained(str(path), safe_serialization=True)
    finally:
        if bar:
            hf_logging.enable_progress_bar()
    agent.tokenizer.save_pretrained(str(path))
    return path


def save_lora_adapter(agent: Any, path: str | Path, *, role: str) -> Path:
    """Save a LoRA agent's adapter for ``role`` as a peft adapter directory
    (``adapter_config.json`` + ``adapter_model.safetensors``; base = ``lm.pretrained_path``)."""
    tlm = _lm_of(agent, role)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tlm.lm.save_pretrained(str(tmp), selected_adapters=[tlm.adapter], safe_serialization=True)
    # peft writes adapters other than "default" into a subdirectory named after them
    src = tmp / tlm.adapter if (tmp / tlm.adapter).is_dir() else tmp
    if path.exists():
        shutil.rmtree(path)
    shutil.move(str(src), str(path))
    shutil.rmtree(tmp, ignore_errors=True)
    return path


def model_card(agent: Any, exports: dict[str, str], trained_on: dict[str, Any],
               metrics: dict[str, Any], train_config: dict[str, Any]) -> str:
    """A model card (``README.md`` with YAML front matter) describing data, config and metrics."""
    cfg = agent.cfg
    n_params = sum(p.numel() for p in agent.parameters())
    env = trained_on.get("env_id") or "unknown"
    lines = ["---", "library_name: transformers", "tags:", "- byog", "- narration",
             "- gpt_neox", "pipeline_tag: text-generation", "---", "",
             "# BYOG narrating agent", "",
             (f"A narrating agent ({n_params:,} parameters) trained with grounding + BYOG on frames "
             f"of `{env}`: it writes {cfg.text.tokens_per_frame} tokens per frame."), "",
             "## Data", ""]
    if trained_on:
        keys = ("env_id", "frame_shape", "format_version", "annotator_version", "vocab_size",
                "vocab_hash")
        lines += [f"- {key}: `{trained_on[key]}`" for key in keys if trained_on.get(key) is not None]
    else:
        lines.append("- not recorded (saved outside a training run)")
    lines += ["", "## Config", "",
              (f"- fusion: `{cfg.fusion}`; LM: {cfg.lm.num_layers} layers, hidden {cfg.lm.hidden_size}"
              f"{', LoRA on ' + str(cfg.lm.pretrained_path) if cfg.lora.enabled else ''}"),
              (f"- observation encoder: `{cfg.obs.kind}`; predictor: "
              f"`{cfg.predictor.mode if cfg.uses_predictor else 'none (captioner)'}`"),
              f"- loss weights: ground {cfg.loss.w_ground}, byog {cfg.loss.w_byog}"]
    if train_config:
        lines.append(f"- training: {train_config.get('steps')} steps, preset "
                     f"`{train_config.get('preset')}`, size `{train_config.get('size')}`, "
                     f"seed {train_config.get('seed')}")
    lines += ["", "## Metrics", ""]
    shown = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
    lines += [f"- {k}: {v:.4g}" for k, v in sorted(shown.items())] or [
        "- none recorded (see the run's summary.json)"]
    lines += ["", "## Files", "",
              ("- `model.safetensors`, `config.json`, `tokenizer/`: the whole agent: "
              "`BYOGAgent.from_pretrained(dir)`, then `agent.describe(frames)` gives sentences "
              "per frame.")]
    for name, where in exports.items():
        if where == name and not name.endswith("_lora"):
            lines.append(f"- `{name}/`: the {name}'s LM as a stock GPT-NeoX: "
                         f"`AutoModelForCausalLM.from_pretrained(dir + '/{name}')` and "
                         f"`AutoTokenizer.from_pretrained(dir + '/{name}')` (frame embeddings are "
                         "not part of it).")
        elif name.endswith("_lora"):
            lines.append(f"- `{name}/`: the peft LoRA adapter on `{cfg.lm.pretrained_path}`.")
        else:
            lines.append(f"- `{name}`: {where}")
    return "\n".join(lines) + "\n"


def describe(agent: Any, frames: Any, *, greedy: bool = True, **kwargs: Any) -> list:
    """Sentences per frame: frames uint8 ``[T, H, W, 3]`` -> ``T`` lists of sentences, or
    ``[B, T, H, W, 3]`` -> ``B`` such lists.

    Narrates as live narration does (``agents.narrate.narrator.Narrator``: the context bounded by the
    training window, re-encoded as it slides), so a clip of any length works and each frame
    is narrated in a context like those of training; while the clip fits the window this is
    exactly the offline ``narrate``. Extra keyword arguments go to ``Narrator`` (``window``,
    ``temperature``, ``top_k``, ``seed``).
    """
    from agents.model.text import unslot
    from agents.narrate.narrator import Narrator

    x = torch.as_tensor(frames)
    if x.dtype != torch.uint8 or x.dim() not in (4, 5) or x.shape[-1] != 3:
        raise ModelError(f"describe wants uint8 frames [T, H, W, 3] or [B, T, H, W, 3], got "
                         f"{tuple(x.shape)} {x.dtype}.")
    single = x.dim() == 4
    x = x[None] if single else x
    narrator = Narrator(agent, batch_size=x.shape[0], greedy=greedy, **kwargs)
    narrator.reset()
    ids = torch.stack([narrator.step(x[:, t]).ids.cpu() for t in range(x.shape[1])], 1)  # [B, T, k]
    out = unslot(ids, agent.tokenizer)
    return out[0] if single else out


def update_card(agent: Any, path: str | Path, *, trained_on: dict[str, Any] | None = None,
                metrics: dict[str, Any] | None = None,
                train_config: dict[str, Any] | None = None) -> None:
    """Rewrite an agent directory's ``config.json`` (``trained_on``) and model card with what a
    training run knows (data identity, config, latest validation metrics); the weights and LM
    exports are left as they are."""
    path = Path(path)
    cfg = json.loads((path / CONFIG).read_text())
    cfg["trained_on"] = trained_on or cfg.get("trained_on") or {}
    (path / CONFIG).write_text(json.dumps(cfg, indent=2, default=str))
    (path / CARD).write_text(model_card(agent, cfg.get("exports") or {}, cfg["trained_on"],
                                        metrics or {}, train_config or {}))
