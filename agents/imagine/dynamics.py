"""``WorldModel``: frame tokens + the frame transformer, trained on transitions, saved beside the
agent's checkpoint, and attached to an agent.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from agents.imagine.config import (
    CONFIG_FILE,
    DECODERS,
    FORMAT_VERSION,
    KIND,
    TOKENS_DIR,
    WEIGHTS_FILE,
    WORLD_MODEL_DIR,
    WorldModelConfig,
    WorldModelError,
    _known,
    _read_json,
    _write_json,
)
from agents.imagine.copy_path import COPY_PATHS, copy_mixture_loss
from agents.imagine.frame_tokens import FRAME_TOKENS, FrameTokens
from agents.imagine.masking import masked_code_loss, training_mask
from agents.imagine.transformer import FrameTransformer
from agents.imagine.transitions import Transitions


# ---------------------------------------------------------------------------------------------
# The world model: tokens + transformer + config
# ---------------------------------------------------------------------------------------------
class WorldModel(nn.Module):
    """Frame tokens + :class:`FrameTransformer` under one :class:`WorldModelConfig`.

    Args:
        cfg: The config.
        tokens: Frame tokens (fitted).
        n_actions: Size of the Discrete action space.
        state_dim: Width of the BYOG state (0 when the condition has no state).
    """

    def __init__(self, cfg: WorldModelConfig, tokens: FrameTokens, *, n_actions: int,
                 state_dim: int) -> None:
        super().__init__()
        self.cfg, self.tokens = cfg, tokens
        self.n_actions = int(n_actions)
        self.state_dim = int(state_dim) if cfg.conditioning.state else 0
        h, w = tokens.grid
        torch.manual_seed(cfg.seed)
        self.net = FrameTransformer(vocab=tokens.vocab, grid=(h, w), n_actions=self.n_actions,
                                    state_dim=self.state_dim, d_model=cfg.d_model,
                                    layers=cfg.layers, heads=cfg.heads,
                                    copy_offsets=COPY_PATHS[cfg.copy])
        # codes a copy may stand for (one texture under drifting light), for the copy loss
        self.near = tokens.equivalent(cfg.copy_tolerance) if cfg.copy_tolerance > 0 else None

    # -- inputs ----------------------------------------------------------------------------
    def action_ids(self, actions: torch.Tensor | None, batch: int) -> torch.Tensor:
        """Long [B]: the actions, or the learned "no action" id where they are None / < 0 or the
        condition does not read actions."""
        none = torch.full((batch,), self.n_actions, dtype=torch.long)
        if actions is None or not self.cfg.conditioning.action:
            return none
        a = torch.as_tensor(actions, dtype=torch.long).reshape(batch)
        if bool((a >= self.n_actions).any()):
            raise WorldModelError(f"Action ids must be < {self.n_actions} (the dataset's action "
                                  f"space), got {int(a.max())}.")
        return torch.where(a >= 0, a, none)

    def state_input(self, state: torch.Tensor | None) -> torch.Tensor | None:
        return state if self.cfg.conditioning.state else None

    # -- training --------------------------------------------------------------------------
    def training_step(self, data: Transitions, rows: torch.Tensor, generator: torch.Generator,
                      ) -> tuple[torch.Tensor, dict[str, float]]:
        """Masked-code loss on the transitions ``rows`` (indices into ``data.pairs``)."""
        t = data.pairs[rows]
        B = t.shape[0]
        cur, nxt = data.codes[t].flatten(1), data.codes[t + 1].flatten(1)  # [B, N]
        mask = training_mask(B, cur.shape[1], full_fraction=self.cfg.full_mask_fraction,
                             generator=generator)
        revealed = nxt.masked_fill(mask, self.net.mask_id)
        a = self.action_ids(data.actions[t], B)
        drop = torch.rand(B, generator=generator) < self.cfg.action_dropout
        a = torch.where(drop, torch.full_like(a, self.n_actions), a)
        state = self.state_input(data.states[t] if data.states is not None else None)
        vocab, copy = self.net.heads(cur, revealed, state, a)
        if copy is None:
            return masked_code_loss(vocab, nxt, mask)
        return copy_mixture_loss(vocab, copy, cur, self.net.copy_source, self.net.copy_valid, nxt,
                                 mask, self.near)

    # -- prediction ------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, codes: torch.Tensor, state: torch.Tensor | None = None,
                actions: torch.Tensor | None = None, *, greedy: bool = True,
                temperature: float = 1.0, generator: torch.Generator | None = None,
                decoding: str | None = None, steps: int | None = None) -> torch.Tensor:
        """Frame t+1's codes long [B, h, w] from frame t's codes [B, h, w], the BYOG state
        [B, Ds] and the actions long [B] (None or -1: no action input)."""
        B, h, w = codes.shape
        decoding = decoding or self.cfg.decoding
        _known("decoding", decoding, DECODERS)
        cur = codes.reshape(B, h * w)
        a = self.action_ids(actions, B)
        s = self.state_input(state)
        if s is None and self.cfg.conditioning.state:
            raise WorldModelError("This world model reads the BYOG state; pass state=[B, D].")
        revealed = torch.full_like(cur, self.net.mask_id)
        out = DECODERS[decoding](lambda r: self.net(cur, r, s, a), revealed,
                                 mask_id=self.net.mask_id, greedy=greedy,
                                 temperature=temperature, generator=generator,
                                 steps=steps or self.cfg.decoding_steps)
        return out.view(B, h, w)

    @torch.no_grad()
    def copied_from(self, codes: torch.Tensor, pred: torch.Tensor, state: torch.Tensor | None = None,
                    actions: torch.Tensor | None = None) -> torch.Tensor:
        """Where each predicted code was copied from: long [B, h*w] flat positions of frame t
        (-1: none). A position counts as copied when a copy source holds exactly its predicted
        code; the most likely such source (copy logits of the one-pass prediction) is chosen."""
        B, h, w = codes.shape
        none = torch.full((B, h * w), -1, dtype=torch.long)
        if self.net.copy_head is None:
            return none
        cur, p = codes.reshape(B, h * w), pred.reshape(B, h * w)
        masked = torch.full_like(cur, self.net.mask_id)
        _, copy = self.net.heads(cur, masked, self.state_input(state), self.action_ids(actions, B))
        src = self.net.copy_source  # [N, O]
        hit = (cur[:, src] == p[..., None]) & self.net.copy_valid  # [B, N, O]
        best = copy.masked_fill(~hit, float("-inf")).argmax(-1)  # [B, N]
        chosen = src[torch.arange(h * w)[None], best]  # [B, N]
        return torch.where(hit.any(-1), chosen, none)

    # -- persistence -----------------------------------------------------------------------
    def save(self, path: str | Path, **meta: Any) -> Path:
        """Write ``config.json``, ``model.safetensors`` and ``tokens/`` to ``path`` atomically
        (written beside it, then renamed; only a directory this class wrote is replaced)."""
        import os
        import shutil

        from safetensors.torch import save_file

        path = Path(path)
        if path.exists() and not _is_world_model(path):
            raise WorldModelError(f"{path} exists and is not a world model directory; choose "
                                  "another output path (nothing was overwritten).")
        tmp = path.with_name(f".tmp-{path.name}")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        save_file({k: v.contiguous() for k, v in self.net.state_dict().items()},
                  str(tmp / WEIGHTS_FILE))
        self.tokens.save(tmp / TOKENS_DIR)
        _write_json(tmp / CONFIG_FILE, {
            "kind": KIND, "format_version": FORMAT_VERSION, "config": self.cfg.to_dict(),
            "n_actions": self.n_actions, "state_dim": self.state_dim,
            "tokens": self.tokens.name, **meta})
        if path.exists():
            old = path.with_name(f".old-{path.name}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> WorldModel:
        """Load a world model written by :meth:`save`."""
        from safetensors.torch import load_file

        from agents.model.weights import check_dir, check_weights

        path = check_dir(Path(path), what="World-model directory", error=WorldModelError)
        if not _is_world_model(path):
            raise WorldModelError(
                f"No world model at {path} (expected {CONFIG_FILE} of kind {KIND!r} and "
                f"{WEIGHTS_FILE}); train one with `python -m agents.imagine --checkpoint RUN "
                "--data DIR --train-steps N ...`.")
        meta = _read_json(path / CONFIG_FILE)
        if meta.get("format_version") != FORMAT_VERSION:
            raise WorldModelError(f"{path} has world-model format {meta.get('format_version')}, "
                                  f"this code reads {FORMAT_VERSION}; retrain it.")
        # models saved before the copy path existed had none
        cfg = WorldModelConfig.from_dict({"copy": "none", **meta["config"]})
        tdir = path / TOKENS_DIR
        tmeta = _read_json(tdir / "frame_tokens.json")
        if tmeta.get("name") not in FRAME_TOKENS:
            raise WorldModelError(f"{tdir} holds frame tokens {str(tmeta.get('name'))[:40]!r}; known: "
                                  f"{sorted(FRAME_TOKENS)}. Retrain the world model.")
        tokens = FRAME_TOKENS[tmeta["name"]].load(tdir, tmeta)  # type: ignore[attr-defined]
        # the config's network compared with the file's tensors before it is built (issue #26)
        check_weights(lambda: cls(cfg, tokens, n_actions=meta["n_actions"], state_dim=meta["state_dim"]).net,
                      path / WEIGHTS_FILE, what="World-model weights", error=WorldModelError)
        wm = cls(cfg, tokens, n_actions=meta["n_actions"], state_dim=meta["state_dim"])
        wm.net.load_state_dict(load_file(str(path / WEIGHTS_FILE)))
        wm.meta = meta
        return wm.eval()


def _is_world_model(path: Path) -> bool:
    f = path / CONFIG_FILE
    if not f.is_file() or not (path / WEIGHTS_FILE).is_file():
        return False
    try:
        return json.loads(f.read_text()).get("kind") == KIND
    except json.JSONDecodeError:
        return False


def train_world_model(wm: WorldModel, data: Transitions, *, log_every: int = 0,
                      printer: Callable[[str], None] = print) -> dict[str, Any]:
    """Train ``wm.net`` on ``data`` for ``wm.cfg.steps`` AdamW steps (the stage-2 loop).

    Returns:
        ``{"history": {"wm/ce": [...], ...}, "cpu_s": .., "wall_s": ..}``.
    """
    cfg = wm.cfg
    if len(data.pairs) == 0:
        raise WorldModelError("No transitions to train on (every episode has one frame or no "
                              "actions); collect episodes with actions.")
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.AdamW(wm.net.parameters(), lr=cfg.lr, weight_decay=0.01)
    warm = max(1, cfg.steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm))
    history: dict[str, list[float]] = {}
    wm.net.train()
    t0, c0 = time.perf_counter(), time.process_time()
    for step in range(cfg.steps):
        rows = torch.randint(len(data.pairs), (min(cfg.batch_size, len(data.pairs)),), generator=gen)
        loss, metrics = wm.training_step(data, rows, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(wm.net.parameters(), 1.0)
        opt.step()
        sched.step()
        for k, v in metrics.items():
            history.setdefault(k, []).append(v)
        if log_every and ((step + 1) % log_every == 0 or step + 1 == cfg.steps):
            printer(f"world model step {step + 1}/{cfg.steps}: ce {np.mean(history['wm/ce'][-log_every:]):.3f}"
                    f" masked acc {np.mean(history['wm/masked_accuracy'][-log_every:]):.3f}")
    wm.net.eval()
    return {"history": history, "cpu_s": time.process_time() - c0,
            "wall_s": time.perf_counter() - t0}


def attach_world_model(agent: Any, wm: WorldModel | None) -> None:
    """Make ``wm`` the agent's world model (None: detach). Kept out of the agent's modules on
    purpose: assigning an ``nn.Module`` attribute would register it, and the agent's checkpoint
    (``save_pretrained``) would then carry the world model's weights."""
    if wm is None:
        agent.__dict__.pop("world_model", None)
    else:
        agent.__dict__["world_model"] = wm


def attached_world_model(agent: Any) -> WorldModel:
    """``agent.world_model``, loading it from beside the agent's checkpoint on first use."""
    wm = getattr(agent, "world_model", None)
    if wm is None:
        ckpt = (getattr(agent, "metadata", None) or {}).get("checkpoint")
        if ckpt is None:
            raise WorldModelError("This agent has no world model; set agent.world_model = "
                                  "WorldModel.load(dir) or load the agent with load_agent(RUN) "
                                  "from a run whose checkpoint has world_model/.")
        wm = WorldModel.load(Path(ckpt) / WORLD_MODEL_DIR)
        attach_world_model(agent, wm)
    return wm
