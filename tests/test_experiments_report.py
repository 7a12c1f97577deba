"""The study report on synthetic cell rows: gates decide which envs are analysed, hypotheses are
paired over pipeline seeds and Holm-corrected, rliable aggregates only gated envs."""
from __future__ import annotations

import numpy as np
import pytest

from experiments.report import analyse, write_report

MEANS = {"prior": 0.22, "oracle-text": 0.42, "random-text": 0.23, "shuffled-text": 0.23,
         "byog-text": 0.33, "captioner-text": 0.26, "scratch": 0.30, "byog-hidden+scratch": 0.31}
LF = {"byog-text": 0.05, "captioner-text": 0.05, "byog-hidden+scratch": 0.05, "shuffled-text": 0.05}


def rows(env: str, means: dict[str, float], seeds: int = 3, noise: float = 0.01) -> list[dict]:
    rng = np.random.default_rng(0)
    out = []
    for ps in range(seeds):
        shared = rng.normal(0, 0.02)  # a pipeline-seed effect every arm shares (the pairing)
        for bs in range(2):
            for arm, m in means.items():
                out.append({"study": "bc", "env": env, "encoder": arm, "mode": "frozen", "n_episodes": 64,
                            "label_fraction": LF.get(arm, 1.0), "pipeline_seed": ps, "seed": bs,
                            "offline/acc": m + shared + rng.normal(0, noise), "offline/majority_acc": 0.22,
                            "narration/event_f1": 0.5 if arm in ("byog-text", "captioner-text") else ""})
    return out


def test_gates_pass_on_a_discriminating_env_and_fail_on_a_flat_one():
    flat = dict.fromkeys(MEANS, 0.62)
    an = analyse(rows("crafter", MEANS) + rows("babyai-gotolocal", flat))
    assert an["envs"]["crafter"]["gates"]["discriminating"]
    g = an["envs"]["babyai-gotolocal"]["gates"]
    assert not g["discriminating"] and not g["positive"]["pass"]
    hyps = {h["name"]: h for h in an["hypotheses"]}
    assert {h["env"] for h in an["hypotheses"]} == {"crafter"}  # none on the flat env
    assert hyps["byog-text > random-text"]["a"] == "byog-text@0.05"
    assert hyps["byog-text > random-text"]["reject"] and hyps["byog-text > random-text"]["interval"].lo > 0
    assert hyps["byog-text > random-text"]["p_holm"] >= hyps["byog-text > random-text"]["interval"].p_greater
    assert all(np.isfinite(h["mde"]) for h in an["hypotheses"])


def test_negative_gate_fails_when_shuffled_text_carries_information():
    leaky = {**MEANS, "shuffled-text": 0.35}
    g = analyse(rows("crafter", leaky))["envs"]["crafter"]["gates"]
    assert g["positive"]["pass"] and not g["negative"]["pass"] and not g["discriminating"]


@pytest.mark.slow
def test_report_writes_gates_hypotheses_aggregates_and_plots(tmp_path):
    pytest.importorskip("rliable")
    md = write_report(tmp_path, rows("crafter", MEANS), command="python -m experiments.run_all ...", seconds=120)
    assert "## Gates" in md and "| crafter | 64 |" in md and "discriminating" in md
    assert "byog-text > captioner-text" in md and "supported" in md and "MDE" in md
    assert "IQM" in md and "P(byog-text@0.05 > random-text)" in md
    for png in ("acc_crafter.png", "dose_response.png", "performance_profiles.png"):
        assert (tmp_path / png).stat().st_size > 1000
    assert (tmp_path / "analysis.json").is_file() and (tmp_path / "results.csv").is_file()


def test_dose_response_has_a_point_per_checkpoint_with_its_own_f1_and_no_effect_on_the_hypotheses():
    """Dose cells (earlier pretraining checkpoints) add points to the dose-response, each with its
    own checkpoint's narration F1, and leave the gates and hypotheses (final checkpoints) alone."""
    from experiments.report import dose_md, dose_points

    final = rows("crafter", MEANS)
    for r in final:
        if r["encoder"] in ("byog-text", "captioner-text"):
            r.update({"pretrain_step": 400, "narration/event_f1@100": 0.1, "narration/event_f1@400": 0.4})
    # at step 100 the narration is worse and helps less
    dose = [{**r, "study": "dose", "pretrain_step": 100, "narration/event_f1": 0.1,
             "offline/acc": r["offline/acc"] - 0.05} for r in final if r["encoder"] == "byog-text"]
    pts = dose_points(final + dose)
    byog = {(d["step"], d["pipeline_seed"]): d for d in pts if d["arm"] == "byog-text"}
    assert sorted(byog) == [(100.0, ps) for ps in range(3)] + [(400.0, ps) for ps in range(3)]
    for ps in range(3):
        assert byog[(100.0, ps)]["f1"] == 0.1 and byog[(400.0, ps)]["f1"] == 0.4
        assert byog[(400.0, ps)]["gain"] - byog[(100.0, ps)]["gain"] == pytest.approx(0.05)
    oracle = [d for d in pts if d["arm"] == "oracle-text"]
    assert len(oracle) == 3 and all(d["f1"] == 1.0 and d["step"] is None for d in oracle)
    assert analyse(final + dose)["hypotheses"] == analyse(final)["hypotheses"]
    md = "\n".join(dose_md(final + dose))
    assert "| crafter | 64 | byog-text | 0.05 | 100 | 0.100 ± 0.000 (n=3) |" in md
    assert "| crafter | 64 | byog-text | 0.05 | 400 | 0.400 ± 0.000 (n=3) |" in md


def test_the_cells_table_shows_a_missing_setting_as_a_dash():
    from experiments.report import table

    md = table([{**r, "pretrain_step": None} for r in rows("crafter", {"prior": 0.22})])
    assert "| bc | crafter | prior | frozen | 64 | 1.0 | – |" in md and "None" not in md
