"""The narration-under-scarcity study (issue 12): its plan, and the whole pipeline on a micro
design (collect, pilot, captioner, self-training, BYOG arms, report)."""
from __future__ import annotations

import json
import math

import pyarrow.parquet as pq
import pytest

from experiments.scarcity import PRESETS, ScarcityConfig, cli, plan


def test_presets_plan_the_issue_designs(tmp_path):
    pilot, main = plan(ScarcityConfig(preset="scarcity-cpu", out=tmp_path))
    assert len(pilot) == 3 and len(main) == 4 * 2 * 3  # arms x fractions x seeds
    arms = {c.meta["arm"] for c in main}
    assert arms == {"captioner", "self-training", "byog-hidden", "byog-logits"}
    assert {c.config["train"]["steps"] for c in main} == {PRESETS["scarcity-cpu"].steps}  # equal steps
    st = [c for c in main if c.meta["arm"] == "self-training"]
    cap = {(c.meta["fraction"], c.meta["seed"]): c for c in main if c.meta["arm"] == "captioner"}
    for c in st:  # the teacher is the captioner of the same seed and labelled draw
        t = cap[(c.meta["fraction"], c.meta["seed"])]
        assert c.config["teacher_train"] == t.config["train"]
        assert c.config["train"]["label_fraction"] == 1.0
    logits = [c for c in main if c.meta["arm"] == "byog-logits"]
    assert all(c.config["train"]["model"]["predictor"]["input"] == "logits" for c in logits)
    _, gpu = plan(ScarcityConfig(preset="scarcity-gpu", out=tmp_path))
    assert len(gpu) == (2 + 16) * 5 * 5  # captioner, self-training, 16 BYOG arms x 5 fractions x 5 seeds


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
    assert plan_["pilot_cells"] == 2 and plan_["main_cells"] == 8 and plan_["eta_seconds"] > 0
    assert not (out / "data").exists()  # plan only: nothing collected, nothing trained
    assert cli(["--preset", "scarcity-micro", "--out", str(out), "--no-progress"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["chosen_weighting"] in ("none", "slot0") and len(res["pilot"]) == 2
    cells = res["cells"]
    assert len(cells) == 8 and {c["arm"] for c in cells} >= {"self-training", "byog-logits"}
    for c in cells:
        assert math.isfinite(c["val"]["val/token_accuracy"]) and c["step_s"] > 0
        assert c["curves"]["val/token_accuracy"] and isinstance(c["per_kind"], dict)
    paired = {(d["arm"], d["minus"], d["metric"]) for d in res["paired"]}
    assert ("byog-logits", "self-training", "token_accuracy") in paired
    assert ("byog-hidden", "captioner", "event_f1") in paired
    report = (out / "report.md").read_text()
    assert "Paired differences" in report and (out / "curves.png").is_file()
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
    assert cli(["--preset", "scarcity-gpu", "--out", str(tmp_path / "s"), "--plan-only"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: Preset scarcity-gpu runs on cuda, which this machine lacks; run it where a GPU "
                   "is, or pass --device cpu."]
    assert not (tmp_path / "s" / "cells").exists() and not (tmp_path / "s" / "data").exists()
