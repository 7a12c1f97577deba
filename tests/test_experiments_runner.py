"""The study runner: cells keyed by their config (a changed setting recomputes), resumable,
a process pool, the ETA; the run_all plan."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from experiments.runner import Cell, estimate, run_cells

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def plugins(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "tests"))  # plugins/toy_cells.py


def test_cells_are_keyed_by_config_and_resumable(tmp_path, plugins):
    cells = [Cell(f"toy/x{x}", "plugins.toy_cells:double", {"x": x}, kind="toy") for x in (1, 2)]
    rows = run_cells(cells, tmp_path, progress=False)
    assert [r["value"] for r in rows] == [2, 4]
    assert cells[0].dir(tmp_path).name == f"x1-{cells[0].key}" and len(cells[0].key) == 12
    stamp = {c.name: (c.dir(tmp_path) / "cell.json").stat().st_mtime_ns for c in cells}
    run_cells(cells, tmp_path, progress=False)  # done: nothing recomputed
    assert {c.name: (c.dir(tmp_path) / "cell.json").stat().st_mtime_ns for c in cells} == stamp
    changed = Cell("toy/x1", "plugins.toy_cells:double", {"x": 1, "new_setting": True}, kind="toy")
    assert changed.key != cells[0].key and not changed.done(tmp_path)
    assert run_cells([changed], tmp_path, progress=False)[0]["cell/config"]["new_setting"] is True
    assert (cells[0].dir(tmp_path) / "cell.json").is_file()  # the old cell is kept, not deleted
    t = json.loads((tmp_path / "timings.json").read_text())
    assert t["toy"]["cells"] == 3
    eta = estimate([*cells, Cell("toy/x3", "plugins.toy_cells:double", {"x": 3}, kind="toy", cost=2)],
                   tmp_path, {}, workers=2)
    assert eta["todo"] == 1 and eta["by_kind"]["toy"]["source"] == "this study"
    assert eta["eta_seconds"] == pytest.approx(2 * t["toy"]["seconds"] / t["toy"]["cost"] / 2)


@pytest.mark.slow
def test_cells_run_in_a_pool_of_worker_processes(tmp_path, plugins):
    cells = [Cell(f"toy/x{x}", "plugins.toy_cells:double", {"x": x}, kind="toy") for x in range(4)]
    rows = run_cells(cells, tmp_path, workers=2, progress=False)
    assert [r["value"] for r in rows] == [0, 2, 4, 6]
    assert os.getpid() not in {r["pid"] for r in rows}


def test_run_all_plan_counts_cells_and_prints_an_eta(tmp_path, capsys):
    from experiments.run_all import PRESETS, RunAllConfig, main

    res = main(RunAllConfig(out=tmp_path, preset="cpu", plan_only=True))
    p = PRESETS["cpu"]
    n_arms = len(p.arms)
    # 2 envs x arms x 3 pipeline x 2 BC seeds, and the dose cells: 2 envs x 2 text arms x 2 earlier
    # checkpoints x 3 pipeline x 2 BC seeds
    assert p.dose_steps == (100, 200) and p.dose_arms == ("byog-text", "captioner-text")
    assert res["by_kind"]["bc"]["cells"] == 2 * n_arms * 3 * 2 + 2 * 2 * 2 * 3 * 2
    assert res["by_kind"]["pretrain"]["cells"] == 2 * 2 * 3  # 2 envs x (byog, captioner) x 3 pipeline seeds
    assert res["eta_seconds"] > 0 and (tmp_path / "plan.json").is_file()
    out = capsys.readouterr().out
    assert "cpu: " in out and "ETA" in out and "min" in out
    assert not (tmp_path / "cells").exists()  # nothing ran


def test_presets_and_overrides(tmp_path):
    from experiments.errors import ExperimentError
    from experiments.run_all import PRESETS, RunAllConfig, command, resolve

    assert {"tiny", "cpu", "gpu", "small", "full"} <= set(PRESETS)
    assert PRESETS["small"].arms == PRESETS["cpu"].arms and PRESETS["full"].ns == PRESETS["gpu"].ns
    cfg = RunAllConfig(out=tmp_path, preset="cpu", envs=("crafter",), episodes={"crafter": 120},
                       pipeline_seeds=(0, 1), encoders=("prior", "oracle-text"), seeds=(3,))
    p = resolve(cfg)
    assert list(p.envs) == ["crafter"] and p.envs["crafter"].episodes == 120
    assert p.arms == ("prior", "oracle-text") and p.bc_seeds == (3,) and p.pipeline_seeds == (0, 1)
    assert "--episodes crafter 120" in command(cfg) and "--arms prior oracle-text" in command(cfg)
    with pytest.raises(ExperimentError, match="Unknown arm 'clip'"):
        RunAllConfig(out=tmp_path, arms=("clip",))
    with pytest.raises(ExperimentError, match="not in preset 'tiny'"):
        RunAllConfig(out=tmp_path, envs=("crafter",))


def test_dose_cells_clone_the_text_arms_from_earlier_checkpoints_of_the_same_pretraining(tmp_path):
    from experiments.errors import ExperimentError
    from experiments.run_all import RunAllConfig, plan_cells, resolve

    def cells(**kw):
        p = resolve(RunAllConfig(out=tmp_path, preset="cpu", envs=("crafter",), **kw))
        return plan_cells(p, tmp_path, {"crafter": tmp_path / "d"}, {"crafter": 240})

    with_dose, without = cells(), cells(dose_steps=())
    dose = [c for c in with_dose if c.meta["study"] == "dose"]
    assert sorted((c.meta["encoder"], c.meta["pretrain_step"]) for c in dose) == sorted(
        (a, s) for a in ("byog-text", "captioner-text") for s in (100, 200) for _ in range(3 * 2))
    final = {(c.meta["encoder"], c.meta["pipeline_seed"], c.meta["seed"]): c for c in with_dose
             if c.meta["study"] == "bc"}
    for c in dose:  # the same pretraining run as the final cell, at an earlier step, offline only
        twin = final[(c.meta["encoder"], c.meta["pipeline_seed"], c.meta["seed"])]
        assert c.config["pretrained"] == {**twin.config["pretrained"], "step": c.meta["pretrain_step"]}
        assert c.config["live_episodes"] == 0 and twin.meta["pretrain_step"] == 400
    pre = {c.config["kind"]: c.config.get("keep_steps") for c in with_dose if c.kind == "pretrain"}
    assert pre == {"byog": [100, 200], "captioner": [100, 200]}
    # without doses nothing else changes: the same BC cells, pretraining cells without kept steps
    assert not [c for c in without if c.meta["study"] == "dose"]
    assert all("keep_steps" not in c.config for c in without if c.kind == "pretrain")
    assert {c.name for c in without if c.kind == "bc"} == {c.name for c in with_dose if c.meta["study"] == "bc"}
    with pytest.raises(ExperimentError, match="--dose-steps must be pretraining steps >= 1"):
        RunAllConfig(out=tmp_path, preset="cpu", dose_steps=(0,))
