"""The cached decode path of the GPT-NeoX layers, hand-fused for CPU (the runtime default).

:class:`DecodePlan` restates ``GPTNeoXLayer.forward`` for a decode step, bound once per KV
cache: with a parallel residual and plain modules, ONE LayerNorm and ONE matmul give the qkv and
MLP inputs (LayerNorm affines folded into the weights); rotary is one in-place complex multiply
from a table indexed by position (q/k rotary channels interleaved in the folded weights); keys
and values go into the preallocated buffer (:class:`agents.model.kv_cache.KVCache`) with one in-place
copy; one query attends to the filled part of the buffer with two batched matmuls (faster than
SDPA's CPU kernel for one query), a multi-position feed uses SDPA with a causal flag or one small
mask; one-position steps write into per-layer buffers whose views are made once. A peft LoRA
layer (any non-plain module) is called as a module, with the unfused ops. Per token: ~20 tensor
ops a layer, no ``torch.cat`` over the cache, no mask, no host sync.

Why: sampling makes one model call per token position, and the stock forward spends most of a
tiny model's step building masks and calling modules. The stock transformers layers
(:meth:`agents.model.lm.TokenLM.hidden` without a cache) stay the readable reference; both give the
same hidden states up to rounding (``tests/test_model_kvcache.py``, every fused/unfused
variant).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import torch
import torch.nn.functional as F
from torch import nn
from transformers.activations import GELUActivation

from agents.model.kv_cache import KVCache


class RopeLM(Protocol):
    """What a plan reads of its LM (an :class:`agents.model.lm.TokenLM`): named here as a protocol so
    that this module, which the LM imports, never imports the LM back (no import circle)."""

    core: Any
    """The GPT-NeoX model (``core.gpt_neox``, ``core.config``)."""

    def rope_tables(self, h: torch.Tensor, n: int) -> tuple[torch.Tensor, ...]: ...


# A hook called with (layer index, hidden [B, L, D]) before each GPT-NeoX layer: the gated
# cross-attention fusion plugs in here.
LayerHook = Callable[[int, torch.Tensor], torch.Tensor]


class DecodePlan:
    """A ``TokenLM``'s GPT-NeoX layers bound for the cached decode path (one per KV cache).

    Per layer: plain ``nn.Linear`` / ``nn.LayerNorm`` become ``addmm`` / ``layer_norm`` calls
    on their live parameters (no module-call overhead; any other module, e.g. a peft LoRA
    layer, is called as is). With a parallel residual and plain modules, ``qkv(ln1(h))`` and
    ``fc1(ln2(h))`` are ONE matmul of the normalised ``h`` with ``[W_qkv * w1; W_fc1 * w2]``
    (biases ``W b_ln + b``), and the rotary channels of each head's q and k rows are
    interleaved so that ``rotate_half`` becomes one in-place complex multiply by ``e^{i theta}``
    (attention scores are dot products, invariant to a channel permutation applied to both q and
    k; the cache holds keys in that order, so a cache is only ever extended by its own plan).
    These folded weights are computed when a cache is first used and shared by the caches made
    while no parameter changes (``TokenLM._current_plan``); a cache (a narration state) must not
    outlive a change of the weights; ``NarrationEncoder.sample`` makes one per call.
    """

    def __init__(self, tlm: RopeLM, x: torch.Tensor) -> None:
        self.lm = tlm
        gpt = tlm.core.gpt_neox
        self.H = tlm.core.config.num_attention_heads
        self.emb_dropout = gpt.emb_dropout
        self.final_ln = _bound(gpt.final_layer_norm)
        self.zero = x.new_zeros(1, 1, 1)  # baddbmm's ignored input (beta = 0)
        cos = tlm.rope_tables(x, 1)[0]
        self.r = cos.shape[-1]
        self.layers = [self._bind(layer) for layer in gpt.layers]
        self.buffers: dict[int, list[tuple | None]] = {}  # batch size -> step buffers

    def _bind(self, layer: nn.Module) -> tuple:
        att, mlp = layer.attention, layer.mlp
        act = mlp.act.act if type(mlp.act) is GELUActivation else mlp.act  # unwrapped function
        ln1, ln2, qkv, fc1 = (layer.input_layernorm, layer.post_attention_layernorm,
                              att.query_key_value, mlp.dense_h_to_4h)
        fused = None
        if (layer.use_parallel_residual and type(ln1) is type(ln2) is nn.LayerNorm
                and type(qkv) is type(fc1) is nn.Linear and ln1.eps == ln2.eps
                and ln1.weight is not None and ln1.bias is not None
                and ln2.weight is not None and ln2.bias is not None and self.r % 2 == 0):
            with torch.no_grad(), torch.inference_mode(False):
                D, d, r = qkv.in_features, att.head_size, self.r
                order = torch.arange(3 * D).view(self.H, 3, d)
                inter = torch.arange(r).view(2, r // 2).T.reshape(r)  # 0, r/2, 1, r/2+1, ...
                order[:, :2, :r] = order[:, :2, inter]  # q and k rotary pairs side by side
                order = order.reshape(-1).to(qkv.weight.device)
                ws, bs = [], []
                for ln, lin, rows in ((ln1, qkv, order), (ln2, fc1, None)):
                    w = lin.weight if rows is None else lin.weight[rows]
                    b = w @ ln.bias
                    if lin.bias is not None:
                        b = b + (lin.bias if rows is None else lin.bias[rows])
                    ws.append(w * ln.weight)
                    bs.append(b)
                dense, fc2 = att.dense, mlp.dense_4h_to_h
                tail = None  # dense + fc2 + both residual adds as two addmm and one add
                if type(dense) is type(fc2) is nn.Linear and dense.bias is not None \
                        and fc2.bias is not None:
                    tail = (dense.weight.T, fc2.weight.T, dense.bias + fc2.bias)
                fused = (torch.cat(ws).T, torch.cat(bs), ln1.eps, tail)  # W^T [D, 3D + I], b
        return (_bound(ln1), _bound(qkv), _bound(att.dense), _bound(ln2), _bound(fc1), act,
                _bound(mlp.dense_4h_to_h), layer.use_parallel_residual, att.head_size,
                att.scaling, att.attention_dropout, layer.post_attention_dropout,
                layer.post_mlp_dropout, fused)

    def _buffers(self, B: int, x: torch.Tensor) -> list[tuple | None]:
        """Per fused layer, a one-position step's output buffer y [B, 3D + I] and its views
        (qkv [B, 1, H, 3, d], rotary pairs (complex), new keys+values [B, H, 1, 2, d], q
        [B, H, d], MLP input [B, I]): views made once, not per token. Nothing read from them
        outlives the step (the cache write and the attention/MLP ops copy what they need)."""
        bufs = self.buffers.get(B)
        if bufs is None:
            bufs = []
            for layer in self.layers:
                fused, d = layer[-1], layer[8]
                if fused is None:
                    bufs.append(None)
                    continue
                D3 = 3 * self.H * d
                with torch.inference_mode(False):  # writable in and out of inference mode
                    y = x.new_empty(B, fused[0].shape[1])
                qkv = y[:, :D3].view(B, 1, self.H, 3, d)
                rotc = torch.view_as_complex(qkv.view(B, 1, self.H, 3, d // 2, 2))
                bufs.append((y, qkv, rotc[:, :, :, :2, :self.r // 2],
                             qkv[:, :, :, 1:].transpose(1, 2), qkv[:, 0, :, 0], y[:, D3:]))
            self.buffers[B] = bufs
        return bufs

    def __call__(self, x: torch.Tensor, cache: KVCache, start: int,
                 layer_hook: LayerHook | None, train: bool,
                 positions: torch.Tensor | None = None, span: int = 0) -> torch.Tensor:
        """x [B, L, D] at positions start.. -> final hidden states [B, L, D]; fills ``cache``.

        Dropout is applied where the stock layer applies it when ``train``.

        ``positions`` Long [B]: each row's own first position (vector narration, whose envs
        reset and slide at different steps): row b's L keys/values go to cache slots
        ``positions[b] ..``, rotary uses those positions, and query i attends to slots
        ``<= positions[b] + i`` of the first ``span`` (= max(positions) + L, passed by the
        caller to avoid a host sync) under an additive mask (one position) or a boolean mask
        (several: the slot early exit's fill); later slots of a row (left over from before its
        reset or slide) are masked out, so the cache buffer must hold finite values there (zero-initialised)."""
        # oneDNN runs F.gelu through a primitive costing ~10 us per call even on a handful of
        # values (vs ~2 us for ATen's own kernel); a decode step has one gelu per layer, so the
        # step runs with oneDNN off and restores the flag (the same erf GELU).
        mkldnn = torch.backends.mkldnn
        was = mkldnn.enabled
        mkldnn.enabled = False
        # Under autocast (--precision bf16, agents.model.accel) the plan still runs in its weights'
        # dtype: its step buffers are written with out= (which autocast refuses) and the cache
        # keeps one dtype; a decode step is latency-bound, so bf16 would not speed it up on CPU.
        # The obs encoder, projector and logits around it do run in bf16.
        try:
            with torch.autocast(x.device.type, enabled=False):
                return self._run(x.to(self.zero.dtype), cache, start, layer_hook, train,
                                 positions, span)
        finally:
            mkldnn.enabled = was

    def _positions(self, x: torch.Tensor, start: int, positions: torch.Tensor | None,
                   span: int) -> tuple:
        """Rotary tables and attention masking of one call: (cos, sin, perm, rot, rows, at,
        bias, mask, causal); ``rows`` (row indices), ``at`` (Long [B, L] each row's positions)
        and ``bias`` (one-position steps) only with per-row ``positions``."""
        B, L, _ = x.shape
        mask, causal = None, False  # one position sees the whole cache: no mask at all
        rows = at = bias = None
        if positions is not None:  # per-row positions (see __call__): tables indexed per row
            _, _, cos, sin, perm, rot = self.lm.rope_tables(x, span)
            at = positions[:, None] + torch.arange(L, device=x.device)  # [B, L]
            cos, sin, rot = cos[at], sin[at], rot[at]  # [B, L, 1, 1, r]
            rows = torch.arange(B, device=x.device)
            seen = torch.arange(span, device=x.device)[None, None] <= at[:, :, None]  # [B, L, span]
            if L == 1:
                bias = x.new_zeros(B, span).masked_fill_(~seen[:, 0], float("-inf"))
                bias = bias[:, None, None].expand(B, self.H, 1, span).reshape(B * self.H, 1, span)
            else:  # a multi-position feed per row (the slot early exit): row b, query i sees
                mask = seen[:, None]  # slots <= positions[b] + i  [B, 1, L, span]
        else:
            _, _, cos, sin, perm, rot = self.lm.rope_tables(x, start + L)
            cos, sin, rot = cos[start:start + L], sin[start:start + L], rot[start:start + L]
            if L > 1 and start == 0:
                causal = True
            elif L > 1:  # a multi-position feed after a prefix: row i sees positions <= start + i
                mask = torch.ones(L, start + L, dtype=torch.bool, device=x.device).tril(start)
        return cos, sin, perm, rot, rows, at, bias, mask, causal

    def _run(self, x: torch.Tensor, cache: KVCache, start: int, layer_hook: LayerHook | None,
             train: bool, positions: torch.Tensor | None = None, span: int = 0) -> torch.Tensor:
        B, L, D = x.shape
        c = _Call(B, L, D, *self._positions(x, start, positions, span), positions, span, train, x)
        h = (self.emb_dropout(x) if train else x).reshape(B * L, D)  # rows [B*L, D]
        for i, layer in enumerate(self.layers):
            if layer_hook is not None:
                h = layer_hook(i, h.view(B, L, D)).reshape(B * L, D)
            h = self._layer(i, layer, h, cache.layers[i], c)
        return self.final_ln(h).view(B, L, D)

    def _layer(self, i: int, layer: tuple, h: torch.Tensor, cl: Any, c: _Call) -> torch.Tensor:
        """One transformer layer on rows ``h`` [B*L, D]; writes its keys/values into ``cl``."""
        (_, _, dense, ln2, fc1, act, fc2, parallel, d, scale, p_att, drop_att, drop_mlp,
         fused) = layer
        qkv, f, kv_new, q = self._project(i, layer, h, c)
        n = _write_cache(cl, kv_new, qkv, c)
        o = self._attend(cl, qkv, q, n, d, scale, p_att, c)
        if fused is not None and fused[3] is not None and not c.train:
            wd, w2, b2 = fused[3]  # h + dense(o) + fc2(act(f)), biases summed once
            return torch.addmm(torch.addmm(b2, o, wd).add_(h), act(f), w2)
        o = dense(o)
        if c.train:
            o = drop_att(o)
        if parallel:
            m = fc2(act(fc1(ln2(h)) if f is None else f))
            return (drop_mlp(m) if c.train else m) + o + h
        o = o + h
        m = fc2(act(fc1(ln2(o))))
        return (drop_mlp(m) if c.train else m) + o

    def _project(self, i: int, layer: tuple, h: torch.Tensor, c: _Call) -> tuple:
        """This layer's queries/keys/values with rotary applied: ``(qkv [B, L, H, 3, d], the
        MLP's input f [B*L, F] or None, new keys+values [B, H, L, 2, d], q [B, H, d] or None)``."""
        ln1, qkv_proj, d, fused = layer[0], layer[1], layer[8], layer[13]
        B, L, D, H, r = c.B, c.L, c.D, self.H, self.r
        if fused is None:
            qkv = qkv_proj(ln1(h)).view(B, L, H, 3, d)
            qk = qkv[..., :2, :r]
            qk.copy_(torch.addcmul(qk * c.cos, qk.index_select(-1, c.perm), c.sin))
            return qkv, None, qkv[:, :, :, 1:].transpose(1, 2), None
        w_cat, b_cat, eps, _ = fused  # one LayerNorm and ONE matmul for both branches' inputs
        xn = F.layer_norm(h, (D,), None, None, eps)
        if L == 1:  # into this layer's step buffer, whose views are made once
            y, qkv, rotc, kv_new, q, f = self._buffers(B, c.x)[i]
            torch.addmm(b_cat, xn, w_cat, out=y)
            rotc.mul_(c.rot)  # rotary on interleaved q, k pairs
            return qkv, f, kv_new, q
        y = torch.addmm(b_cat, xn, w_cat)
        qkv, f = y[:, :3 * D].view(B, L, H, 3, d), y[:, 3 * D:]  # [B, L, H, 3, d]
        qc = torch.view_as_complex(qkv.view(B, L, H, 3, d // 2, 2))
        qc[:, :, :, :2, :r // 2].mul_(c.rot)  # rotary on interleaved q, k pairs
        return qkv, f, qkv[:, :, :, 1:].transpose(1, 2), None

    def _attend(self, cl: Any, qkv: torch.Tensor, q: torch.Tensor | None, n: int, d: int,
                scale: float, p_att: float, c: _Call) -> torch.Tensor:
        """Attention of this call's queries over the first ``n`` cache slots: rows [B*L, D]."""
        B, L, D, H = c.B, c.L, c.D, self.H
        if L == 1:  # one query per head: two batched matmuls beat SDPA's kernel on CPU
            kv = cl.kv3[:, :n]  # [B*H, n, 2, d]
            if q is None:
                q = qkv[:, 0, :, 0]  # [B, H, d]
            a = torch.baddbmm(self.zero if c.bias is None else c.bias, q.reshape(B * H, 1, d),
                              kv[:, :, 0].transpose(1, 2), beta=0.0 if c.bias is None else 1.0,
                              alpha=scale)
            a = a.softmax(-1)  # [B*H, 1, n]
            if c.train and p_att > 0:
                a = F.dropout(a, p_att)
            return torch.bmm(a, kv[:, :, 1]).view(B, D)  # heads in order
        kv = cl.kv[:, :, :n]  # [B, H, n, 2, d]
        o = F.scaled_dot_product_attention(
            qkv[:, :, :, 0].transpose(1, 2), kv[..., 0, :], kv[..., 1, :], attn_mask=c.mask,
            is_causal=c.causal, dropout_p=p_att if c.train else 0.0, scale=scale)
        return o.transpose(1, 2).reshape(B * L, D)


class _Call(NamedTuple):
    """What every layer of one plan call shares (shapes, rotary tables, masking; see
    :meth:`DecodePlan._positions`)."""

    B: int
    L: int
    D: int
    cos: Any
    sin: Any
    perm: Any
    rot: Any
    rows: Any
    at: Any
    bias: Any
    mask: Any
    causal: bool
    positions: Any
    span: int
    train: bool
    x: torch.Tensor


def _write_cache(cl: Any, kv_new: torch.Tensor, qkv: torch.Tensor, c: _Call) -> int:
    """Write a call's keys+values into one layer's cache (per-row slots with per-row
    positions); returns how many cache slots the queries may attend to."""
    if not cl.is_initialized:
        empty = qkv.new_empty(c.B, qkv.shape[2], 0, qkv.shape[-1])
        cl.lazy_initialization(empty, empty)
    if c.rows is not None and c.L == 1:  # each row's key+value into its own slot
        cl.kv[c.rows, :, c.positions] = kv_new[:, :, 0]
        cl.length = max(cl.length, c.span)
        return c.span
    if c.rows is not None:  # each row's L keys+values into its own slots
        cl.kv[c.rows[:, None], :, c.at] = kv_new.transpose(1, 2)  # [B, L, H, 2, d]
        cl.length = max(cl.length, c.span)
        return c.span
    cl.reserve(c.L).copy_(kv_new)  # keys+values, one write
    cl.length += c.L
    return cl.length


def _bound(m: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """``m`` as a plain function on rows [N, D]: ``addmm`` / ``layer_norm`` on its live
    parameters for a plain ``nn.Linear`` / ``nn.LayerNorm`` (no module-call overhead per
    token), else the module itself (e.g. a peft LoRA layer, which applies its adapter)."""
    if type(m) is nn.Linear:
        wt, b = m.weight.T, m.bias  # a view: in-place weight updates are seen
        return (lambda x: torch.mm(x, wt)) if b is None else (lambda x: torch.addmm(b, x, wt))
    if type(m) is nn.LayerNorm:
        shape, w, b, eps = m.normalized_shape, m.weight, m.bias, m.eps
        return lambda x: F.layer_norm(x, shape, w, b, eps)
    return m


__all__ = ["DecodePlan", "LayerHook"]
