"""Demo: roll out Crafter with a random policy and print a summary of the annotations.

``python -m byog_env.demo --out runs/demo`` (what ``make demo`` runs).
"""
from __future__ import annotations

import collections
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import tyro
from tqdm import tqdm


@dataclass
class DemoConfig:
    out: Path = Path("runs/demo")
    """Directory for summary.json (created if missing)."""
    env: str = "crafter"
    """Environment name (see `python -m byog_env list`)."""
    episodes: int = 3
    """Number of episodes to roll out."""
    max_steps: int = 300
    """Step limit per episode."""
    seed: int = 0
    """Seed of the first episode and of the random policy."""
    samples: int = 3
    """Example annotations printed per event kind."""

    def __post_init__(self) -> None:
        if self.episodes < 1 or self.max_steps < 1:
            raise ValueError(
                f"episodes and max_steps must be positive; got episodes={self.episodes}, "
                f"max_steps={self.max_steps}."
            )


def run(cfg: DemoConfig) -> dict:
    """Rolls out ``cfg.episodes`` random-policy episodes; returns the summary dict."""
    import byog_env
    from byog_env.crafter import ACHIEVEMENTS

    env = byog_env.make(cfg.env, max_episode_steps=cfg.max_steps)
    rng = np.random.default_rng(cfg.seed)
    kinds: collections.Counter[str] = collections.Counter()
    examples: dict[str, dict[str, None]] = collections.defaultdict(dict)
    episodes = []
    with tqdm(total=cfg.episodes * cfg.max_steps, desc=f"{cfg.env} random rollouts", unit="step") as bar:
        for ep in range(cfg.episodes):
            _, info = env.reset(seed=cfg.seed + ep)
            steps, ret, done = 0, 0.0, False
            while not done:
                for sentence in info["annotations"]:
                    kind = byog_env.parse_event(sentence).kind
                    kinds[kind] += 1
                    examples[kind].setdefault(sentence)
                if steps == cfg.max_steps:
                    break
                _, reward, terminated, truncated, info = env.step(env.action_space.sample()
                                                                   if cfg.env != "crafter"
                                                                   else int(rng.integers(17)))
                steps, ret, done = steps + 1, ret + float(reward), terminated or truncated
                bar.update(1)
            for sentence in info["annotations"] if done else []:
                kind = byog_env.parse_event(sentence).kind
                kinds[kind] += 1
                examples[kind].setdefault(sentence)
            unlocked = sorted(k for k, v in info.get("achievements", {}).items() if v > 0)
            episodes.append({"episode": ep, "steps": steps, "return": round(ret, 2),
                             "achievements": unlocked})
    env.close()
    summary = {
        "config": {k: str(v) for k, v in asdict(cfg).items()},
        "annotator_version": byog_env.ANNOTATOR_VERSION,
        "episodes": episodes,
        "steps": sum(e["steps"] for e in episodes),
        "event_counts": dict(kinds.most_common()),
        "examples": {k: list(v)[: cfg.samples] for k, v in sorted(examples.items())},
        "num_achievements": len(ACHIEVEMENTS),
    }
    return summary


def print_summary(summary: dict) -> None:
    """Human-readable summary on stdout."""
    print(f"\n{len(summary['episodes'])} episodes, {summary['steps']} steps "
          f"(annotator {summary['annotator_version']})")
    for e in summary["episodes"]:
        ach = ", ".join(e["achievements"]) or "none"
        print(f"  episode {e['episode']}: {e['steps']} steps, return {e['return']:.2f}, "
              f"achievements: {ach}")
    print("annotations by event kind:")
    for kind, count in summary["event_counts"].items():
        sample = " | ".join(summary["examples"][kind])
        print(f"  {kind:<12} {count:>5}   e.g. {sample}")


def main(cfg: DemoConfig) -> dict:
    summary = run(cfg)
    cfg.out.mkdir(parents=True, exist_ok=True)
    (cfg.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print_summary(summary)
    print(f"summary written to {cfg.out / 'summary.json'}")
    return summary


def cli() -> None:
    cfg = tyro.cli(DemoConfig)
    try:
        main(cfg)
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    cli()
