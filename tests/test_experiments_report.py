"""The study report on synthetic cell rows: gates fixed in advance decide which envs are
analysed, hypotheses are paired over pipeline seeds and Holm-corrected (the text ones only where
the narrator speaks), rliable aggregates only gated envs."""
from __future__ import annotations

import numpy as np
import pytest

from experiments.report import analyse, write_report

MEANS = {"prior": 0.22, "oracle-text": 0.42, "random-text": 0.23, "shuffled-oracle-text": 0.23, "shuffled-text": 0.23,
         "byog-text": 0.33, "captioner-text": 0.26, "scratch": 0.30, "byog-hidden+scratch": 0.31}
LF = {"byog-text": 0.05, "captioner-text": 0.05, "byog-hidden+scratch": 0.05, "shuffled-text": 0.05}


def rows(env: str, means: dict[str, float], seeds: int = 3, noise: float = 0.01, f1: float = 0.5,
         seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for ps in range(seeds):
        shared = rng.normal(0, 0.02)  # a pipeline-seed effect every arm shares (the pairing)
        for bs in range(2):
            for arm, m in means.items():
                out.append({"study": "bc", "env": env, "encoder": arm, "mode": "frozen", "n_episodes": 64,
                            "label_fraction": LF.get(arm, 1.0), "pipeline_seed": ps, "seed": bs,
                            "offline/acc": m + shared + rng.normal(0, noise), "offline/majority_acc": 0.22,
                            "narration/event_f1": f1 if arm in ("byog-text", "captioner-text") else ""})
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


def test_negative_gate_fails_when_shuffled_oracle_text_carries_information():
    leaky = {**MEANS, "shuffled-oracle-text": 0.35}
    g = analyse(rows("crafter", leaky))["envs"]["crafter"]["gates"]
    assert g["positive"]["pass"] and not g["negative"]["pass"] and not g["discriminating"]


def test_shuffled_byog_narration_is_a_diagnostic_not_a_gate():
    """BYOG's own narration shuffled (shuffled-text) no longer decides the env: it is reported
    as the alignment byog-text − shuffled-text."""
    g = analyse(rows("crafter", {**MEANS, "shuffled-text": 0.35}))["envs"]["crafter"]["gates"]
    assert g["discriminating"] and g["alignment"]["a"] == "byog-text@0.05"
    assert g["alignment"]["interval"].estimate == pytest.approx(0.33 - 0.35, abs=0.03)


def test_equivalence_fails_as_noise_grows():
    """The negative gate's TOST margin is fixed (the preset's 0.025), not the data's MDE: the same
    null difference is equivalent when the seeds agree and *not* equivalent when they are noisy
    (the former MDE margin grew with the noise, so noisier data passed more easily)."""
    verdicts = []
    for noise in (0.002, 0.01, 0.05, 0.2):
        passed = [analyse(rows("crafter", MEANS, seeds=5, noise=noise, seed=s))["envs"]["crafter"]["gates"]["negative"]
                  for s in range(5)]
        verdicts.append(sum(g["pass"] for g in passed))
        assert all(g["margin"] == 0.025 for g in passed)
    assert verdicts[0] == 5 and verdicts[-1] == 0
    assert verdicts == sorted(verdicts, reverse=True)  # never easier with more noise


def test_positive_gate_needs_the_lower_bound_at_the_margin():
    """oracle − random of +0.11 passes the former 'estimate >= 0.10 and lo > 0' rule, but not a
    lower bound >= 0.10."""
    g = analyse(rows("crafter", {**MEANS, "oracle-text": 0.34}, noise=0.03))["envs"]["crafter"]["gates"]
    pos = g["positive"]
    assert pos["interval"].estimate >= 0.10 and 0 < pos["interval"].lo < 0.10 and not pos["pass"]


def test_text_hypotheses_are_not_tested_where_the_narrator_is_silent():
    an = analyse(rows("crafter", MEANS, f1=0.036))
    assert [h["name"] for h in an["hypotheses"]] == ["byog-hidden+scratch > scratch"]
    assert {h["name"] for h in an["untested"]} == {"byog-text > random-text", "byog-text > captioner-text"}
    assert all(h["not_tested"] == "narrator silent (F1 0.036)" for h in an["untested"])
    from experiments.report import hypotheses_md

    assert "not tested: narrator silent (F1 0.036)" in "\n".join(hypotheses_md(an))


def test_each_null_stands_beside_its_mde_at_the_one_sided_holm_level():
    from experiments.stats import mde

    an = analyse(rows("crafter", {**MEANS, "byog-text": 0.235, "byog-hidden+scratch": 0.30}))
    hyps = sorted(an["hypotheses"], key=lambda h: h["interval"].p_greater)
    assert [h["level"] for h in hyps] == pytest.approx([0.05 / 3, 0.05 / 2, 0.05])
    for h in hyps:
        assert h["mde_holm"] == pytest.approx(mde(h["sd"], 3, alpha=h["level"], one_sided=True))
        assert h["mde_holm"] > mde(h["sd"], 3, alpha=0.05, one_sided=True) or h["level"] == 0.05


def test_hierarchical_bootstrap_is_a_secondary_interval_where_asked():
    from experiments.run_all import PRESETS

    rs = rows("crafter", MEANS, seeds=5)
    rng = np.random.default_rng(1)
    for r in rs:  # 10 test episodes of 8 steps, about the cell's accuracy
        r["offline/episode_correct"] = list(rng.binomial(8, r["offline/acc"], 10))
        r["offline/episode_steps"] = [8] * 10
    assert "bootstrap" not in analyse(rs)["envs"]["crafter"]["gates"]["positive"]
    an = analyse(rs, PRESETS["gpu"])
    boot = an["envs"]["crafter"]["gates"]["positive"]["bootstrap"]
    assert boot.method == "hierarchical bootstrap" and boot.lo < 0.42 - 0.23 < boot.hi
    assert all(h["bootstrap"] is not None for h in an["hypotheses"])


def test_matched_f1_pairs_the_checkpoints_whose_bc_validation_f1_is_nearest():
    """byog-text reaches the captioner's final F1 only at its own final step; the matched-F1
    comparison pairs byog's step 400 with the captioner's step 100 (F1 0.3 each)."""
    from experiments.report import matched_f1

    base = [r for r in rows("crafter", MEANS) if r["encoder"] in ("byog-text", "captioner-text", "random-text")]
    f1 = {("byog-text", 100): 0.05, ("byog-text", 400): 0.30, ("captioner-text", 100): 0.31,
          ("captioner-text", 400): 0.5}
    out = []
    for r in base:
        if r["encoder"] == "random-text":
            continue
        for step, study in ((400, "bc"), (100, "dose")):
            acc = r["offline/acc"] - (0.05 if step == 100 else 0.0)
            out.append({**r, "study": study, "pretrain_step": step, "offline/acc": acc,
                        "narration/bc_val_f1": f1[(r["encoder"], step)]})
    m = matched_f1(out, "crafter", 64)
    assert [p["steps"] for p in m["pairs"]] == [(400, 100)] * 3
    assert m["interval"].estimate == pytest.approx(0.33 - (0.26 - 0.05), abs=0.02)


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
