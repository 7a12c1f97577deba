"""Live narration of N envs at once: one batched, KV-cached decode per step, per-env resets.

:class:`VectorNarrator` is :class:`agents.narrate.narrator.Narrator` for streams that do NOT run in
lock-step: each env has its own context (frames narrated since its reset or its last slide), so
envs reset and slide their window at different steps, yet all N are narrated by ONE batched
decode per token position. :class:`VectorNarrationWrapper` puts it on a gymnasium vector env.

How the rows of one batched cache stay independent
--------------------------------------------------
The KV cache is preallocated for ``window * k`` slots per row and zero-filled. Row b's context
holds ``frames[b]`` frames, i.e. positions ``0 .. frames[b]*k - 1``; a decode step feeds every
row its own position (``TokenLM.hidden(positions=...)``, added for this in
:mod:`agents.model.decode_plan`): rotary at that position, the key/value written to that row's slot,
and an additive mask that hides the row's later slots (left over from before a reset or a
slide). So:

* a **reset** row just restarts at position 0 with ``<bos>`` (its old slots are masked, then
  overwritten);
* a **slide** (a row's context reached ``window`` frames) re-encodes that row's last ``keep``
  frames from position 0 in one teacher-forced pass (``NarrationEncoder.prefill``, all rows
  sliding at that step together) and copies the result into the row's first ``keep * k`` slots,
  exactly what a single-env :class:`~agents.narrate.narrator.Narrator` does (see its module docstring
  for why a slide re-encodes instead of trimming).

Each row therefore sees the very context a single-env narrator of that env sees, at the same
positions: greedy narration equals per-env narration token for token up to float rounding of
the batched matmuls (``tests/test_vector_narration.py``). With xattn fusion the frame memory is
the per-row context buffer under a per-row frame mask.

Forecasts (``forecast=N``) come from the forecaster registered for the predictor's objective in
:data:`VECTOR_FORECASTS`: the parallel mode's is the single-stream one batched as is (it keeps
no context); the prefix mode's keeps a per-row predictor cache laid out like the encoder's (see
:class:`VectorPrefixForecast`), so each row's forecast sees the context a single-env
narrator's forecast sees.

Sampled (non-greedy) narration draws from one generator for the batch: it is reproducible for
a given N and seed, but a row's draws depend on the batch (greedy narration does not).
"""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from agents.errors import NarrationError
from agents.model import monitors as M
from agents.model.kv_cache import KVCache
from agents.model.lm import sample_tokens
from agents.model.text import unslot
from agents.narrate.narrator import NarrationStep, Narrator, ParallelForecast, needs_column_message
from byog_core.registry import Registry


class VectorNarrator(Narrator):
    """Narrates one frame per env per step for ``num_envs`` envs that reset at their own steps.

    Args:
        agent: A :class:`agents.model.BYOGAgent`.
        num_envs: Number of envs (rows of the batched decode).
        window: Most frames in an env's context (None = the checkpoint's training window).
        keep: Frames re-encoded when an env's window is full (default ``window // 2``).
        forecast: Future frames the predictor narrates each step per env (0 = none), by the
            objective's forecaster in :data:`VECTOR_FORECASTS`.
        greedy, temperature, top_k, seed, decode, cut, early_exit, word_share, sentence_share,
            shares: see
            :class:`~agents.narrate.narrator.Narrator` (the slot rule applies per env, so each env's
            tokens are its single-stream narration's; the early exit's parallel fill waits for
            every env's ``<nil>``).
    """

    def __init__(self, agent: Any, *, num_envs: int, window: int | None = None,
                 keep: int | None = None, forecast: int = 0, greedy: bool = True,
                 temperature: float = 1.0, top_k: int | None = None, seed: int = 0,
                 decode: bool = True, cut: bool = True, early_exit: bool = True,
                 word_share: float | None = None, sentence_share: float | None = None,
                 shares: bool = False) -> None:
        if num_envs < 1:
            raise NarrationError(f"num_envs must be >= 1, got {num_envs}.")
        # forecast=0 here: the base class would build a single-stream forecaster (one context
        # for the batch); ours comes from VECTOR_FORECASTS below, after the same checks
        super().__init__(agent, batch_size=num_envs, window=window, keep=keep, forecast=0,
                         greedy=greedy, temperature=temperature, top_k=top_k, seed=seed,
                         decode=decode, cut=cut, early_exit=early_exit, word_share=word_share,
                         sentence_share=sentence_share, shares=shares)
        if forecast < 0:
            raise NarrationError(f"forecast must be >= 0 frames, got {forecast}.")
        if forecast and agent.predictor is None:
            raise NarrationError("forecast needs the BYOG predictor, but this agent has none "
                                 "(a captioner, w_byog = 0); pass forecast=0.")
        self.forecast = forecast
        self.num_envs = num_envs
        self.frames = np.zeros(num_envs, dtype=np.int64)  # frames in each env's context
        # the objective's vector forecast, by name: an objective without one fails here
        self._forecaster = VECTOR_FORECASTS[agent.cfg.predictor.mode](self) if forecast else None

    # ------------------------------------------------------------------ state
    def reset(self, seed: int | None = None) -> None:
        """Clear every env's context; seed the sampling generator."""
        self.generator.manual_seed(self._seed if seed is None else int(seed))
        N, W, k, tlm = self.num_envs, self.window, self.k, self.enc.tlm
        p = next(self.agent.parameters())
        self.state = self.enc.start(N, self.device)
        self.state.cache = zeroed_cache(tlm, N, W * k, p)
        self.track = None if self.rule is None else self.rule.start(N, self.device)
        self.state.slot = self.track
        self._E = p.new_zeros(N, W, tlm.hidden_size)  # frame embeddings of each context
        self._I = torch.zeros(N, W, k, dtype=torch.long, device=self.device)  # their tokens
        self.frames[:] = 0
        self.reencodes = 0  # env slides since the last reset (a slide of 3 envs counts 3)
        if self._forecaster is not None:
            self._forecaster.reset()

    def reset_envs(self, done: np.ndarray | torch.Tensor | list[bool]) -> None:
        """Start the envs where ``done`` (bool [N]) is True afresh (their next frame is an
        episode's first): empty context, ``<bos>``, a fresh observation-encoder stream."""
        if self.state is None:
            raise NarrationError("VectorNarrator.reset_envs called before reset(); call reset() first.")
        d = np.asarray(done, dtype=bool).reshape(-1)
        if d.shape[0] != self.num_envs:
            raise NarrationError(f"done must have one flag per env ({self.num_envs}), got {d.shape[0]}.")
        if not d.any():
            return
        self.frames[d] = 0
        mask = torch.as_tensor(d, device=self.device)
        self.state.prev = self.state.prev.masked_fill(mask, self.enc.bos_id)
        if self.state.obs_state is not None:
            self.state.obs_state = self.enc.obs.reset_state(self.state.obs_state, mask)
        if self.track is not None:
            self.track.reset_rows(mask)

    @property
    def cache_length(self) -> int:
        """Most token positions any env's context holds (0 before the first frame)."""
        return 0 if self.state is None else int(self.frames.max()) * self.k

    @property
    def context_frames(self) -> int:
        """Most frames any env's context holds."""
        return 0 if self.state is None else int(self.frames.max())

    # ------------------------------------------------------------------ stepping
    @torch.no_grad()
    def step(self, frames: np.ndarray | torch.Tensor, embedding: torch.Tensor | None = None,
             *, starts: np.ndarray | torch.Tensor | list[bool] | None = None) -> NarrationStep:
        """Narrate one new frame per env: frames uint8 [N, H, W, 3] -> :class:`NarrationStep`.

        ``starts`` bool [N]: envs whose frame is the first of a new episode (they are reset
        first, see :meth:`reset_envs`)."""
        if self.state is None:
            raise NarrationError("VectorNarrator.step called before reset(); call reset() first.")
        x = (frames.to(self.device) if isinstance(frames, torch.Tensor)
             else torch.as_tensor(np.asarray(frames), device=self.device))
        if x.dtype != torch.uint8 or x.dim() != 4 or x.shape[0] != self.num_envs or x.shape[-1] != 3:
            raise NarrationError(
                f"Expected uint8 frames [{self.num_envs}, H, W, 3], got {x.dtype} "
                f"{tuple(x.shape)}; narrate RGB frames of byog_env environments.")
        if self.enc.obs.needs_column and embedding is None:
            raise NarrationError(needs_column_message(self.enc.obs.needs_column))
        if starts is not None:
            self.reset_envs(starts)
        full = np.flatnonzero(self.frames == self.window)
        if full.size:
            self._slide(full)
        e_t = self.enc.embed_frame(self.state, x, embedding)  # [N, D]
        rows = torch.arange(self.num_envs, device=self.device)
        f = torch.as_tensor(self.frames, device=self.device)  # each env's frame slot
        self._E[rows, f] = e_t.to(self._E.dtype)  # bf16 under autocast (--precision bf16)
        prev = self.state.prev  # [N] the token before each env's slot
        before = self._slot_snapshot()
        with torch.inference_mode():
            ids, logits, hs = self._decode(e_t, f)
        ids, logits = torch.stack(ids, 1), torch.stack(logits, 1)  # [N, k], [N, k, V]
        self._I[rows, f] = ids
        self.state.prev, self.state.hidden = ids[:, -1].clone(), torch.stack(hs, 1)
        f_ids = ids.new_zeros(self.num_envs, 0, self.k)
        if self._forecaster is not None:  # reads self.frames: the frame's slot, not yet counted
            feats = self.agent.predictor.features(self.state.hidden, logits)  # [N, k, Dx]
            f_ids = self._forecaster(feats, prev, ids)  # [N, F, k]
        self.frames += 1
        ids, recorded = self._said(ids, logits)  # the context (self._I) keeps what the model chose
        ent = M.position_entropy(logits).mean(-1)  # [N]
        tok = self.agent.tokenizer
        text = ["; ".join(s[0]) for s in unslot(ids[:, None], tok)] if self.decode else []
        forecast = ([["; ".join(fr) for fr in frames_] for frames_ in unslot(f_ids, tok)]
                    if self.forecast and self.decode else [[] for _ in range(self.num_envs)])
        return NarrationStep(ids=ids, text=text, entropy=ent, forecast_ids=f_ids,
                             forecast=forecast, hidden=self.state.hidden, **self._slot_step(before),
                             **recorded)

    def _decode(self, e_t: torch.Tensor, f: torch.Tensor) -> tuple[list, list, list]:
        """k batched decode steps, each row at its own position (``NarrationEncoder._frame``
        with per-row positions, the same slot rule): lists of k tokens [N], logits [N, V],
        hidden states [N, D]."""
        enc, tlm, k, rule, track = self.enc, self.enc.tlm, self.k, self.rule, self.track
        io = tlm.token_io()
        embed, logits_of = io
        hook = None
        if enc.xattn is not None:  # the context buffer as memory, frames after f[b] masked
            kf = torch.arange(self.window, device=self.device)
            dist = (f[:, None] - kf[None]).float()  # [N, W]
            bias = -enc.xattn[0].slopes[None, :, None] * dist[:, None]  # [N, H, W]
            bias = bias.masked_fill(dist[:, None] < 0, float("-inf"))[:, :, None]  # [N, H, 1, W]
            mem = self._E
            kvs = [blk.memory_kv(mem) for blk in enc.xattn]
            def hook(i: int, h: torch.Tensor) -> torch.Tensor:  # block i's gated cross-attention
                return enc.xattn[i](h, mem, bias, kvs[i])
        pos, span = f * k, int(self.frames.max()) * k + 1
        prev = self.state.prev
        ids, logits, hs = [], [], []
        free = None
        for j in range(k):
            x = embed(prev)[:, None]  # [N, 1, D]
            if j == 0 and enc.fusion == "additive":
                x = x + e_t[:, None]
            h = tlm.hidden(x, cache=self.state.cache, positions=pos + j, span=span + j,
                           layer_hook=hook)[:, 0]  # [N, D]
            z = logits_of(h)  # [N, V]
            if enc.banned.numel():
                z = z.index_fill(-1, enc.banned, float("-inf"))
            prev = sample_tokens(z, greedy=self.greedy, temperature=self.temperature,
                                 top_k=self.top_k, generator=self.generator, nil_rule=enc.nil_rule)
            if rule is not None:
                prev = rule.force(track, prev, j, z)
            ids.append(prev)
            logits.append(z)
            hs.append(h)
            if rule is not None and rule.early_exit and j < k - 1 and bool(track.done.all()):
                # every env ended its slot: the rest in one pass, each row at its own positions
                h, z, free = enc.fill_nil(self.state.cache, 0, k - 1 - j, prev, io, hook,
                                           greedy=self.greedy, positions=pos + j + 1,
                                           span=span + k - 1)
                ids += [prev] * (k - 1 - j)
                logits += z.unbind(1)
                hs += h.unbind(1)
                break
        if rule is not None:
            rule.end_slot(track, free, None if free is None else z)
        return ids, logits, hs

    def _slide(self, envs: np.ndarray) -> None:
        """Re-encode the last ``keep`` frames of the full ``envs`` from position 0, in one
        teacher-forced pass for all of them, into their rows' first slots."""
        W, R = self.window, self.keep
        sel = torch.as_tensor(envs, device=self.device)
        e, ids = self._E[sel, W - R:], self._I[sel, W - R:]  # [S, R, D], [S, R, k]
        h, z, st = self.enc.prefill(ids, e)  # [S, R*k, D], [S, R*k, V]
        copy_rows(self.state.cache, st.cache, sel, R * self.k)
        if self._forecaster is not None:
            self._forecaster.refill(h, z, ids, sel)
        self._E[sel, :R], self._I[sel, :R] = e, ids
        self.frames[envs] = R
        self.state.prev = self.state.prev.index_copy(0, sel, ids[:, -1, -1])
        self.reencodes += len(envs)


def zeroed_cache(tlm: Any, rows: int, slots: int, like: torch.Tensor) -> KVCache:
    """A KV cache of ``tlm`` with ``slots`` positions per row allocated now (dtype and device of
    ``like``) and zero-filled: per-row decode steps attend over slots that a row masks out (left
    over from before its reset or slide), which must hold finite values."""
    cache = tlm.new_cache(slots)
    H = tlm.core.config.num_attention_heads
    for layer in cache.layers:
        empty = like.new_empty(rows, H, 0, tlm.hidden_size // H)
        layer.lazy_initialization(empty, empty)
        layer.kv.zero_()
    return cache


def copy_rows(cache: KVCache, fresh: KVCache, rows: torch.Tensor, n: int) -> None:
    """Copy the first ``n`` slots of ``fresh``'s rows (one per entry of ``rows``) into ``cache``'s
    ``rows``: a slide's re-encoded context, filled from position 0 in a cache of its own."""
    for mine, theirs in zip(cache.layers, fresh.layers, strict=True):
        mine.kv[rows, :, :n] = theirs.kv[:, :, :n]


# --------------------------------------------------------------------------- live forecasts


VECTOR_FORECASTS: Registry = Registry(
    "vector live forecast", error=NarrationError,
    hint="Register a vector forecaster for this predictor objective with "
         "agents.narrate.vector_narration.VECTOR_FORECASTS.register(name, cls), or pass forecast=0 "
         "(or narrate one env with agents.narrate.narrator.Narrator, whose FORECASTS may have one).")
"""Vector forecasters by predictor objective name: ``cls(narrator)`` for a
:class:`VectorNarrator` with ``reset()``, ``refill(h, z, ids, rows)`` after the ``rows`` slid
(h/z [S, R*k, ...] their re-encoded context, ids Long [S, R, k]) and
``__call__(feats, prev, ids) -> Long [N, F, k]`` (called before the narrator counts the frame,
so ``narrator.frames`` is each env's frame slot)."""


@VECTOR_FORECASTS.register("parallel")
class VectorParallelForecast(ParallelForecast):
    """Parallel mode: the single-stream forecaster batched as is. It conditions each row on its
    frame's last state alone (no context cache), so an env's reset or slide leaves it nothing
    to redo."""

    def refill(self, h: torch.Tensor, z: torch.Tensor, ids: torch.Tensor,
               rows: torch.Tensor | None = None) -> None:
        pass


@VECTOR_FORECASTS.register("prefix")
class VectorPrefixForecast:
    """Prefix mode per env: :class:`~agents.narrate.narrator.PrefixForecast` with one predictor cache
    row per env, each at its own positions.

    Row b's cache holds its context with m = 1 at positions ``0 .. frames[b]*k - 1``, exactly
    the single-stream forecaster's cache of that env. Each step feeds the new frame's k states
    one position at a time at ``frames[b]*k + j`` and rolls ``F*k`` tokens with m = 0 at the
    positions after. The rollout is not cropped off: its slots lie after the row's context, so
    the per-row mask hides them from every later query until the next frames' feeds overwrite
    them (a position is always written before any query can see it). An env reset restarts the
    row at position 0 (the narrator's ``frames``) with nothing to clear, for the same reason; a
    slide re-feeds the kept context from position 0 (:meth:`refill`).
    """

    def __init__(self, narrator: VectorNarrator) -> None:
        self.n = narrator
        self.pred = narrator.agent.predictor
        self.cache: KVCache | None = None

    def reset(self) -> None:
        n = self.n  # the context's window frames plus the rollout's forecast frames
        self.cache = zeroed_cache(self.pred.tlm, n.num_envs, (n.window + n.forecast) * n.k,
                                  next(self.pred.parameters()))

    def refill(self, h: torch.Tensor, z: torch.Tensor, ids: torch.Tensor,
               rows: torch.Tensor) -> None:
        """Re-feed the slid ``rows``' re-encoded context (h/z [S, R*k, ...], ids Long [S, R, k])
        from position 0 into a cache of their own, then into their rows' first slots."""
        S, R, k = ids.shape
        flat = ids.reshape(S, R * k)
        prev = torch.cat([flat.new_full((S, 1), self.n.enc.bos_id), flat[:, :-1]], 1)
        fresh = self.pred.tlm.new_cache(R * k)
        inp = self.pred.prefix_inputs(self.pred.features(h, z), prev)  # m = 1
        self.pred.tlm.hidden(inp, cache=fresh, start=0)
        copy_rows(self.cache, fresh, rows, R * k)

    def __call__(self, feats: torch.Tensor, prev: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        N, k = ids.shape
        tlm, F = self.pred.tlm, self.n.forecast
        pos = torch.as_tensor(self.n.frames, device=ids.device) * k  # [N] the frame's first slot
        top = int(self.n.frames.max()) * k  # the largest, without a host sync per position
        prevs = torch.cat([prev[:, None], ids[:, :-1]], 1)  # [N, k] teacher-forced encoder tokens
        inp = self.pred.prefix_inputs(feats, prevs)  # [N, k, D], m = 1
        for j in range(k):  # per-row positions take one position per call
            tlm.hidden(inp[:, j:j + 1], cache=self.cache, positions=pos + j, span=top + j + 1)
        out = []
        tok = ids[:, -1]
        for i in range(F * k):
            h = tlm.hidden(tlm.embed(tok)[:, None], cache=self.cache, positions=pos + k + i,
                           span=top + k + i + 1)  # m = 0
            tok = self.n.sample(tlm.logits(h[:, 0]))
            out.append(tok)
        return torch.stack(out, 1).view(N, F, k)


class VectorNarrationWrapper(gym.vector.VectorWrapper):
    """Narrates every frame of every env of a gymnasium vector env, one batched decode a step.

    ``reset`` and ``step`` add to ``info`` (vector-env style, one entry per env, with the
    ``_<key>`` masks all True): ``narration`` (object array of N str), ``narration_tokens``
    (int64 [N, k]) and ``narration_entropy`` (float [N]); with ``forecast=F`` also ``forecast``
    (object array of N lists of F str) and ``forecast_tokens`` (int64 [N, F, k]). An env that
    finished starts a fresh context on its first frame of the next episode (autoreset mode
    ``next_step``, gymnasium's default: the step after the end; ``same_step``: the step that
    ended it, whose observation is already the next episode's first).

    Args:
        env: A vector env with ``Box(0, 255, (H, W, 3), uint8)`` single observations.
        agent: A BYOG agent (its ``frame_shape``, when set, must match the env's).
        window, keep, forecast, greedy, temperature, top_k: see :class:`VectorNarrator`.
    """

    def __init__(self, env: gym.vector.VectorEnv, agent: Any, *, window: int | None = None,
                 keep: int | None = None, forecast: int = 0, greedy: bool = True,
                 temperature: float = 1.0, top_k: int | None = None) -> None:
        from agents.narrate.narration import check_rgb_frames

        super().__init__(env)
        check_rgb_frames(env.single_observation_space, agent, "VectorNarrationWrapper")
        mode = env.metadata.get("autoreset_mode", gym.vector.AutoresetMode.NEXT_STEP)
        mode = getattr(mode, "value", mode)
        if mode not in ("NextStep", "SameStep"):
            raise NarrationError(
                f"VectorNarrationWrapper follows autoreset modes next_step and same_step, got "
                f"{mode!r}; build the vector env with autoreset_mode=AutoresetMode.NEXT_STEP.")
        self._same_step = mode == "SameStep"
        self.narrator = VectorNarrator(agent, num_envs=env.num_envs, window=window, keep=keep,
                                       forecast=forecast, greedy=greedy, temperature=temperature,
                                       top_k=top_k)
        self._done = np.zeros(env.num_envs, dtype=bool)

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self.narrator.reset(seed if isinstance(seed, int) or seed is None else seed[0])
        self._done[:] = False
        return obs, self._narrate(obs, info, None)

    def step(self, actions: Any):
        if self.narrator.state is None:
            raise NarrationError("VectorNarrationWrapper.step called before reset(); call "
                                 "env.reset() first.")
        obs, reward, terminated, truncated, info = self.env.step(actions)
        done = np.logical_or(terminated, truncated)
        starts = done if self._same_step else self._done
        self._done = done
        return obs, reward, terminated, truncated, self._narrate(obs, info, starts)

    def _narrate(self, obs: np.ndarray, info: dict[str, Any], starts: np.ndarray | None) -> dict:
        out = self.narrator.step(np.asarray(obs), starts=starts)
        info = dict(info)
        n = self.num_envs
        info["narration"] = np.array(out.text, dtype=object)
        info["narration_tokens"] = out.ids.cpu().numpy()
        info["narration_entropy"] = out.entropy.cpu().numpy()
        keys = ["narration", "narration_tokens", "narration_entropy"]
        if self.narrator.forecast:
            info["forecast"] = np.empty(n, dtype=object)  # one list per env, not an [N, F] array
            info["forecast"][:] = [list(f) for f in out.forecast]
            info["forecast_tokens"] = out.forecast_ids.cpu().numpy()
            keys += ["forecast", "forecast_tokens"]
        for key in keys:
            info[f"_{key}"] = np.ones(n, dtype=bool)
        return info


__all__ = ["VECTOR_FORECASTS", "VectorNarrationWrapper", "VectorNarrator", "VectorParallelForecast",
           "VectorPrefixForecast", "copy_rows", "zeroed_cache"]
