"""``--vector-mode process``: warm workers, a shared episode queue, errors and dead workers.

Uses ``standin_env.ProbeEnv`` (the stand-in env with a per-process log, a slow seed and a dying
seed, all set through environment variables).
"""
from __future__ import annotations

from pathlib import Path

import pytest
from standin_env import PROBE_ID, assert_same_episodes

from collect.backends.process import collect_with_processes
from collect.config import CollectConfig, episode_seed
from collect.dataset import open_dataset
from collect.engine import WARM_UP_SEED, EpisodeSource, dataset_info
from collect.errors import CollectError
from collect.policies import PolicyError
from collect.rollout import collect_dataset
from collect.writer import DatasetWriter

SEED = 3


def _cfg(out: Path, **kw) -> CollectConfig:
    return CollectConfig(**{"env": PROBE_ID, "out": out, "episodes": 6, "seed": SEED, "progress": False,
                            "num_envs": 2, "vector_mode": "process", **kw})


def _log_lines(path: Path) -> list[tuple[int, str, int]]:
    if not path.exists():
        return []
    return [(int(p), what, int(s)) for p, what, s in (line.split() for line in path.read_text().splitlines())]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The six episodes collected by one env in this process."""
    out = tmp_path_factory.mktemp("ref") / "ds"
    collect_dataset(_cfg(out, num_envs=1, vector_mode="sync"))
    return out


def test_process_mode_is_the_default_for_several_envs(tmp_path):
    assert _cfg(tmp_path, vector_mode="process").vector_mode == CollectConfig(
        env=PROBE_ID, out=tmp_path, episodes=1, num_envs=2).vector_mode == "process"


@pytest.mark.slow
def test_workers_warm_up_then_pull_episodes_from_a_shared_queue(tmp_path, monkeypatch, reference):
    log = tmp_path / "probe.log"
    monkeypatch.setenv("BYOG_PROBE_LOG", str(log))
    monkeypatch.setenv("BYOG_PROBE_SLOW_SEED", str(episode_seed(SEED, 0)))
    cfg = _cfg(tmp_path / "ds")
    info = dataset_info(cfg)
    writer = DatasetWriter(cfg.out, info)
    source = EpisodeSource(cfg, writer.records)
    at_ready: list[tuple[int, str, int]] = []
    finished: list[int] = []

    def on_episode(record: dict) -> None:
        source.finished(record)
        finished.append(int(record["episode_index"]))

    collect_with_processes(cfg, info, source, on_episode, on_ready=lambda: at_ready.extend(_log_lines(log)))
    writer.finalize()

    # Ready means: every worker has reset (warm-up seed) and stepped its env, and no episode began.
    pids = sorted({p for p, _, _ in at_ready})
    assert len(pids) == 2
    assert sorted(at_ready) == sorted([(p, "reset", WARM_UP_SEED) for p in pids]
                                      + [(p, "step", WARM_UP_SEED) for p in pids])
    # Shared queue: while one worker sleeps in episode 0, the other runs all five others.
    seeds = {episode_seed(SEED, i): i for i in range(6)}
    ran = {p: [seeds[s] for q, what, s in _log_lines(log) if q == p and what == "reset" and s in seeds]
           for p in pids}
    assert sorted(ran.values()) == [[0], [1, 2, 3, 4, 5]]
    assert finished == [1, 2, 3, 4, 5, 0]
    assert_same_episodes(reference, cfg.out)


@pytest.mark.slow
def test_a_dead_worker_stops_the_run_and_resume_completes_it(tmp_path, monkeypatch, reference):
    out = tmp_path / "ds"
    monkeypatch.setenv("BYOG_PROBE_DIE_SEED", str(episode_seed(SEED, 3)))
    with pytest.raises(CollectError, match=r"worker byog-collect-\d died \(exit code 3\).*rerun with --resume"):
        collect_dataset(_cfg(out))
    done = sorted(p.name for p in (out / "data").rglob("*.parquet"))
    assert "episode_000003.parquet" not in done and len(done) < 6
    monkeypatch.delenv("BYOG_PROBE_DIE_SEED")
    summary = collect_dataset(_cfg(out, resume=True))
    assert summary["episodes"] == 6 and not list(out.rglob("*.tmp"))
    assert_same_episodes(reference, out)


@pytest.mark.slow
def test_a_worker_error_is_raised_with_its_own_type_and_message(tmp_path):
    with pytest.raises(PolicyError, match="crafter-scripted needs a Crafter env with 17 discrete actions") as e:
        collect_dataset(_cfg(tmp_path / "ds", policy="crafter-scripted"))
    assert any("in collector worker" in note for note in getattr(e.value, "__notes__", []))


@pytest.mark.slow
def test_crafter_after_warm_up_records_the_same_episodes(tmp_path):
    """The warm-up reset and step leave no trace in Crafter's episodes (world, frames, annotations)."""
    base = {"env": "crafter", "episodes": 3, "seed": 1, "max_episode_steps": 25, "progress": False}
    collect_dataset(CollectConfig(**base, out=tmp_path / "one"))
    collect_dataset(CollectConfig(**base, out=tmp_path / "proc", num_envs=2))  # the default: process
    assert_same_episodes(tmp_path / "one", tmp_path / "proc")
    assert len(open_dataset(tmp_path / "proc").records) == 3
