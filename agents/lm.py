"""GPT-NeoX language models for the encoder and the predictor.

``build_gpt_neox`` makes the ``transformers`` model (a tiny config built locally, or a local
pretrained checkpoint); :class:`TokenLM` is one *role's* view of such a model (encoder,
predictor, EMA target): token embeddings with trainable special-token rows, the layer stack run
teacher-forced or one position at a time with a ``DynamicCache``, and logits.

Why our own layer loop instead of ``GPTNeoXForCausalLM.forward``: sampling makes one call per
token position, and the stock forward spends most of a tiny model's step building masks; the
loop also lets gated cross-attention blocks sit between the layers and lets two LoRA adapters
share one base model (the loop calls the peft-wrapped layers directly).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch
import torch.nn.functional as F
from torch import nn
from transformers import DynamicCache, GPTNeoXConfig, GPTNeoXForCausalLM

if TYPE_CHECKING:
    from agents.config import LMConfig


class ModelError(ValueError):
    """A bad model config, checkpoint or input; the message names the problem and the fix."""


def build_gpt_neox(cfg: LMConfig, vocab_size: int) -> GPTNeoXForCausalLM:
    """Build the GPT-NeoX causal LM ``cfg`` describes, with at least ``vocab_size`` rows.

    Args:
        cfg: LM config; ``cfg.pretrained_path`` (a local checkpoint directory or HF cache
            snapshot) loads weights, otherwise a fresh model of the configured shape is built.
        vocab_size: Tokenizer size; the embeddings are resized when the checkpoint has fewer
            rows (special tokens added to a pretrained tokenizer).

    Returns:
        A float32 ``GPTNeoXForCausalLM`` using SDPA attention.
    """
    if cfg.pretrained_path:
        path = Path(cfg.pretrained_path).expanduser()
        if not (path / "config.json").is_file():
            raise ModelError(
                f"lm.pretrained_path {str(path)!r} is not a checkpoint directory (no config.json); "
                "pass a local directory written by save_pretrained or an HF cache snapshot."
            )
        model = GPTNeoXForCausalLM.from_pretrained(
            str(path), local_files_only=True, dtype=torch.float32, attn_implementation="sdpa"
        )
        if model.get_input_embeddings().num_embeddings < vocab_size:
            model.resize_token_embeddings(vocab_size)
    else:
        config = GPTNeoXConfig(
            vocab_size=vocab_size,
            hidden_size=cfg.hidden_size,
            num_hidden_layers=cfg.num_layers,
            num_attention_heads=cfg.num_heads,
            intermediate_size=cfg.intermediate_size or 4 * cfg.hidden_size,
            max_position_embeddings=cfg.max_positions,
            hidden_dropout=cfg.dropout,
            attention_dropout=cfg.dropout,
            rope_parameters={"rope_theta": 10000.0, "partial_rotary_factor": cfg.rotary_pct,
                             "rope_type": "default"},
            tie_word_embeddings=False,
            use_parallel_residual=True,
        )
        config._attn_implementation = "sdpa"
        model = GPTNeoXForCausalLM(config)
    return model.float()


def causal_lm_core(model: nn.Module) -> GPTNeoXForCausalLM:
    """The ``GPTNeoXForCausalLM`` inside a model, looking through a peft wrapper."""
    inner = model
    while not isinstance(inner, GPTNeoXForCausalLM):
        nxt = getattr(inner, "model", None) or getattr(inner, "base_model", None)
        if nxt is None or nxt is inner:
            raise ModelError(f"{type(model).__name__} does not wrap a GPTNeoXForCausalLM.")
        inner = nxt
    return inner


def activate_adapter(model: nn.Module, name: str) -> None:
    """Make peft LoRA adapter ``name`` the active one WITHOUT touching ``requires_grad``.

    peft's ``set_adapter`` also freezes every other adapter, so switching adapters between two
    forwards of one training step would silently zero the first adapter's gradient. Setting
    the active adapter on each tuner layer keeps the trainable flags as they are.
    """
    from peft.tuners.tuners_utils import BaseTunerLayer  # lazy: peft import costs seconds

    if getattr(model, "_byog_active_adapter", None) == name:
        return
    for module in model.modules():
        if isinstance(module, BaseTunerLayer):
            module._active_adapter = [name]
    model._byog_active_adapter = name


# A hook called with (layer index, hidden [B, L, D]) before each GPT-NeoX layer: the gated
# cross-attention fusion plugs in here.
LayerHook = Callable[[int, torch.Tensor], torch.Tensor]


class TokenLM(nn.Module):
    """One role's view of a GPT-NeoX LM: embed tokens, run layers (cached or not), logits.

    The special tokens' embedding and unembedding rows get a trainable delta (zero at init), so
    they stay trainable when the base LM is frozen (LoRA mode) and start from the base rows.
    With ``adapter`` set, the shared peft model's adapter of that name is activated before
    each use.
    """

    def __init__(self, lm: nn.Module, *, special_ids: list[int], adapter: str | None = None,
                 register_lm: bool = True) -> None:
        super().__init__()
        if register_lm:
            self.lm = lm
        else:  # shared base (LoRA mode): registered once by the agent, not per role
            object.__setattr__(self, "lm", lm)
        object.__setattr__(self, "core", causal_lm_core(lm))
        self.adapter = adapter
        self.hidden_size = self.core.config.hidden_size
        self.vocab_size = self.core.get_output_embeddings().out_features
        n = len(special_ids)
        rows = torch.full((self.core.get_input_embeddings().num_embeddings,), n, dtype=torch.long)
        rows[torch.tensor(special_ids, dtype=torch.long)] = torch.arange(n)
        self.register_buffer("special_rows", rows, persistent=False)  # token id -> delta row
        self.register_buffer("special_ids", torch.tensor(special_ids, dtype=torch.long),
                             persistent=False)
        self.delta_in = nn.Parameter(torch.zeros(n, self.hidden_size))
        self.delta_out = nn.Parameter(torch.zeros(n, self.hidden_size))

    def _activate(self) -> None:
        if self.adapter is not None:
            activate_adapter(self.lm, self.adapter)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """ids Long [...] -> embeddings [..., D]."""
        base = self.core.gpt_neox.embed_in(ids)
        delta = torch.cat([self.delta_in, self.delta_in.new_zeros(1, self.hidden_size)])
        return base + delta[self.special_rows[ids]]

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """h [..., D] -> logits [..., V]."""
        self._activate()
        z = self.core.lm_head(h)
        extra = h @ self.delta_out.T  # [..., n_special]
        return z.index_add(-1, self.special_ids, extra)

    def _rope(self, h: torch.Tensor, start: int, L: int) -> tuple[torch.Tensor, torch.Tensor]:
        """RoPE (cos, sin) for positions start..start+L-1, from a table built once (sampling
        calls the model once per position; rebuilding the table each time is pure overhead)."""
        tab = getattr(self, "_rope_table", None)
        if tab is None or tab[0].shape[1] < start + L or tab[0].device != h.device \
                or tab[0].dtype != h.dtype:
            n = max(start + L, 1024)
            pos = torch.arange(n, device=h.device).unsqueeze(0)
            with torch.no_grad():
                tab = self.core.gpt_neox.rotary_emb(h, position_ids=pos)
            object.__setattr__(self, "_rope_table", tab)
        return tab[0][:, start:start + L], tab[1][:, start:start + L]

    def new_cache(self) -> DynamicCache:
        return DynamicCache(config=self.core.config)

    def hidden(
        self,
        x: torch.Tensor,
        *,
        cache: DynamicCache | None = None,
        start: int = 0,
        layer_hook: LayerHook | None = None,
    ) -> torch.Tensor:
        """Run the layer stack on input embeddings.

        Args:
            x: float [B, L, D] input embeddings for positions ``start .. start+L-1``.
            cache: KV cache holding positions ``< start`` (updated in place), or None for a
                teacher-forced pass from position 0.
            start: Position of ``x[:, 0]``.
            layer_hook: Called as ``hook(i, hidden)`` before layer ``i`` (fusion blocks).

        Returns:
            Final hidden states [B, L, D] (after the final layer norm).
        """
        self._activate()
        gpt = self.core.gpt_neox
        B, L, _ = x.shape
        if cache is not None and start != cache.get_seq_length():
            raise ModelError(f"KV cache holds {cache.get_seq_length()} positions, asked for {start}.")
        pos = torch.arange(start, start + L, device=x.device).unsqueeze(0)  # [1, L]
        mask = None  # SDPA: None = causal when L > 1 without past, all-visible for L == 1
        if cache is not None and start > 0 and L > 1:
            q = pos[0, :, None]
            kpos = torch.arange(start + L, device=x.device)[None, :]
            mask = (kpos <= q)[None, None]  # [1, 1, L, start+L]
        h = gpt.emb_dropout(x)
        pe = self._rope(h, start, L)
        for i, layer in enumerate(gpt.layers):
            if layer_hook is not None:
                h = layer_hook(i, h)
            h = layer(h, attention_mask=mask, position_ids=pos, layer_past=cache,
                      use_cache=cache is not None, position_embeddings=pe)
        return gpt.final_layer_norm(h)


def sample_tokens(
    logits: torch.Tensor,
    *,
    greedy: bool = False,
    temperature: float = 1.0,
    top_k: int = 0,
    banned: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Choose one token per row: logits [B, V] -> Long [B].

    ``banned`` (Long [n]) ids are never chosen (e.g. ``<pad>``/``<bos>``); ``top_k`` > 0 keeps
    the k most likely tokens; ``greedy`` takes the argmax.
    """
    if banned is not None and banned.numel():
        logits = logits.index_fill(-1, banned, float("-inf"))
    if greedy or temperature <= 0:
        return logits.argmax(-1)
    logits = logits / temperature
    if top_k > 0:
        kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = F.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
