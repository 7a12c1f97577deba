"""Step rate of raw ``crafter.Env`` vs the annotated ``byog_env.make("crafter")``, interleaved.

Both run the same random actions in alternating blocks so machine load hits them alike; only
``step`` calls are timed (episode resets, i.e. world generation, are excluded from both).
The last line is one JSON object with the figures. Target: annotated >= 0.9x raw.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass

import numpy as np
import tyro


@dataclass
class BenchConfig:
    steps: int = 2000
    """Timed steps per env."""
    block: int = 100
    """Steps per interleaved block."""
    seed: int = 0
    """World seed and action seed."""
    quick: bool = False
    """Shortcut for steps=400."""


class _Runner:
    """Steps one env over a fixed action stream, resetting (untimed) at episode ends."""

    def __init__(self, env, raw: bool, seed: int) -> None:
        self.env, self.raw, self.seconds, self.steps = env, raw, 0.0, 0
        self.env.reset() if raw else self.env.reset(seed=seed)

    def run(self, actions: np.ndarray) -> None:
        for a in actions:
            t = time.perf_counter()
            out = self.env.step(int(a))
            self.seconds += time.perf_counter() - t
            self.steps += 1
            if (out[2] if self.raw else out[2] or out[3]):
                self.env.reset()


def main(cfg: BenchConfig) -> dict:
    import crafter

    import byog_env

    steps = 400 if cfg.quick else cfg.steps
    actions = np.random.default_rng(cfg.seed).integers(0, 17, size=steps)
    raw = _Runner(crafter.Env(seed=cfg.seed), raw=True, seed=cfg.seed)
    ours = _Runner(byog_env.make("crafter"), raw=False, seed=cfg.seed)
    for start in range(0, steps, cfg.block):
        chunk = actions[start:start + cfg.block]
        raw.run(chunk)
        ours.run(chunk)
    raw_rate, ours_rate = raw.steps / raw.seconds, ours.steps / ours.seconds
    result = {
        "raw_steps_per_s": round(raw_rate, 1),
        "annotated_steps_per_s": round(ours_rate, 1),
        "ratio": round(ours_rate / raw_rate, 3),
        "steps": steps,
        "target_ratio": 0.9,
    }
    print(f"raw crafter.Env:        {raw_rate:8.1f} steps/s")
    print(f"annotated byog crafter: {ours_rate:8.1f} steps/s")
    print(f"ratio annotated/raw:    {ours_rate / raw_rate:8.3f} (target >= 0.9)")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main(tyro.cli(BenchConfig))
