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
    assert p.dose_steps == (120, 240) and p.dose_arms == ("byog-text", "captioner-text")
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
        (a, s) for a in ("byog-text", "captioner-text") for s in (120, 240) for _ in range(3 * 2))
    final = {(c.meta["encoder"], c.meta["pipeline_seed"], c.meta["seed"]): c for c in with_dose
             if c.meta["study"] == "bc"}
    for c in dose:  # the same pretraining run as the final cell, at an earlier step, offline only
        twin = final[(c.meta["encoder"], c.meta["pipeline_seed"], c.meta["seed"])]
        assert c.config["pretrained"] == {**twin.config["pretrained"], "step": c.meta["pretrain_step"]}
        assert c.config["live_episodes"] == 0 and twin.meta["pretrain_step"] == 360
    pre = {c.config["kind"]: c.config.get("keep_steps") for c in with_dose if c.kind == "pretrain"}
    assert pre == {"byog": [120, 240], "captioner": [120, 240]}
    # without doses nothing else changes: the same BC cells, pretraining cells without kept steps
    assert not [c for c in without if c.meta["study"] == "dose"]
    assert all("keep_steps" not in c.config for c in without if c.kind == "pretrain")
    assert {c.name for c in without if c.kind == "bc"} == {c.name for c in with_dose if c.meta["study"] == "bc"}
    with pytest.raises(ExperimentError, match="--dose-steps must be pretraining steps >= 1"):
        RunAllConfig(out=tmp_path, preset="cpu", dose_steps=(0,))
    with pytest.raises(ExperimentError, match=r"--dose-steps \[400\] are not before the 360 pretraining steps"):
        resolve(RunAllConfig(out=tmp_path, preset="cpu", dose_steps=(100, 400)))
    # a preset's own dose steps beyond a shortened pretraining are left out, not an error
    assert not [c for c in cells(pretrain_steps=50) if c.meta["study"] == "dose"]


# ---------------------------------------------------------------------------- the study's device
def _tiny_cells(tmp_path, **kw):
    """The tiny preset's cells, PPO included, planned (nothing runs)."""
    from experiments.run_all import RunAllConfig, plan_cells, resolve

    p = resolve(RunAllConfig(out=tmp_path, preset="tiny", rl_timesteps=64,
                             steps_override={"rl_encoders": ("cnnpolicy", "byog")}, **kw))
    return plan_cells(p, tmp_path, {"babyai-gotolocal": tmp_path / "d"}, {"babyai-gotolocal": 32})


def test_the_study_device_reaches_pretraining_bc_and_ppo(tmp_path):
    """Every cell that trains or featurizes builds its config with the preset's device: the
    trainer's TrainConfig, ActionTransferConfig (and the arm's context), RLConfig."""
    from types import SimpleNamespace

    from experiments.action_transfer import ActionTransferConfig, arm_context
    from experiments.pretrain import train_config
    from experiments.rl_finetune import RLConfig
    from experiments.run_all import pretrain_spec

    cells = _tiny_cells(tmp_path, device="cuda")
    kinds = {c.kind for c in cells}
    assert kinds == {"pretrain", "bc", "ref", "rl"}
    for c in cells:
        conf = {k: v for k, v in c.config.items() if k != "pretrained"}  # bc/rl cells resolve it to a checkpoint
        if c.kind == "pretrain":
            tc = train_config(conf["kind"], tmp_path / "d", tmp_path / "run", pretrain_spec(conf), conf["label_fraction"])
            assert tc.device == "cuda"
        elif c.kind == "bc":
            cfg = ActionTransferConfig(**conf, out=tmp_path, checkpoint=tmp_path if "pretrained" in c.config else None)
            assert cfg.device == "cuda"
            assert arm_context(cfg, SimpleNamespace(info={"env": "babyai-gotolocal"})).device == "cuda"
        elif c.kind == "rl":
            assert RLConfig(**conf, out=tmp_path).device == "cuda"
        else:  # the live references run no torch
            assert "device" not in c.config


def test_cpu_cells_keep_their_keys(tmp_path):
    """A device enters cell configs only off the CPU: the CPU presets' cells keep the keys (and
    so the finished results) they had before studies had a device. Saved reference: the keys of
    the tiny and cpu presets' cells (last changed on purpose by issue 22: the BC rule's min_delta,
    the shuffled-oracle-text arm, the dose arms' BC-validation F1, tiny's evaluation every 10
    steps and the cpu preset's 500 BC steps; before, tiny 0fa1a9379cfc8bf6 and cpu
    20a4773f8d50a9b6; then the cpu preset's pretraining, 360 steps of 32 windows from issue 21's
    curves: before, cpu 3850b4b06238997c)."""
    import hashlib

    from experiments.run_all import PRESETS, data_dir, plan_cells

    root = Path("/study")
    for name, digest in (("tiny", "0ba8cf6521e5b77a"), ("cpu", "f2561aa6f8368bd8")):
        p = PRESETS[name]
        data = {e: data_dir(root, e, plan) for e, plan in p.envs.items()}
        cells = plan_cells(p, root, data, {e: plan.episodes for e, plan in p.envs.items()})
        assert not any("device" in c.config for c in cells)
        keys = hashlib.sha256(" ".join(c.key for c in cells).encode()).hexdigest()[:16]
        assert keys == digest, f"the {name} preset's cell keys changed: its finished cells would all rerun"

    def plain(c):  # a cell without its device (a pretraining run's directory is keyed by it)
        conf = {k: v for k, v in c.config.items() if k != "device"}
        if "pretrained" in conf:
            conf["pretrained"] = conf["pretrained"]["kind"]
        return c.name, conf

    cpu, cuda = _tiny_cells(tmp_path), _tiny_cells(tmp_path, device="cuda")
    assert [plain(c) for c in cuda] == [plain(c) for c in cpu]  # the same design, elsewhere
    assert {c.kind for c in cuda if c.config.get("device") == "cuda"} == {"pretrain", "bc", "rl"}


def test_a_cuda_study_without_cuda_fails_early_naming_the_fix(tmp_path, monkeypatch, capsys):
    """The gpu preset (or --device cuda) on a machine without CUDA: one error line before
    anything is collected or planned, --plan-only too; --device cpu plans the same design here;
    with CUDA present planning proceeds on cuda."""
    import torch

    from experiments.errors import ExperimentError
    from experiments.run_all import PRESETS, RunAllConfig, cli, main

    assert PRESETS["gpu"].device == PRESETS["full"].device == "cuda" and PRESETS["cpu"].device == "cpu"
    assert "cuda" in PRESETS["gpu"].description and "--device" in PRESETS["gpu"].description
    small = {"envs": ("crafter",), "ns": (16,), "pipeline_seeds": (0,), "bc_seeds": (0,), "rl_timesteps": 0}
    line = "Preset gpu runs on cuda, which this machine lacks; run it where a GPU is, or pass --device cpu."
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ExperimentError) as e:
        main(RunAllConfig(out=tmp_path / "a", preset="gpu", plan_only=True, **small))
    assert str(e.value) == line and not (tmp_path / "a").exists()  # nothing written
    with pytest.raises(ExperimentError, match="Preset tiny runs on cuda:1, which this machine lacks"):
        main(RunAllConfig(out=tmp_path / "a", preset="tiny", device="cuda:1", plan_only=True))
    with pytest.raises(ExperimentError, match="'gpu', which is not a torch device; pass cpu or cuda"):
        main(RunAllConfig(out=tmp_path / "a", preset="tiny", device="gpu", plan_only=True))
    argv = ["--out", str(tmp_path / "b"), "--preset", "gpu", "--plan-only", "--envs", "crafter"]
    assert cli(argv) == 2  # usage: the command names its fix (byog_core.cli's one policy)
    assert capsys.readouterr().err.strip().splitlines() == [f"error: {line}"]

    res = main(RunAllConfig(out=tmp_path / "c", preset="gpu", plan_only=True, device="cpu", **small))
    assert res["device"] == "cpu" and "--device cpu" in res["command"] and res["by_kind"]["bc"]["cells"] > 0
    assert "workers on cpu" in capsys.readouterr().out

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    res = main(RunAllConfig(out=tmp_path / "d", preset="gpu", plan_only=True, **small))
    assert res["device"] == "cuda" and "--device" not in res["command"]
    assert res["by_kind"]["pretrain"]["cells"] > 0 and not (tmp_path / "d" / "cells").exists()
    assert "workers on cuda" in capsys.readouterr().out


def test_the_gpu_preset_fits_vqvae_and_units_at_position_encoding_settings(tmp_path):
    from experiments.run_all import PRESETS, RunAllConfig, plan_cells, pretrain_spec, resolve

    def pretrain_cells(preset, **kw):
        p = resolve(RunAllConfig(out=tmp_path, preset=preset, envs=("crafter",), **kw))
        return [c for c in plan_cells(p, tmp_path, {"crafter": tmp_path / "d"}, {"crafter": 2000})
                if c.kind == "pretrain"]

    gpu = {c.config["kind"]: pretrain_spec(c.config).obs_options for c in pretrain_cells("gpu")}
    assert gpu["vqvae"] == {"pool": 8} and gpu["units"] == {"pixel_size": 16, "k": 256}
    assert gpu["byog"] == {} and PRESETS["cpu"].obs_options == {}
    # the cpu preset (which leaves vqvae/units out) asked for them: default settings, no "obs" key
    cpu = pretrain_cells("cpu", arms=("vqvae", "units"))
    assert cpu and all("obs" not in c.config for c in cpu)


def test_a_dose_step_past_pretraining_is_one_error_line(tmp_path, capsys):
    from experiments.run_all import cli

    assert cli(["--preset", "cpu", "--out", str(tmp_path / "s"), "--dose-steps", "500", "--plan-only"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --dose-steps [500] are not before the 360 pretraining steps; choose earlier "
                   "checkpoints, or raise --pretrain-steps."]
    assert not (tmp_path / "s").exists()
