"""The narrating encoder: frames -> frame embeddings -> a causal LM over per-frame token slots.

Token layout: a window of T frames owns L = T*k positions (k = tokens_per_frame); position
p = t*k + j is slot j of frame t, and its logits predict token y[p]. Two fusions:

* ``additive`` (seed diagram): input at p = embed(y[p-1]) (``<bos>`` at p = 0) + e_t when j = 0.
* ``xattn`` (Flamingo/VLPT): input at p = embed(y[p-1]); before every GPT-NeoX layer a gated
  cross-attention block lets position p attend to the frame embeddings of frames <= t
  (block-causal over frames, with an ALiBi-style recency bias so the current frame is
  identifiable); its tanh gates start at 0, so at init the LM is exactly the text-only LM.

Sampling one slot per frame with a KV cache (:class:`agents.model.kv_cache.KVCache`, preallocated
buffers written in place) is exposed both offline (:meth:`sample`) and incrementally
(:meth:`start` / :meth:`step_frame`) for live narration. The per-token loop is kept lean: it
runs under ``torch.inference_mode``, the cache is preallocated for the window when its length is
known, each token costs one embedding lookup, one pass of the cached decode path
(:meth:`TokenLM.hidden`), the logits and the sampler; no mask, no ``.item()`` sync, no loop over
batch rows. Results handed back are ordinary tensors (built outside inference mode), so callers
may use them in training losses.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from agents.errors import ModelError
from agents.model.kv_cache import KVCache
from agents.model.lm import TokenLM, sample_tokens
from agents.model.slot_rule import SlotRule, SlotTrack
from agents.obs.base import ObsEncoder


class GatedCrossAttention(nn.Module):
    """Flamingo's gated cross-attention dense block: text states attend to frame embeddings."""

    def __init__(self, *, hidden_size: int, num_heads: int) -> None:
        super().__init__()
        if hidden_size % num_heads:
            raise ModelError(f"hidden_size {hidden_size} is not divisible by {num_heads} heads.")
        self.num_heads = num_heads
        self.ln_q = nn.LayerNorm(hidden_size)
        self.ln_kv = nn.LayerNorm(hidden_size)
        self.q = nn.Linear(hidden_size, hidden_size)
        self.kv = nn.Linear(hidden_size, 2 * hidden_size)
        self.out = nn.Linear(hidden_size, hidden_size)
        self.ln_ff = nn.LayerNorm(hidden_size)
        self.ff = nn.Sequential(nn.Linear(hidden_size, 4 * hidden_size), nn.GELU(),
                                nn.Linear(4 * hidden_size, hidden_size))
        self.gate_attn = nn.Parameter(torch.zeros(1))
        self.gate_ff = nn.Parameter(torch.zeros(1))
        # ALiBi slopes: a fixed per-head penalty per frame of distance (recency bias)
        slopes = torch.tensor([2.0 ** (-8.0 * (h + 1) / num_heads) for h in range(num_heads)])
        self.register_buffer("slopes", slopes, persistent=False)

    def frame_bias(self, q_frame: torch.Tensor, n_frames: int) -> torch.Tensor:
        """q_frame Long [L] (frame of each query) -> additive attention bias [1, H, L, F]."""
        kf = torch.arange(n_frames, device=q_frame.device)
        dist = (q_frame[:, None] - kf[None, :]).float()  # [L, F]
        bias = -self.slopes[:, None, None] * dist  # [H, L, F]
        return bias.masked_fill(dist < 0, float("-inf")).unsqueeze(0)

    def memory_kv(self, mem: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """mem [B, F, D] frame embeddings -> (keys, values) [B, H, F, d]."""
        B, _, D = mem.shape
        k, v = self.kv(self.ln_kv(mem)).chunk(2, dim=-1)
        k = k.view(B, -1, self.num_heads, D // self.num_heads).transpose(1, 2)  # [B, H, F, d]
        v = v.view(B, -1, self.num_heads, D // self.num_heads).transpose(1, 2)
        return k, v

    def forward(self, h: torch.Tensor, mem: torch.Tensor, bias: torch.Tensor,
                kv: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """h [B, L, D], mem [B, F, D] frame embeddings, bias [1, H, L, F] -> h [B, L, D].

        ``kv``: :meth:`memory_kv` of ``mem`` when already computed (sampling reuses it for
        every token of a frame)."""
        B, L, D = h.shape
        H = self.num_heads
        q = self.q(self.ln_q(h)).view(B, L, H, D // H).transpose(1, 2)  # [B, H, L, d]
        k, v = self.memory_kv(mem) if kv is None else kv
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)  # [B, H, L, d]
        a = a.transpose(1, 2).reshape(B, L, D)
        h = h + torch.tanh(self.gate_attn) * self.out(a)
        return h + torch.tanh(self.gate_ff) * self.ff(self.ln_ff(h))


@dataclass
class NarrationState:
    """Incremental narration state: KV cache, last token, frames seen (xattn memory), and the
    last frame narrated (for observation encoders that read frame deltas)."""

    cache: KVCache  # a transformers Cache; cache.get_seq_length() == position
    prev: torch.Tensor  # Long [B], the last token emitted (<bos> at the start)
    position: int = 0  # token positions already in the cache
    frames: int = 0  # frames narrated so far
    memory: torch.Tensor | None = None  # float [B, frames, D] frame embeddings (xattn only)
    hidden: torch.Tensor | None = None  # float [B, k, D] the last frame's final hidden states
    last_frame: torch.Tensor | None = None  # uint8 [B, H, W, 3] set by embed_frame (None: none yet)
    obs_state: dict | None = None  # the obs encoder's per-stream state (ObsEncoder.step), per env
    slot: SlotTrack | None = None  # the slot rule's per-stream state (agents.model.slot_rule), if any


class NarrationEncoder(nn.Module):
    """Observation encoder + projector + token LM with additive or gated-xattn fusion."""

    def __init__(self, *, obs: ObsEncoder, tlm: TokenLM, tokens_per_frame: int, bos_id: int,
                 fusion: str = "additive", banned_ids: tuple[int, ...] = ()) -> None:
        super().__init__()
        if fusion not in ("additive", "xattn"):
            raise ModelError(f"fusion must be 'additive' or 'xattn', got {fusion!r}.")
        self.obs = obs
        D = tlm.hidden_size
        self.projector = nn.Sequential(nn.Linear(obs.out_dim, D), nn.LayerNorm(D))
        self.tlm = tlm
        self.k = tokens_per_frame
        self.bos_id = bos_id
        self.fusion = fusion
        heads = tlm.core.config.num_attention_heads
        self.xattn = (nn.ModuleList(GatedCrossAttention(hidden_size=D, num_heads=heads)
                                    for _ in tlm.core.gpt_neox.layers)
                      if fusion == "xattn" else None)
        self.register_buffer("banned", torch.tensor(banned_ids, dtype=torch.long), persistent=False)
        self.nil_rule: tuple[int, float] | None = None  # greedy: (nil_id, p), see sample_tokens
        # the slot format narration keeps (carry cut, early exit; agents.model.slot_rule), set by the
        # agent; training's target sampling does not pass it (its tokens stay as they were)
        self.slot_rule: SlotRule | None = None

    # ---------------------------------------------------------------- frames
    def frame_embeddings(self, frames: torch.Tensor, valid: torch.Tensor | None = None,
                         embedding: torch.Tensor | None = None,
                         prev_frame: torch.Tensor | None = None) -> torch.Tensor:
        """frames uint8 [B, T, H, W, 3] -> e float [B, T, D] (LM hidden size).

        ``prev_frame`` uint8 [B, H, W, 3]: the frame before ``frames[:, 0]``, read only by
        observation encoders with ``uses_previous_frame`` (None: the clip starts afresh)."""
        kw = {"prev_frame": prev_frame} if self.obs.uses_previous_frame else {}
        feats = self.obs(frames, embedding=embedding, valid=valid, **kw)  # [B, T, obs_dim]
        return self.projector(feats)

    def embed_frame(self, state: NarrationState, frame: torch.Tensor,
                    embedding: torch.Tensor | None = None) -> torch.Tensor:
        """Live narration's frame embedding: frame uint8 [B, H, W, 3] -> e_t float [B, D].

        Steps the observation encoder's per-stream state (``state.obs_state``: the previous
        frame for deltas, the units' running mean), so each frame gets the features it has in
        an offline clip of the episode; call it once per frame, before :meth:`step_frame`
        (which carries the state on). ``embedding``: float [B, Dc], the frame's dataset column
        for encoders that read one."""
        if state.obs_state is None:
            state.obs_state = self.obs.init_state(frame.shape[0])
        feats, state.obs_state = self.obs.step(state.obs_state, frame, embedding=embedding)
        state.last_frame = frame
        return self.projector(feats)  # [B, D]

    def gate_values(self) -> dict[str, float]:
        """tanh of each xattn gate (``gate/attn_i``, ``gate/ff_i``); empty for additive."""
        if self.xattn is None:
            return {}
        out = {}
        for i, blk in enumerate(self.xattn):
            out[f"gate/attn_{i}"] = float(torch.tanh(blk.gate_attn).item())
            out[f"gate/ff_{i}"] = float(torch.tanh(blk.gate_ff).item())
        return out

    def _hook(self, mem: torch.Tensor, q_frame: torch.Tensor):
        if self.xattn is None:
            return None
        bias = self.xattn[0].frame_bias(q_frame, mem.shape[1])  # same slopes in every block
        return lambda i, h: self.xattn[i](h, mem, bias)

    # ---------------------------------------------------------------- teacher forcing
    def inputs(self, ids: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """ids Long [B, T, k], e [B, T, D] -> input embeddings [B, T*k, D]."""
        B, T, k = ids.shape
        flat = ids.reshape(B, T * k)
        prev = torch.cat([flat.new_full((B, 1), self.bos_id), flat[:, :-1]], dim=1)  # [B, L]
        x = self.tlm.embed(prev).view(B, T, k, -1)
        if self.fusion == "additive":
            x = torch.cat([x[:, :, :1] + e[:, :, None], x[:, :, 1:]], dim=2)
        return x.reshape(B, T * k, -1)

    def forward(self, ids: torch.Tensor, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced pass: ids Long [B, T, k], e [B, T, D] -> (h [B, L, D], z [B, L, V])."""
        _, T, k = ids.shape
        if k != self.k:
            raise ModelError(f"ids have {k} slots per frame, the encoder was built for {self.k}.")
        q_frame = torch.arange(T * k, device=ids.device) // k
        h = self.tlm.hidden(self.inputs(ids, e), layer_hook=self._hook(e, q_frame))
        return h, self.tlm.logits(h)

    # ---------------------------------------------------------------- sampling
    def start(self, batch_size: int, device: torch.device | str = "cpu", *,
              capacity: int = 0) -> NarrationState:
        """A fresh narration state for ``batch_size`` streams (``capacity``: token positions to
        preallocate in the cache when the length is known; it grows on demand otherwise)."""
        return NarrationState(cache=self.tlm.new_cache(capacity),
                              prev=torch.full((batch_size,), self.bos_id, dtype=torch.long,
                                              device=device))

    def _frame(self, state: NarrationState, e_t: torch.Tensor, io: tuple, *, greedy: bool,
               temperature: float, top_k: int, generator: torch.Generator | None,
               rule: SlotRule | None = None,
               ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        """Narrate one frame: e_t [B, D] -> k tokens [B], logits [B, V] and final hidden states
        [B, D] (lists); advances ``state`` in place. ``io`` = ``tlm.token_io()``. ``rule``: the
        slot format to keep (``state.slot`` its track; see :mod:`agents.model.slot_rule`). Call under
        ``torch.inference_mode``."""
        tlm = self.tlm
        hook = None
        if self.xattn is not None:  # the frames' keys/values once per frame, not per token
            mem = e_t[:, None] if state.memory is None else torch.cat([state.memory, e_t[:, None]], 1)
            bias = self.xattn[0].frame_bias(torch.full((1,), state.frames, device=e_t.device),
                                            mem.shape[1])
            kvs = [blk.memory_kv(mem) for blk in self.xattn]
            def hook(i: int, h: torch.Tensor) -> torch.Tensor:  # block i's gated cross-attention
                return self.xattn[i](h, mem, bias, kvs[i])
            state.memory = mem
        (embed, logits_of), cache, banned = io, state.cache, self.banned
        prev, pos = state.prev, state.position
        ids, logits, hs = [], [], []
        free = None
        for j in range(self.k):
            x = embed(prev)[:, None]  # [B, 1, D]
            if j == 0 and self.fusion == "additive":
                x = x + e_t[:, None]
            h = tlm.hidden(x, cache=cache, start=pos + j, layer_hook=hook)[:, 0]  # [B, D]
            z = logits_of(h)  # [B, V]
            if banned.numel():  # banned/extra ids leave the sampler at -inf (soft targets, entropy)
                z = z.index_fill(-1, banned, float("-inf"))
            prev = sample_tokens(z, greedy=greedy, temperature=temperature, top_k=top_k,
                                 generator=generator, nil_rule=self.nil_rule)
            if rule is not None:
                prev = rule.force(state.slot, prev, j, z)
            ids.append(prev)
            logits.append(z)
            hs.append(h)
            if rule is not None and rule.early_exit and j < self.k - 1 \
                    and bool(state.slot.done.all()):  # every row ended its slot: fill the rest
                h, z, free = self.fill_nil(cache, pos + j + 1, self.k - 1 - j, prev, io, hook,
                                            greedy=greedy)
                ids += [prev] * (self.k - 1 - j)
                logits += z.unbind(1)
                hs += h.unbind(1)
                break
        if rule is not None:
            rule.end_slot(state.slot, free, None if free is None else z)
        state.prev, state.position, state.frames = prev, pos + self.k, state.frames + 1
        return ids, logits, hs

    def fill_nil(self, cache: KVCache, start: int, L: int, nil: torch.Tensor, io: tuple,
                  hook, *, greedy: bool, positions: torch.Tensor | None = None, span: int = 0,
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The slot's last ``L`` positions after every row wrote ``<nil>`` (``nil`` Long [B]):
        ONE pass over inputs ``embed(<nil>)`` at positions ``start ..`` (per row from
        ``positions`` Long [B] when given) that fills the cache -> (h [B, L, D], z [B, L, V],
        the greedy choices there Long [B, L] or None when sampling)."""
        embed, logits_of = io
        x = embed(nil)[:, None].expand(-1, L, -1).contiguous()  # [B, L, D]
        h = self.tlm.hidden(x, cache=cache, start=start, layer_hook=hook, positions=positions,
                            span=span)  # [B, L, D]
        z = logits_of(h)  # [B, L, V]
        if self.banned.numel():
            z = z.index_fill(-1, self.banned, float("-inf"))
        free = None
        if greedy:  # what the sequential decoder would have chosen: is the slot well formed?
            B, _, V = z.shape
            free = sample_tokens(z.reshape(B * L, V), greedy=True,
                                 nil_rule=self.nil_rule).view(B, L)
        return h, z, free

    def step_frame(self, state: NarrationState, e_t: torch.Tensor, *, greedy: bool = False,
                   temperature: float = 1.0, top_k: int = 0,
                   generator: torch.Generator | None = None, rule: SlotRule | None = None,
                   ) -> tuple[torch.Tensor, torch.Tensor, NarrationState]:
        """Narrate one frame: e_t [B, D] -> (ids Long [B, k], logits [B, k, V], new state).

        One cached model call per token position (with ``rule``'s early exit, none after every
        row's ``<nil>`` but one pass for the rest of the slot); the state's cache grows by k
        positions (in place: the returned state shares the cache with ``state``). ``rule``: the
        slot format to keep (its track is ``state.slot``, made here on first use).
        """
        if rule is not None and state.slot is None:
            state.slot = rule.start(e_t.shape[0], e_t.device)
        new = NarrationState(cache=state.cache, prev=state.prev, position=state.position,
                             frames=state.frames, memory=state.memory,
                             last_frame=state.last_frame, obs_state=state.obs_state,
                             slot=state.slot)
        with torch.inference_mode():
            ids, logits, hs = self._frame(new, e_t, self.tlm.token_io(), greedy=greedy,
                                          temperature=temperature, top_k=top_k,
                                          generator=generator, rule=rule)
        # ordinary tensors for the caller (inference tensors cannot enter autograd later)
        new.prev, new.hidden = new.prev.clone(), torch.stack(hs, 1)
        if new.memory is not None and new.memory.is_inference():
            new.memory = new.memory.clone()
        return torch.stack(ids, 1), torch.stack(logits, 1), new

    @torch.no_grad()
    def prefill(self, ids: torch.Tensor, e: torch.Tensor,
                ) -> tuple[torch.Tensor, torch.Tensor, NarrationState]:
        """Re-encode frames already narrated into a fresh state ready for :meth:`step_frame`.

        One teacher-forced pass over ids Long [B, T, k] and e [B, T, D] from position 0 (``<bos>``
        first, as in training) that fills a new cache; live narration uses it to slide its
        context window (positions restart at 0, so the LM never sees positions it was not
        trained on).

        Returns:
            (h [B, T*k, D], z [B, T*k, V], state) with ``state.position = T*k``,
            ``state.prev = ids[:, -1, -1]`` and ``state.frames = T``.
        """
        B, T, k = ids.shape
        if k != self.k:
            raise ModelError(f"ids have {k} slots per frame, the encoder was built for {self.k}.")
        state = self.start(B, e.device)
        q_frame = torch.arange(T * k, device=ids.device) // k
        h = self.tlm.hidden(self.inputs(ids, e), cache=state.cache, start=0,
                            layer_hook=self._hook(e, q_frame))  # [B, T*k, D]
        state.prev = ids[:, -1, -1].clone()
        state.position, state.frames = T * k, T
        state.memory = e if self.xattn is not None else None
        state.hidden = h[:, -k:]
        return h, self.tlm.logits(h), state

    def sample(self, e: torch.Tensor, *, greedy: bool = False, temperature: float = 1.0,
               top_k: int = 0, generator: torch.Generator | None = None,
               rule: SlotRule | None = None, track: SlotTrack | None = None,
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Narrate a window offline: e [B, T, D] -> (ids Long [B, T, k], logits [B, T, k, V]).

        The logits are those sampled from: banned ids (``<pad> <bos> <unk>`` and vocabulary
        rows beyond the tokenizer) are ``-inf``, so soft targets and entropies never count them.

        All B sequences are sampled in parallel, one cached model call per token position,
        into a cache preallocated for the window's T*k positions. ``rule``: the slot format to
        keep (:mod:`agents.model.slot_rule`; None = tokens as the model chooses them, as training's
        target sampling does; with its sentence gate the ids returned are the slots as said,
        while the model's context keeps the tokens it chose); ``track``: its per-row state and
        counters (a fresh one when None; pass one to read the cut and ill-formed counts).
        """
        B, T, _ = e.shape
        if rule is not None and track is None:
            track = rule.start(B, e.device)
        with torch.inference_mode():
            state = self.start(B, e.device, capacity=T * self.k)
            state.slot = track
            ids, logits, io = [], [], self.tlm.token_io()
            for t in range(T):
                y, z, _ = self._frame(state, e[:, t], io, greedy=greedy, temperature=temperature,
                                      top_k=top_k, generator=generator, rule=rule)
                if rule is not None and rule.sentence_share is not None:  # what is said (rule 4)
                    y = list(rule.say(track, torch.stack(y, 1), torch.stack(z, 1)).unbind(1))
                ids += y
                logits += z
        # outside inference mode: ordinary tensors (callers may use them in training losses)
        return (torch.stack(ids, 1).view(B, T, self.k),
                torch.stack(logits, 1).view(B, T, self.k, -1))


def num_params(module: nn.Module) -> int:
    """Number of distinct parameters of a module (deprecated: nothing here uses it; write
    ``sum(p.numel() for p in module.parameters())``)."""
    import warnings

    warnings.warn("agents.model.encoder.num_params is deprecated; use sum(p.numel() for p in "
                  "module.parameters()).", DeprecationWarning, stacklevel=2)
    return sum(p.numel() for p in module.parameters())


__all__ = ["GatedCrossAttention", "NarrationEncoder", "NarrationState", "num_params"]
