"""Helpers shared by several test modules (tests import this, never each other).

* ``cycle_tokenizer`` / ``cycle_batch``: a deterministic cycle of coloured frames with parseable
  annotations, whose future is predictable from its past (model tests).
* ``narrate_live``: greedy narration frame by frame through ``BYOGAgent.start/narrate_step``.
* ``PatternEnv``: a cheap gymnasium stand-in with coloured frames and annotations.
* ``synthetic_dataset`` / ``tiny_args``: a small dataset written through the collector's writer
  in well under a second (episode i's annotations mention ``thing{i}``, so the tokenizer's
  vocabulary shows which episodes it read) and CLI flags for a seconds-long trainer run.
"""
from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from agents.model.text import train_tokenizer
from collect.writer import DatasetWriter

# A deterministic cycle of frame patterns with (parseable) annotations: its future is
# predictable from its past, and the phase is visible in the frames even on nil-only frames.
PERIOD = 6
CYCLE_ANN = {0: ["collected 1 wood"], 2: ["tree in view"], 4: ["made wood pickaxe"]}
CYCLE_COLOURS = torch.tensor([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [0, 255, 255],
                        [255, 0, 255]], dtype=torch.uint8)


def cycle_tokenizer():
    return train_tokenizer([s for v in CYCLE_ANN.values() for s in v])


def cycle_batch(B=8, T=8, size=16, g=None, pad_first=0, labelled=True):
    """A collate_windows-shaped batch of the cycle (random phase per window)."""
    starts = torch.randint(0, PERIOD, (B,), generator=g)
    phase = (starts[:, None] + torch.arange(T)[None]) % PERIOD  # [B, T]
    frames = CYCLE_COLOURS[phase][:, :, None, None, :].expand(B, T, size, size, 3).clone()
    valid = torch.ones(B, T, dtype=torch.bool)
    if pad_first:
        valid[0, T - pad_first:] = False
        frames[0, T - pad_first:] = 0
    ann = [[CYCLE_ANN.get(int(phase[b, t]), []) if valid[b, t] else [] for t in range(T)]
           for b in range(B)]
    return {"frames": frames, "valid": valid, "annotations": ann,
            "actions": torch.zeros(B, T, dtype=torch.long), "rewards": torch.zeros(B, T),
            "episode_index": torch.arange(B), "start": starts,
            "labelled": torch.full((B,), labelled)}



def narrate_live(agent, frames):
    """Greedy narration frame by frame through the incremental API: (ids [B, T, k], final state)."""
    state = agent.start(frames.shape[0])
    steps = []
    for t in range(frames.shape[1]):
        y, state = agent.narrate_step(state, frames[:, t])
        steps.append(y)
    return torch.stack(steps, 1), state




SENTENCES = ["collected 1 wood", "tree in view", "made wood pickaxe", "cow in view"]
COLOURS = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [0, 255, 255],
                    [255, 0, 255]], np.uint8)


class PatternEnv(gym.Env):
    """A cheap stand-in: 16x16 frames cycling through 6 colours (+ seeded noise), annotations."""

    def __init__(self, size: int = 16, length: int = 10**9) -> None:
        self.observation_space = gym.spaces.Box(0, 255, (size, size, 3), np.uint8)
        self.action_space = gym.spaces.Discrete(3)
        self.size, self.length, self.t = size, length, 0

    def _obs(self) -> np.ndarray:
        base = COLOURS[(self.t + self.offset) % len(COLOURS)]
        noise = self.np_random.integers(0, 40, (self.size, self.size, 3), dtype=np.uint8)
        return np.clip(base.astype(np.int16) - noise, 0, 255).astype(np.uint8)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.offset = 0, int(self.np_random.integers(0, 6))
        return self._obs(), {"annotations": []}

    def step(self, action):
        self.t += 1
        ann = [SENTENCES[self.t % 4]] if self.t % 3 == 0 else []
        return self._obs(), 0.0, False, self.t >= self.length, {"annotations": ann}



def synthetic_dataset(path: Path, *, episodes: int = 6, length: int = 24, size: int = 16,
                      env: str = "synthetic", seed: int = 0) -> Path:
    """A dataset whose frames encode (episode, step) and whose annotations name the episode."""
    rng = np.random.default_rng(seed)
    w = DatasetWriter(path, {"env": env, "env_id": env,
                             "action_space": {"type": "Discrete", "n": 4, "start": 0}})
    for i in range(episodes):
        frames = rng.integers(0, 255, (length, size, size, 3), dtype=np.uint8)
        frames[:, 0, 0, 0] = i
        ann = [[f"saw thing{i}"] if t % 3 == 0 else ([] if t % 3 == 1 else ["wood in view"])
               for t in range(length)]
        w.write_episode(i, frames, rng.integers(0, 4, length - 1), annotations=ann, seed=i)
    w.finalize(frame_shape=[size, size, 3])
    return path


def tiny_args(data: Path, out: Path, steps: int = 4, *extra: str) -> list[str]:
    """CLI flags for a seconds-long CPU run of the tiny model on a synthetic dataset."""
    return ["--data", str(data), "--out", str(out), "--steps", str(steps),
            "--loader.window", "8", "--loader.batch_size", "4", "--loader.num_workers", "0",
            "--loader.val_fraction", "0.34", "--logging.no-progress",
            "--logging.examples", "0", "--logging.val_batches", "1", "--logging.eval_every", "0",
            "--logging.no-plots", "--logging.no-tensorboard",
            "--model.lm.hidden_size", "32", "--model.lm.num_heads", "2",
            "--model.lm.intermediate_size", "64", "--model.obs.cnn_channels", "8", "8",
            "--model.obs.out_dim", "32", "--model.text.tokens_per_frame", "4",
            "--schedule.warmup_steps", "2", "--threads", "1", *extra]


# --------------------------------------------------------------------------- imagination
# A small world-model config for 16x16 sprite frames: a 4x4 grid of codes of 4x4 pixels.
SPRITE_WM = {"vqvae_downsample": 2, "vqvae_codebook_size": 32, "vqvae_hidden": 32,
             "vqvae_steps": 200, "vqvae_batch_size": 32, "d_model": 64, "layers": 2, "heads": 4,
             "steps": 500, "batch_size": 32, "lr": 3e-3, "full_mask_fraction": 1.0}


def tiny_agent():
    """An untrained tiny narrator for the sprite env (2 tokens per frame)."""
    from agents.config import make_model_config
    from agents.model.agent import BYOGAgent

    torch.manual_seed(0)
    tok = train_tokenizer(["sprite moved left", "sprite moved right", "sprite moved up"])
    return BYOGAgent(make_model_config("tiny", text={"tokens_per_frame": 2}), tok).eval()
