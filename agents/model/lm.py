"""GPT-NeoX language models for the encoder and the predictor.

``build_gpt_neox`` makes the ``transformers`` model (a tiny config built locally, or a local
pretrained checkpoint); :class:`TokenLM` is one *role's* view of such a model (encoder,
predictor, EMA target): token embeddings with trainable special-token rows, the layer stack run
teacher-forced or one position at a time with a KV cache, and logits.

Why our own layer loop instead of ``GPTNeoXForCausalLM.forward``: sampling makes one call per
token position, and the stock forward spends most of a tiny model's step building masks; the
loop also lets gated cross-attention blocks sit between the layers and lets two LoRA adapters
share one base model (the loop calls the peft-wrapped layers directly).

Two paths through the layers, the same computation (allclose: only the rounding differs;
``tests/test_model_kvcache.py::test_decode_path_matches_teacher_forced`` holds them equal):

* the **teacher-forced / training path** (no cache, or any cache with autograd on) calls the
  ``transformers`` GPT-NeoX layers themselves, unchanged: the readable reference;
* the **cached decode path** (a :class:`agents.model.kv_cache.KVCache` with autograd off: sampling,
  live narration, forecasts) runs the hand-fused restatement of the layer in
  :mod:`agents.model.decode_plan`, the runtime default on CPU (see that module for what it fuses).

Why not ``DynamicCache`` (the cache of the first version) or transformers' ``StaticCache``: see
:mod:`agents.model.kv_cache`; :class:`KVCache` still IS a transformers ``Cache``, so the stock layers'
``update`` calls and ``get_seq_length`` / ``crop`` work on it unchanged.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn
from transformers import Cache, GPTNeoXConfig, GPTNeoXForCausalLM

from agents.errors import ModelError  # re-exported: the old import path
from agents.model.decode_plan import DecodePlan, LayerHook
from agents.model.kv_cache import KVCache

if TYPE_CHECKING:
    from agents.config import LMConfig


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
        from agents.model.weights import check_dir

        path = Path(cfg.pretrained_path).expanduser()
        # a hub snapshot's files are links into its cache repo's blobs/: allowed there only
        check_dir(path, what="lm.pretrained_path", error=ModelError)
        if not (path / "config.json").is_file():
            raise ModelError(
                f"lm.pretrained_path {str(path)!r} is not a checkpoint directory (no config.json); "
                "pass a local directory written by save_pretrained or an HF cache snapshot."
            )
        if torch.get_default_device().type == "meta":  # shapes only (agents.model.weights.check_weights)
            model = GPTNeoXForCausalLM(GPTNeoXConfig.from_pretrained(str(path), local_files_only=True))
        else:
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
        return self.embedder()(ids)

    def embedder(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """:meth:`embed` with the special rows' delta table built once (for per-token loops)."""
        delta = torch.cat([self.delta_in, self.delta_in.new_zeros(1, self.hidden_size)])
        emb, rows = self.core.gpt_neox.embed_in, self.special_rows
        return lambda ids: emb(ids) + delta[rows[ids]]

    # tables up to this many elements are folded per sampling call (a pretrained 50k x 512
    # vocabulary is not: it keeps the unfolded ops rather than copy 100 MB per call)
    FOLD_LIMIT = 1 << 22

    def token_io(self) -> tuple[Callable[[torch.Tensor], torch.Tensor],
                                Callable[[torch.Tensor], torch.Tensor]]:
        """(embed, logits) for a per-token loop under ``no_grad``, with the special rows' deltas
        folded into one embedding table and one output matrix when both are plain modules and
        small (one op each per token instead of four and three; the same sums, rounded
        differently for the logits). The folded copies are kept while the weights are unchanged
        (same storage, same version counter: an optimizer step or a load bumps it), so live
        narration does not refold them every frame."""
        self._activate()
        emb, head = self.core.gpt_neox.embed_in, self.core.lm_head
        if (type(emb) is not nn.Embedding or type(head) is not nn.Linear or head.bias is not None
                or emb.max_norm is not None or emb.weight.numel() > self.FOLD_LIMIT
                or head.weight.numel() > self.FOLD_LIMIT):
            return self.embedder(), self.logits
        key = tuple((t.data_ptr(), t._version, t.dtype)
                    for t in (emb.weight, self.delta_in, head.weight, self.delta_out))
        cached = getattr(self, "_io_cache", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        pad = self.delta_in.new_zeros(1, self.hidden_size)
        table = emb.weight + torch.cat([self.delta_in, pad])[self.special_rows]  # [V, D]
        w_out = head.weight.index_add(0, self.special_ids, self.delta_out).T  # [D, V]
        io = (lambda ids: F.embedding(ids, table)), (lambda h: h @ w_out)
        if not torch.is_grad_enabled():  # folded without a graph: safe to reuse
            object.__setattr__(self, "_io_cache", (key, io))
        return io

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """h [..., D] -> logits [..., V]."""
        self._activate()
        z = self.core.lm_head(h)
        extra = h @ self.delta_out.T  # [..., n_special]
        return z.index_add(-1, self.special_ids, extra)

    def _rope(self, h: torch.Tensor, start: int, L: int) -> tuple[torch.Tensor, torch.Tensor]:
        """RoPE (cos, sin) [1, L, r] for positions start..start+L-1, from a table built once
        (sampling calls the model once per position; rebuilding the table is pure overhead)."""
        tab = self.rope_tables(h, start + L)
        return tab[0][:, start:start + L], tab[1][:, start:start + L]

    def rope_tables(self, h: torch.Tensor, n: int) -> tuple[torch.Tensor, ...]:
        """RoPE tables for positions 0..N-1 (N >= n), built once, outside inference mode (the
        training path may save them for backward).

        (cos [1, N, r], sin [1, N, r]) for the stock layers; for the decode path
        (cos [N, 1, 1, r], signed sin [N, 1, 1, r], perm [r]) with
        ``rotate_half(x) * sin == x[..., perm] * sin_signed`` (``perm`` = the half-roll,
        ``sin_signed = (-sin[:r/2], sin[r/2:])``), and rot complex [N, 1, 1, r/2] = e^{i theta}
        for interleaved channel pairs.
        """
        tab = getattr(self, "_rope_table", None)
        if tab is None or tab[0].shape[1] < n or tab[0].device != h.device \
                or tab[0].dtype != h.dtype:
            n = max(n, 1024)
            with torch.inference_mode(False), torch.no_grad():
                pos = torch.arange(n, device=h.device).unsqueeze(0)
                cos, sin = self.core.gpt_neox.rotary_emb(h, position_ids=pos)  # [1, n, r]
                r = cos.shape[-1]
                sign = torch.ones(r, dtype=sin.dtype, device=sin.device)
                sign[: r // 2] = -1
                perm = torch.arange(r, device=h.device).roll(r // 2)  # x[perm] = x.roll(r/2)
                rot = torch.complex(cos[0, :, : r // 2], sin[0, :, : r // 2])  # e^{i theta}
                tab = (cos, sin, cos[0, :, None, None].clone(),
                       (sin[0] * sign)[:, None, None].clone(), perm, rot[:, None, None])
            object.__setattr__(self, "_rope_table", tab)
        return tab

    def new_cache(self, capacity: int = 0) -> KVCache:
        """An empty KV cache for this LM (``capacity``: positions to preallocate, 0 = grow)."""
        return KVCache(self.core.config.num_hidden_layers, capacity)

    def hidden(
        self,
        x: torch.Tensor,
        *,
        cache: Cache | None = None,
        start: int = 0,
        layer_hook: LayerHook | None = None,
        positions: torch.Tensor | None = None,
        span: int = 0,
    ) -> torch.Tensor:
        """Run the layer stack on input embeddings.

        Args:
            x: float [B, L, D] input embeddings for positions ``start .. start+L-1``.
            cache: KV cache holding positions ``< start`` (updated in place), or None for a
                teacher-forced pass from position 0. A :class:`KVCache` with autograd off
                takes the lean decode path (see the module docstring).
            start: Position of ``x[:, 0]``.
            layer_hook: Called as ``hook(i, hidden)`` before layer ``i`` (fusion blocks).
            positions: Long [B], each row at its own positions ``positions[b] ..`` (a
                :class:`KVCache` with autograd off; ``start`` is then ignored), attending to
                the first ``span`` cache slots masked per row (see ``DecodePlan.__call__``).

        Returns:
            Final hidden states [B, L, D] (after the final layer norm).
        """
        self._activate()
        if positions is not None:  # vector narration: rows at their own positions
            if not isinstance(cache, KVCache) or torch.is_grad_enabled():
                raise ModelError("Per-row positions need a KVCache and autograd off.")
            return self._decode(x, cache, start, layer_hook, positions, span)
        if cache is not None and start != cache.get_seq_length():
            raise ModelError(f"KV cache holds {cache.get_seq_length()} positions, asked for {start}.")
        if isinstance(cache, KVCache):
            if not torch.is_grad_enabled():
                return self._decode(x, cache, start, layer_hook)
            if cache.plan is not None:
                raise ModelError(
                    "This KV cache was filled with autograd off (the decode path's key layout); "
                    "extend it under torch.no_grad, or start a new cache for a pass with autograd.")
        gpt = self.core.gpt_neox
        L = x.shape[1]
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

    def _decode(self, x: torch.Tensor, cache: KVCache, start: int,
                layer_hook: LayerHook | None, positions: torch.Tensor | None = None,
                span: int = 0) -> torch.Tensor:
        """The cached path: the layers bound once per cache (:class:`agents.model.decode_plan.DecodePlan`)."""
        plan = cache.plan
        if plan is None or plan.lm is not self:
            if cache.get_seq_length():
                raise ModelError(
                    "This KV cache was filled by another model or with autograd on (the stock "
                    "layers' layout); keep extending it the same way, or start a new cache.")
            plan = cache.plan = self._current_plan(x)
        return plan(x, cache, start, layer_hook, self.core.training, positions, span)

    def _current_plan(self, x: torch.Tensor) -> DecodePlan:
        """The decode plan of the weights as they are now, shared by the caches made since: live
        narration starts a new cache at every window slide, and folding the weights again
        (0.67 ms for the tiny model, one thread) cost ~0.15 ms per frame with an 8-frame window.
        A parameter changed in place (an optimiser or EMA step, ``load_state_dict``) bumps its
        version counter, a replaced or moved one its storage: either makes a new plan."""
        key = (x.device, x.dtype, tuple((p.data_ptr(), p._version) for p in self.parameters()))
        if getattr(self, "_plan_key", None) != key:
            self._plan, self._plan_key = DecodePlan(self, x), key
        return self._plan


def sample_tokens(
    logits: torch.Tensor,
    *,
    greedy: bool = False,
    temperature: float = 1.0,
    top_k: int = 0,
    banned: torch.Tensor | None = None,
    generator: torch.Generator | Callable[[torch.Tensor], torch.Tensor] | None = None,
    nil_rule: tuple[int, float] | None = None,
) -> torch.Tensor:
    """Choose one token per row: logits [B, V] -> Long [B].

    ``banned`` (Long [n]) ids are never chosen (e.g. ``<pad>``/``<bos>``); ``top_k`` > 0 keeps
    the k most likely tokens; ``greedy`` takes the argmax. ``generator``: a torch generator, or
    a callable ``probs [B, V] -> Exp(1) noise [B, V]`` (per-row noise sources, e.g.
    ``agents.model.losses.RowNoise``, so that a row's draw does not depend on the batch around it).
    ``nil_rule = (nil_id, p)`` changes greedy decoding only: ``nil_id`` iff its probability is
    > p, else the most likely other token (plain argmax lets ``<nil>`` win whenever the word
    mass is split over several words, even when a word is more likely than not).
    """
    if banned is not None and banned.numel():
        logits = logits.index_fill(-1, banned, float("-inf"))
    if (greedy or temperature <= 0) and nil_rule is not None:
        nil_id, p = nil_rule
        silent = F.softmax(logits, dim=-1)[:, nil_id] > p
        word = logits.index_fill(-1, torch.tensor([nil_id], device=logits.device),
                                 float("-inf")).argmax(-1)
        return word.masked_fill(silent, nil_id)
    if greedy or temperature <= 0:
        return logits.argmax(-1)
    if temperature != 1.0:  # dividing by 1 is exact: skip the op
        logits = logits / temperature
    if 0 < top_k < logits.shape[-1]:  # k >= V keeps every token
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = F.softmax(logits, dim=-1)
    # For one sample, torch.multinomial(probs, 1) draws argmax(probs / Exp(1) noise) (the
    # exponential race: an exact sample); on CPU this gives its very draw from the same
    # generator state, without its per-call input checks (tests/test_model_kvcache.py checks).
    if generator is not None and not isinstance(generator, torch.Generator):
        return (probs / generator(probs)).argmax(-1)
    return (probs / torch.empty_like(probs).exponential_(1.0, generator=generator)).argmax(-1)
