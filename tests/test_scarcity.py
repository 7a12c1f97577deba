"""The narration-under-scarcity study (issue 12): its plan, and the whole pipeline on a micro
design (collect, pilot, captioner, self-training, BYOG arms, report)."""
from __future__ import annotations

import json
import math

import pyarrow.parquet as pq
import pytest

from experiments.scarcity import PRESETS, ScarcityConfig, cli, plan


def test_presets_plan_the_issue_designs(tmp_path):
    from experiments.scarcity import VARIANTS, stages

    pilot, main = plan(ScarcityConfig(preset="scarcity-cpu", out=tmp_path))
    # the pilot: a captioner reference and every variant (init-captioner in two stages)
    assert {c.meta.get("variant") for c in pilot} == {None, *VARIANTS}
    assert len(pilot) == 1 + len(VARIANTS) + 1
    assert all(c.config["train"]["loader"]["validate_on"] == "pilot" for c in pilot)
    arms = {c.meta["arm"] for c in main}
    assert arms == {"captioner", "self-training", "byog-hidden", "byog-piloted", "shuffled-captioner"}
    assert len(main) == 5 * 2 * 3  # arms x fractions x seeds (the placeholder variant: one cell)
    assert {c.config["train"]["steps"] for c in main} == {PRESETS["scarcity-cpu"].steps}  # equal steps
    # every cell sets the same pilot slice aside and is measured on the same 256 windows
    for c in pilot + main:
        tr = c.config["train"]
        assert tr["loader"]["pilot_episodes"] == 10 and tr["logging"]["val_windows"] == 256
    assert all(c.config["train"]["loader"]["validate_on"] == "val" for c in main)
    st = [c for c in main if c.meta["arm"] == "self-training"]
    cap = {(c.meta["fraction"], c.meta["seed"]): c for c in main if c.meta["arm"] == "captioner"}
    for c in st:  # the teacher is the captioner of the same seed and labelled draw
        t = cap[(c.meta["fraction"], c.meta["seed"])]
        assert c.config["teacher_train"] == t.config["train"]
        # the true-labelled stream as every arm's (same fraction and seed), pseudo labels beside
        assert c.config["train"]["label_fraction"] == c.meta["fraction"]
        assert c.config["train"]["pseudo_labels"] is True and c.meta["stage"] == 1
    neg = [c for c in main if c.meta["arm"] == "shuffled-captioner"]
    assert all(c.config["shuffle_seed"] == c.meta["seed"] for c in neg)
    # a chosen two-stage variant: a captioner for half the steps, then BYOG from it
    _, main2 = plan(ScarcityConfig(preset="scarcity-cpu", out=tmp_path), "init-captioner")
    piloted = [c for c in main2 if c.meta["arm"] == "byog-piloted"]
    assert len(piloted) == 2 * 2 * 3
    first, second = stages(piloted)
    assert all(c.config["train"]["preset"] == "captioner" and c.config["train"]["steps"] == 300
               for c in first)
    assert all(c.config["train"]["init_from"].endswith("/run") and c.config["train"]["steps"] == 300
               for c in second)
    _, gpu = plan(ScarcityConfig(preset="scarcity-gpu", out=tmp_path))
    assert len(gpu) == (5 + 16) * 5 * 5  # the cpu arms and 16 factorial BYOG arms x 5 x 5


def test_bad_preset_is_one_error_line(tmp_path, capsys):
    assert cli(["--preset", "scarcity-huge", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: Unknown preset")


@pytest.mark.slow
def test_micro_study_end_to_end(tmp_path, capsys):
    out = tmp_path / "study"
    assert cli(["--preset", "scarcity-micro", "--out", str(out), "--plan-only",
                "--no-progress"]) == 0
    plan_ = json.loads((out / "plan.json").read_text())
    assert plan_["pilot_cells"] == 5 and plan_["main_cells"] == 10 and plan_["eta_minutes"] > 0
    assert not (out / "data").exists()  # plan only: nothing collected, nothing trained
    assert cli(["--preset", "scarcity-micro", "--out", str(out), "--no-progress"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["chosen_variant"] in ("byog", "init-captioner", "latent")
    assert {r["variant"] for r in res["pilot_table"]} == {"captioner (reference)", "byog",
                                                          "init-captioner", "latent"}
    cells = [c for c in res["cells"] if c.get("part") != "init"]
    assert {c["arm"] for c in cells} == {"captioner", "self-training", "byog-hidden",
                                         "byog-piloted", "shuffled-captioner"}
    for c in cells:
        assert math.isfinite(c["val"]["val/token_accuracy"]) and c["step_s"] > 0
        assert c["curves"]["val/token_accuracy"] and isinstance(c["per_kind"], dict)
        assert c["labelled_seen"][-1] > 0  # curves against labelled windows seen
    paired = {(d["arm"], d["minus"], d["metric"]) for d in res["paired"]}
    assert ("byog-piloted", "self-training", "event_f1") in paired
    assert ("byog-piloted", "byog-hidden", "event_f1") in paired
    assert set(res["stated"]) == {"byog-piloted - captioner @ 0.5",
                                  "byog-piloted - self-training @ 0.5"}
    assert {"positive", "negative"} <= set(res["controls"]) and "reached" in res["goal"]
    report = (out / "report.md").read_text()
    assert "Paired differences" in report and "Controls" in report and "Holm" in report
    assert (out / "curves.png").is_file() and (out / "grad_norms.png").is_file()
    # self-training rewrote only the unlabelled training episodes' annotations
    st = next(c for c in cells if c["arm"] == "self-training")
    data, pseudo = out / "data", out / "cells" / f"{st['cell']}-{st['key']}" / "pseudo_data"
    same = [pq.read_table(f).column("annotations").to_pylist()
            == pq.read_table(pseudo / f.relative_to(data)).column("annotations").to_pylist()
            for f in sorted(data.glob("data/*/*.parquet"))]
    assert any(same) and not all(same)
    # a rerun resumes: every cell is done, nothing is trained again
    assert cli(["--preset", "scarcity-micro", "--out", str(out), "--no-progress"]) == 0
    assert "0 to run" in capsys.readouterr().out


def test_a_gpu_study_without_cuda_fails_before_anything_runs(tmp_path, monkeypatch, capsys):
    import torch

    from experiments.scarcity import cli

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert cli(["--preset", "scarcity-gpu", "--out", str(tmp_path / "s"), "--plan-only"]) == 2  # usage: names its fix
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: Preset scarcity-gpu runs on cuda, which this machine lacks; run it where a GPU "
                   "is, or pass --device cpu."]
    assert not (tmp_path / "s" / "cells").exists() and not (tmp_path / "s" / "data").exists()


def test_a_two_stage_arm_is_plotted_over_its_whole_run():
    """init-captioner's BYOG stage starts where its captioner stage ended (steps and labelled
    windows seen), not at step 0 beside arms that trained from scratch."""
    from experiments.scarcity_report import whole_runs

    init = {"arm": "byog-piloted", "fraction": 0.05, "seed": 0, "part": "init", "steps": 300,
            "curves": {"val/event_f1": [(150, 0.1), (300, 0.15)]}, "labelled_seen": [4800, 9600],
            "grad": {"grad/encoder_ground": [(300, 0.2)]}}
    stage = {"arm": "byog-piloted", "fraction": 0.05, "seed": 0, "part": None, "steps": 300,
             "curves": {"val/event_f1": [(150, 0.16), (300, 0.17)]}, "labelled_seen": [4800, 9600],
             "grad": {"grad/encoder_ground": [(300, 0.1)], "grad/encoder_byog": [(300, 0.05)]}}
    other = {"arm": "captioner", "fraction": 0.05, "seed": 0, "steps": 600,
             "curves": {"val/event_f1": [(600, 0.2)]}, "labelled_seen": [19200]}
    rows = whole_runs([init, stage, other])
    whole = next(r for r in rows if r["arm"] == "byog-piloted" and r.get("part") != "init")
    assert whole["curves"]["val/event_f1"] == [(150, 0.1), (300, 0.15), (450, 0.16), (600, 0.17)]
    assert whole["labelled_seen"] == [4800, 9600, 14400, 19200]
    assert whole["grad"]["grad/encoder_ground"] == [(300, 0.2), (600, 0.1)]
    assert whole["grad"]["grad/encoder_byog"] == [(600, 0.05)]
    assert next(r for r in rows if r["arm"] == "captioner") is other and stage["curves"]["val/event_f1"][0] == (150, 0.16)
