"""Narrate a live environment: ``python -m agents.narrate --env crafter --checkpoint runs/x``.

A policy plays ``--episodes`` episodes of ``--env``; a trained BYOG agent narrates every frame
(:class:`agents.narrate.narration.NarrationWrapper`). The narration streams to the terminal beside the
env's true annotations; ``--out`` receives ``narration.mp4`` (frames enlarged, narration,
forecast and annotations as subtitles), ``narration.jsonl`` (one line per step) and
``summary.json``: event precision/recall/F1 of the narration against the annotations (timing
tolerance ``--tolerance`` frames, a 95% bootstrap interval over episodes), the signed lag of each
narrated event to the nearest true event of its kind (``lag``: p50/p90 of |lag|, the paired
share) and the collapse monitors per time bucket of ``--bucket`` steps (does the language
degenerate as the episode goes on?), plotted against time in ``narration_over_time.png``.

Live vs offline on the same episodes: the very frames narrated live are narrated again
*offline* (non-overlapping training-length windows from frame 0, as the trainer's validation
does) and scored the same way (``offline/...`` keys), so ``live - offline`` reads the cost of
live narration (its bounded, sliding context) apart from the sample of episodes; with
``--steps >= 2 * --drift`` also the paired change of that difference from the first ``--drift``
steps to the last (``drift/...``: does live narration fall behind as the episode goes on?).
Live and offline decoders keep the training targets' slot format (:mod:`agents.model.slot_rule`):
the tokens its carry bound cut and the slots its early exit found ill-formed are reported.
"""
from __future__ import annotations

import json
import sys
from typing import Any

from agents.narrate.config import JSONL, MP4, PLOT, SUMMARY, NarrateConfig
from agents.narrate.episodes import make_printer, run_episodes, run_episodes_vector, video_subtitles
from agents.narrate.gate_sweep import print_sweep, sentence_gate_sweep, write_sweep
from agents.narrate.narration import (
    NarrationWrapper,
    check_frame_shape,
    load_narrating_agent,
)
from agents.narrate.scoring import offline_narration, summarize
from agents.narrate.summary import _finite, plot_over_time, print_summary

# --------------------------------------------------------------------------- entry points


def main(cfg: NarrateConfig) -> dict[str, Any]:
    """Run the narration, write the outputs, print and return the summary."""
    from rich.console import Console

    import byog_env
    from agents.model.accel import autocast, compile_agent
    from agents.training.checkpoint import check_trained_env
    from byog_env.threads import set_threads
    from collect.policies import make_policy

    if cfg.threads:  # the CLI resolves 0 to the cores this process may use
        set_threads(cfg.threads, import_torch=True)
    console = Console(highlight=False)
    agent = load_narrating_agent(cfg.checkpoint, device=cfg.device)
    base = byog_env.make(cfg.env)
    check_trained_env(agent, base, name=cfg.env)  # same frame size, other env: warn
    if cfg.num_envs > 1:  # more envs of the same kind, each with its own policy
        envs = [base] + [byog_env.make(cfg.env) for _ in range(cfg.num_envs - 1)]
        check_frame_shape(getattr(agent, "frame_shape", None), base.observation_space.shape)
        policies = [make_policy(cfg.policy, e, seed=cfg.seed + i) for i, e in enumerate(envs)]
    else:
        env = NarrationWrapper(base, agent, window=cfg.window, keep=cfg.keep, forecast=cfg.forecast,
                               greedy=cfg.greedy, temperature=cfg.temperature, top_k=cfg.top_k,
                               cut=cfg.cut, early_exit=cfg.early_exit, word_share=cfg.word_share,
                               sentence_share=cfg.sentence_share,
                               shares=bool(cfg.sentence_share_sweep))
        policy = make_policy(cfg.policy, base, seed=cfg.seed)
        envs = [env]
    cfg.out.mkdir(parents=True, exist_ok=True)
    console.print(f"Narrating {cfg.episodes} episode(s) of {cfg.env!r} played by {cfg.policy!r} "
                  f"(checkpoint {cfg.checkpoint}); [cyan]narration[/] │ [green]true annotations[/]")
    printer = make_printer(cfg, console)
    if cfg.compile:
        compile_agent(agent)
    try:
        with open(cfg.out / JSONL, "w") as jsonl, autocast(cfg.precision, cfg.device):
            if cfg.num_envs > 1:
                logs, narrate_s = run_episodes_vector(cfg, agent, envs, policies, printer, jsonl)
            else:
                logs, narrate_s = run_episodes(cfg, env, policy, printer, jsonl)
    finally:
        for e in envs:
            e.close()
    offline = None
    if cfg.offline:
        with autocast(cfg.precision, cfg.device):
            offline = offline_narration(cfg, agent, logs)
    summary = summarize(cfg, logs, agent.tokenizer, narrate_s,
                        has_annotations=any(lg.annotated for lg in logs), offline=offline)
    if cfg.sentence_share_sweep:
        summary["sentence_gate_sweep"] = sentence_gate_sweep(cfg, agent, logs)
    return write_outputs(cfg, logs, summary, console)


def write_outputs(cfg: NarrateConfig, logs: list, summary: dict[str, Any],
                  console: Any) -> dict[str, Any]:
    """The video, summary.json, the plot over time and the sweep's files in ``cfg.out``; the
    summary printed. Returns the summary as written (NaN -> None)."""
    from collect.video import write_video

    if cfg.video:
        frames = [f for lg in logs for f in lg.frames]
        subs = [s for lg in logs for s in video_subtitles(lg)]
        write_video(cfg.out / MP4, frames, subs, scale=cfg.scale, fps=cfg.fps, band_lines=4)
    summary = _finite(summary)
    (cfg.out / SUMMARY).write_text(json.dumps(summary, indent=2))
    plot_over_time(summary, cfg.out / PLOT)
    print_summary(summary, console)
    swept = []
    if summary.get("sentence_gate_sweep"):
        print_sweep(summary["sentence_gate_sweep"], console)
        swept = write_sweep(summary["sentence_gate_sweep"], cfg.out)
    console.print(f"Wrote {cfg.out / JSONL}, {cfg.out / SUMMARY}, {cfg.out / PLOT}"
                  + "".join(f", {p}" for p in swept)
                  + (f" and the video {cfg.out / MP4}" if cfg.video else ""))
    return summary


def cli(argv: list[str] | None = None) -> int:
    """Command-line entry point (``byog-narrate``): 0 done, 2 bad input, 1 runtime failure,
    130 interrupted; errors are one ``error:`` line, no traceback."""
    import tyro

    from byog_core.cli import run_cli
    from byog_env.threads import resolve_threads

    def body() -> int:
        try:
            cfg = tyro.cli(NarrateConfig, args=argv, description=__doc__.split("\n")[0])
        except SystemExit as exit_:  # --help, or tyro's own one-message parse/validation error
            return int(exit_.code or 0)
        cfg.threads = resolve_threads(cfg.threads)  # 0: the cores this process may use
        main(cfg)
        return 0

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(cli())
