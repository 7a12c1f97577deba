"""Train a BYOG agent on a collected dataset.

    python -m agents.training --data data/crafter --out runs/demo --steps 500
    python -m agents.training --data DIR --out RUN --preset captioner --size small --model.obs.kind vqvae
    python -m agents.training --data DIR --out RUN --steps 2000 --resume     # continue after a kill
    torchrun --standalone --nproc_per_node=2 -m agents.training --data DIR --out RUN ...   # DDP
    byog-train --data DIR --out RUN ...                                  # the console script

Writes ``RUN/config.yaml``, ``RUN/checkpoints/step_NNNNNN/``, ``RUN/tb/`` (TensorBoard),
``RUN/metrics.jsonl``, ``RUN/plots/*.png`` and ``RUN/summary.json``. Config layering: defaults
→ ``--size``/``--preset`` → ``--config FILE.yaml`` → dotted flags (``--optim.lr 3e-4``); with
``--resume`` and no ``--config`` the run's own ``config.yaml`` is the base.

Runs as ``python -m agents.training`` (torchrun's ``-m`` form too) and as ``byog-train``; the
old ``python -m agents.train`` and script ``python agents/train.py`` still run it, with a
``DeprecationWarning``. Exit codes: 0 done, 2 bad input, 1 runtime failure, 130 interrupted (after
saving a checkpoint at a step boundary); errors are one ``error:`` line.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from agents.training.config import TrainConfig, parse_args


def main(cfg: TrainConfig) -> dict:
    """Train as ``cfg`` says and return the summary dict."""
    from agents.training.loop import train

    return train(cfg)


def cli(argv: list[str] | None = None) -> int:
    """Parse the command line and train (exit codes: see the module docstring)."""
    from byog_core.cli import run_cli

    argv = list(sys.argv[1:] if argv is None else argv)

    def body() -> int:
        cfg = parse_args(_with_run_config(argv))
        cfg.check_paths()
        if not cfg.threads:  # the cores this process may use, shared among DDP ranks
            from byog_env.threads import available_cores

            cfg.threads = max(1, available_cores() // int(os.environ.get("WORLD_SIZE", "1")))
        summary = main(cfg)
        if summary:
            acc, base = summary.get("val_token_accuracy"), summary.get("val_majority_token_accuracy")
            print(f"done: {summary['steps']} steps in {summary['wall_clock_s']:.0f} s, "
                  f"{summary['frames_per_s']:.0f} frames/s; val token acc {_fmt(acc)} "
                  f"(majority {_fmt(base)}), event F1 {_fmt(summary.get('val_event_f1'))}, "
                  f"prefix gain {_fmt(summary.get('val_prefix_gain'))} -> {cfg.out}/summary.json")
        return 0

    # Ctrl-C inside the loop saves a checkpoint at a step boundary (TrainInterrupted says where)
    return run_cli(body, on_interrupt="interrupted: no checkpoint written since the last one; rerun the "
                                "same command (with --resume if the run has checkpoints).")


def _with_run_config(argv: list[str]) -> list[str]:
    """With --resume and no --config, read the run's own config.yaml first."""
    if "--resume" not in argv or any(a == "--config" or a.startswith("--config=") for a in argv):
        return argv
    for i, a in enumerate(argv):
        out = argv[i + 1] if a == "--out" and i + 1 < len(argv) else (
            a.split("=", 1)[1] if a.startswith("--out=") else None)
        if out and (Path(out) / "config.yaml").is_file():
            return ["--config", str(Path(out) / "config.yaml"), *argv]
    return argv


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


if __name__ == "__main__":
    sys.exit(cli())
