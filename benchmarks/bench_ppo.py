"""PPO wall clock with a frozen narrator encoder: features cached in the rollout vs re-encoded on
every minibatch, beside SB3's own CnnPolicy, side by side in one run.

The encoder is the ``random`` arm (a BYOG agent at random weights: the same architecture and
compute as a pretrained one, no checkpoint needed). Each setting runs the same PPO budget
(``--timesteps`` over 4 Crafter envs, 128-step rollouts, 4 epochs of 64-sample minibatches, one
torch thread). Re-encoding costs one encoder pass per sample per epoch; the cache costs one per
env step, so the ratio ``reencode / cached`` grows with ``n_epochs``.

    python benchmarks/bench_ppo.py                 # ~2 min on one core
    python benchmarks/bench_ppo.py --timesteps 256 # a quick look

The last line is one JSON object with the figures.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from experiments.rl_finetune import RLConfig, run  # noqa: E402  (after the sys.path line: runs as a script)


def seconds(out: Path, env: str, timesteps: int, **kw) -> float:
    """Wall seconds of ``model.learn`` for one PPO run."""
    res = run(RLConfig(env=env, out=out, timesteps=timesteps, num_envs=4, n_steps=128, max_episode_steps=64,
                       eval_episodes=0, threads=1, **kw))
    return float(res["rl/seconds"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="crafter")
    ap.add_argument("--timesteps", type=int, default=1024)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        cnn = seconds(t / "cnn", args.env, args.timesteps, encoder="cnnpolicy")
        reencode = seconds(t / "re", args.env, args.timesteps, encoder="random", cache_features=False)
        cached = seconds(t / "cached", args.env, args.timesteps, encoder="random")
    fig = {"env": args.env, "timesteps": args.timesteps, "cnnpolicy_s": round(cnn, 2),
           "byog_reencode_s": round(reencode, 2), "byog_cached_s": round(cached, 2),
           "speedup_cached_vs_reencode": round(reencode / cached, 2),
           "byog_cached_vs_cnnpolicy": round(cached / cnn, 2), "byog_reencode_vs_cnnpolicy": round(reencode / cnn, 2)}
    print(f"PPO {args.timesteps} steps on {args.env}: CnnPolicy {cnn:.1f} s | BYOG re-encoded per minibatch "
          f"{reencode:.1f} s | BYOG cached in the rollout {cached:.1f} s -> cache speed-up "
          f"{reencode / cached:.2f}x; cached BYOG costs {cached / cnn:.2f}x CnnPolicy")
    print(json.dumps(fig))


if __name__ == "__main__":
    main()
