"""Live narration of N envs at once: one batched, KV-cached decode per step, per-env resets.

:class:`VectorNarrator` is :class:`agents.narrator.Narrator` for streams that do NOT run in
lock-step: each env has its own context (frames narrated since its reset or its last slide), so
envs reset and slide their window at different steps, yet all N are narrated by ONE batched
decode per token position. :class:`VectorNarrationWrapper` puts it on a gymnasium vector env.

How the rows of one batched cache stay independent
--------------------------------------------------
The KV cache is preallocated for ``window * k`` slots per row and zero-filled. Row b's context
holds ``frames[b]`` frames, i.e. positions ``0 .. frames[b]*k - 1``; a decode step feeds every
row its own position (``TokenLM.hidden(positions=...)``, added for this in
:mod:`agents.decode_plan`): rotary at that position, the key/value written to that row's slot,
and an additive mask that hides the row's later slots (left over from before a reset or a
slide). So:

* a **reset** row just restarts at position 0 with ``<bos>`` (its old slots are masked, then
  overwritten);
* a **slide** (a row's context reached ``window`` frames) re-encodes that row's last ``keep``
  frames from position 0 in one teacher-forced pass (``NarrationEncoder.prefill``, all rows
  sliding at that step together) and copies the result into the row's first ``keep * k`` slots,
  exactly what a single-env :class:`~agents.narrator.Narrator` does (see its module docstring
  for why a slide re-encodes instead of trimming).

Each row therefore sees the very context a single-env narrator of that env sees, at the same
positions: greedy narration equals per-env narration token for token up to float rounding of
the batched matmuls (``tests/test_vector_narration.py``). With xattn fusion the frame memory is
the per-row context buffer under a per-row frame mask.

Sampled (non-greedy) narration draws from one generator for the batch: it is reproducible for
a given N and seed, but a row's draws depend on the batch (greedy narration does not).
Forecasts are not offered here (the prefix forecaster's context cache is one per batch); use
:class:`~agents.narrator.Narrator` with ``forecast=N`` for a single stream.
"""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from agents import monitors as M
from agents.errors import NarrationError
from agents.lm import sample_tokens
from agents.narrator import NarrationStep, Narrator, needs_column_message
from agents.text import unslot


class VectorNarrator(Narrator):
    """Narrates one frame per env per step for ``num_envs`` envs that reset at their own steps.

    Args:
        agent: A :class:`agents.model.BYOGAgent`.
        num_envs: Number of envs (rows of the batched decode).
        window: Most frames in an env's context (None = the checkpoint's training window).
        keep: Frames re-encoded when an env's window is full (default ``window // 2``).
        greedy, temperature, top_k, seed, decode: see :class:`~agents.narrator.Narrator`.
    """

    def __init__(self, agent: Any, *, num_envs: int, window: int | None = None,
                 keep: int | None = None, greedy: bool = True, temperature: float = 1.0,
                 top_k: int | None = None, seed: int = 0, decode: bool = True) -> None:
        if num_envs < 1:
            raise NarrationError(f"num_envs must be >= 1, got {num_envs}.")
        super().__init__(agent, batch_size=num_envs, window=window, keep=keep, forecast=0,
                         greedy=greedy, temperature=temperature, top_k=top_k, seed=seed,
                         decode=decode)
        self.num_envs = num_envs
        self.frames = np.zeros(num_envs, dtype=np.int64)  # frames in each env's context

    # ------------------------------------------------------------------ state
    def reset(self, seed: int | None = None) -> None:
        """Clear every env's context; seed the sampling generator."""
        self.generator.manual_seed(self._seed if seed is None else int(seed))
        N, W, k, tlm = self.num_envs, self.window, self.k, self.enc.tlm
        p = next(self.agent.parameters())
        self.state = self.enc.start(N, self.device)
        self.state.cache = cache = tlm.new_cache(W * k)
        H = tlm.core.config.num_attention_heads
        for layer in cache.layers:  # zero-filled: masked slots must hold finite values
            empty = p.new_empty(N, H, 0, tlm.hidden_size // H)
            layer.lazy_initialization(empty, empty)
            layer.kv.zero_()
        self._E = p.new_zeros(N, W, tlm.hidden_size)  # frame embeddings of each context
        self._I = torch.zeros(N, W, k, dtype=torch.long, device=self.device)  # their tokens
        self.frames[:] = 0
        self.reencodes = 0  # env slides since the last reset (a slide of 3 envs counts 3)

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
        with torch.inference_mode():
            ids, logits, hs = self._decode(e_t, f)
        ids, logits = torch.stack(ids, 1), torch.stack(logits, 1)  # [N, k], [N, k, V]
        self._I[rows, f] = ids
        self.frames += 1
        self.state.prev, self.state.hidden = ids[:, -1].clone(), torch.stack(hs, 1)
        ent = M.position_entropy(logits).mean(-1)  # [N]
        text = (["; ".join(s[0]) for s in unslot(ids[:, None], self.agent.tokenizer)]
                if self.decode else [])
        return NarrationStep(ids=ids, text=text, entropy=ent,
                             forecast_ids=ids.new_zeros(self.num_envs, 0, self.k),
                             forecast=[[] for _ in range(self.num_envs)], hidden=self.state.hidden)

    def _decode(self, e_t: torch.Tensor, f: torch.Tensor) -> tuple[list, list, list]:
        """k batched decode steps, each row at its own position (``NarrationEncoder._frame``
        with per-row positions): lists of k tokens [N], logits [N, V], hidden states [N, D]."""
        enc, tlm, k = self.enc, self.enc.tlm, self.k
        embed, logits_of = tlm.token_io()
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
            ids.append(prev)
            logits.append(z)
            hs.append(h)
        return ids, logits, hs

    def _slide(self, envs: np.ndarray) -> None:
        """Re-encode the last ``keep`` frames of the full ``envs`` from position 0, in one
        teacher-forced pass for all of them, into their rows' first slots."""
        W, R = self.window, self.keep
        sel = torch.as_tensor(envs, device=self.device)
        e, ids = self._E[sel, W - R:], self._I[sel, W - R:]  # [S, R, D], [S, R, k]
        _, _, st = self.enc.prefill(ids, e)
        L = R * self.k
        for mine, theirs in zip(self.state.cache.layers, st.cache.layers, strict=True):
            mine.kv[sel, :, :L] = theirs.kv[:, :, :L]
        self._E[sel, :R], self._I[sel, :R] = e, ids
        self.frames[envs] = R
        self.state.prev = self.state.prev.index_copy(0, sel, ids[:, -1, -1])
        self.reencodes += len(envs)


class VectorNarrationWrapper(gym.vector.VectorWrapper):
    """Narrates every frame of every env of a gymnasium vector env, one batched decode a step.

    ``reset`` and ``step`` add to ``info`` (vector-env style, one entry per env, with the
    ``_<key>`` masks all True): ``narration`` (object array of N str), ``narration_tokens``
    (int64 [N, k]) and ``narration_entropy`` (float [N]). An env that finished starts a fresh
    context on its first frame of the next episode (autoreset mode ``next_step``, gymnasium's
    default: the step after the end; ``same_step``: the step that ended it, whose observation is
    already the next episode's first).

    Args:
        env: A vector env with ``Box(0, 255, (H, W, 3), uint8)`` single observations.
        agent: A BYOG agent (its ``frame_shape``, when set, must match the env's).
        window, keep, greedy, temperature, top_k: see :class:`VectorNarrator`.
    """

    def __init__(self, env: gym.vector.VectorEnv, agent: Any, *, window: int | None = None,
                 keep: int | None = None, greedy: bool = True, temperature: float = 1.0,
                 top_k: int | None = None) -> None:
        from agents.narration import check_rgb_frames

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
                                       greedy=greedy, temperature=temperature, top_k=top_k)
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
        for key in ("narration", "narration_tokens", "narration_entropy"):
            info[f"_{key}"] = np.ones(n, dtype=bool)
        return info


__all__ = ["VectorNarrationWrapper", "VectorNarrator"]
