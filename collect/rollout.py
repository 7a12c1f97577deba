"""Collect an annotated dataset: ``python collect/rollout.py --env crafter --policy random --episodes 20 --out data/crafter``.

Runs a policy in ``byog_env`` environments and writes every finished episode to a Parquet dataset
(format: :mod:`collect.format`). Scaling: ``--num-envs K`` runs K worker processes, each running
whole episodes with its own env, annotator, policy and writer (``--vector-mode process``, the
default), or steps K environments in a gymnasium vector env (``--vector-mode async``: one process
each, annotation there, policies here; ``sync``: all in this process); ``--workers N`` /
``--ray-address A`` spreads episodes over Ray actors.

This module is the entry point (also ``byog-collect``): the settings live in
:mod:`collect.config`, the engine (envs, episodes, the ``Collector``) in :mod:`collect.engine`,
where episodes run in :mod:`collect.backends`, and the statistics in :mod:`collect.stats`.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from typing import Any

from byog_core.cli import run_cli
from collect.backends import backend_name, run_backend
from collect.config import CollectConfig, episode_seed  # noqa: F401  (re-exported)
from collect.engine import (  # noqa: F401  (re-exported for old imports)
    Collector,
    EpisodeSource,
    dataset_info,
    make_env,
)
from collect.errors import CollectError, parse_cli  # noqa: F401  (re-exported)
from collect.stats import event_kind, format_summary, summarize  # noqa: F401  (re-exported)
from collect.writer import DatasetWriter


def collect_dataset(cfg: CollectConfig) -> dict[str, Any]:
    """Runs a whole collection (in the backend the settings pick) and returns the summary."""
    from tqdm import tqdm

    info = dataset_info(cfg)
    if cfg.resume:
        info["collect_config"]["resume"] = False  # not part of the dataset's identity
    # Episode files are written on a background thread while the env steps (DatasetWriter).
    writer = DatasetWriter(cfg.out, info, resume=cfg.resume, durable=cfg.fsync, background=True)
    info = writer.info  # workers write the dataset's layout (a resumed 1.0 dataset stays 1.0)
    source = EpisodeSource(cfg, writer.records)
    resumed = len(writer.records)
    total = cfg.episodes if cfg.episodes is not None else cfg.steps
    bar = tqdm(total=total, initial=resumed if cfg.episodes else min(source.done_steps, total),
               unit="ep" if cfg.episodes else "step", disable=not cfg.progress, dynamic_ncols=True)
    t0, counts = time.perf_counter(), Counter()
    cpu0 = time.process_time()
    # the stepping loop alone, without env start-up and meta (wall, and this process's CPU)
    loop = {"start": t0, "end": t0, "cpu_start": cpu0, "cpu_end": cpu0}

    def on_episode(record: dict[str, Any]) -> None:
        source.finished(record)
        counts["episodes"] += 1
        counts["steps"] += record["num_steps"]
        counts["events"] += record["num_annotations"]
        bar.update(1 if cfg.episodes else record["num_steps"])
        dt = max(time.perf_counter() - t0, 1e-9)
        bar.set_postfix(steps_s=f"{counts['steps'] / dt:.0f}", events_s=f"{counts['events'] / dt:.1f}")

    try:
        run_backend(cfg, info, writer, source, on_episode,
                    on_ready=lambda: loop.update(start=time.perf_counter(), cpu_start=time.process_time()))
        loop.update(end=time.perf_counter(), cpu_end=time.process_time())
        writer.finalize()
    finally:
        bar.close()
        writer.close()  # the directory lock, also when the run stops early
    summary = summarize(cfg.out, time.perf_counter() - t0, counts["steps"])
    summary["backend"] = backend_name(cfg)
    summary["resumed_episodes"], summary["collected_episodes"] = resumed, counts["episodes"]
    summary["startup_seconds"] = loop["start"] - t0  # env, vector env or worker start-up (process mode: warm-up too)
    summary["loop_seconds"] = loop["end"] - loop["start"]
    summary["loop_steps_per_s"] = counts["steps"] / summary["loop_seconds"] if summary["loop_seconds"] > 0 else None
    # CPU seconds of this process's threads over the loop (in-process backends; not workers')
    summary["loop_cpu_seconds"] = loop["cpu_end"] - loop["cpu_start"]
    return summary


def __getattr__(name: str) -> Any:
    if name == "collect":  # the old name (it shadowed the package's): works, and says so
        import warnings

        warnings.warn("collect.rollout.collect is deprecated; use collect_dataset.", DeprecationWarning,
                      stacklevel=2)
        return collect_dataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main(cfg: CollectConfig) -> dict[str, Any]:
    """Collects, prints the summary and where the dataset went, and returns the summary."""
    if cfg.threads:  # the CLI resolves 0 to the cores this process may use
        from byog_env.threads import set_threads

        set_threads(cfg.threads)  # torch only if a policy imported it (collect stays light)
    summary = collect_dataset(cfg)
    print(format_summary(summary))
    print(f"dataset: {cfg.out} (resumed {summary['resumed_episodes']} episodes, "
          f"collected {summary['collected_episodes']})")
    return summary


def cli(argv: list[str] | None = None) -> int:
    """Command-line entry point (``byog-collect``); exit codes follow :mod:`byog_core.cli`."""
    from byog_env.threads import resolve_threads

    def body() -> dict[str, Any]:
        cfg = parse_cli(CollectConfig, argv, __doc__.split("\n")[0])
        cfg.threads = resolve_threads(cfg.threads)  # 0: the cores this process may use
        return main(cfg)

    return run_cli(body, on_interrupt="finished episodes are saved; rerun with --resume to continue.")


if __name__ == "__main__":
    sys.exit(cli())
