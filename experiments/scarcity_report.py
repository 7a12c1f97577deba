"""The narration-under-scarcity study's analysis: per-arm tables, paired differences, the stated
one-sided comparisons (Holm), the controls' verdicts under the preset's fixed :class:`Gates`, the
goal and default rules of issue 21, the pilot's table and choice, ``report.md`` and the plots.

Pure functions of the cells' rows (``cell.json``), so a report can be rebuilt from a finished
study without training anything (:mod:`experiments.scarcity` runs the cells).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Gates:
    """Controls fixed with the design, before any cell runs."""

    positive_fraction: float = 0.25
    """The captioner must beat the majority-token baseline at this fraction: the 95% lower
    bound of its token accuracy over the majority's, over seeds, above 0."""
    negative_arm: str = "shuffled-captioner"
    """It must not beat the majority-token baseline at any fraction: its accuracy over the
    majority's 95% lower bound must not be above 0."""


ARM_METRICS = ("token_accuracy", "majority_token_accuracy", "accuracy_over_majority", "event_f1",
               "event_precision", "event_recall", "nil_rate", "distinct_1", "distinct_2",
               "entropy", "prefix_gain", "prefix_gain_shuffled", "teacher_forced_token_accuracy")
STATED_ARM = "byog-piloted"
STATED_REFS = ("captioner", "self-training")
GOAL_MARGIN = -0.02
"""Issue 21's goal: at the smallest fraction, the 95% lower bound of byog-piloted −
self-training in event F1 above this."""


def _by_arm(rows: list[dict[str, Any]]) -> dict[tuple[str, float], dict[int, dict[str, Any]]]:
    by: dict[tuple[str, float], dict[int, dict[str, Any]]] = {}
    for r in rows:
        if r.get("part") == "init" or "fraction" not in r:
            continue  # an init-captioner stage, not an arm's result
        by.setdefault((r["arm"], r["fraction"]), {})[r["seed"]] = r
    return by


def _paired(a: dict[int, dict[str, Any]], b: dict[int, dict[str, Any]], metric: str) -> list[float]:
    common = sorted(set(a) & set(b))
    return [a[s]["val"].get(f"val/{metric}", math.nan) - b[s]["val"].get(f"val/{metric}", math.nan)
            for s in common]


def analyse(rows: list[dict[str, Any]], gates: Gates | None = None) -> dict[str, Any]:
    """Per (arm, fraction) means with t-intervals over seeds; paired differences (same seed and
    labelled set) of each BYOG arm against the captioner and self-training and of the piloted
    variant against ``byog-hidden``; the stated one-sided comparisons with Holm's adjustment;
    the controls' verdicts and the issue's goal."""
    from experiments.stats import holm, mde, mean_ci, paired_t

    gates = gates or Gates()
    by = _by_arm(rows)
    table = []
    for (arm, frac), seeds in sorted(by.items(), key=lambda x: (x[0][1], x[0][0])):
        row: dict[str, Any] = {"arm": arm, "fraction": frac, "seeds": sorted(seeds)}
        for m in ARM_METRICS:
            vals = [s["val"].get(f"val/{m}") for s in seeds.values()]
            row[m] = mean_ci([v for v in vals if v is not None])
        row["step_s"] = mean_ci([s["step_s"] for s in seeds.values()])
        table.append(row)
    diffs = []
    pairs = [(a, ref) for a in sorted({a for a, _ in by}) if a.startswith("byog")
             for ref in STATED_REFS] + [(STATED_ARM, "byog-hidden")]
    for (arm, ref) in pairs:
        for frac in sorted({f for _, f in by}):
            if (arm, frac) not in by or (ref, frac) not in by:
                continue
            for m in ("token_accuracy", "event_f1"):
                d = _paired(by[(arm, frac)], by[(ref, frac)], m)
                iv = paired_t(d)
                diffs.append({"arm": arm, "minus": ref, "fraction": frac, "metric": m,
                              "per_seed": d, "mean": iv.estimate, "lo": iv.lo, "hi": iv.hi,
                              "n": iv.n, "p_greater": iv.p_greater, "mde": mde(_sd(d), iv.n)})
    stated = {f"{d['arm']} - {d['minus']} @ {d['fraction']:g}": d for d in diffs
              if d["arm"] == STATED_ARM and d["minus"] in STATED_REFS and d["metric"] == "event_f1"}
    adj = holm({k: d["p_greater"] for k, d in stated.items()})
    m_tests = max(1, len(stated))
    for k, d in stated.items():
        d["p_holm"], d["shown"] = adj[k]
        # the smallest effect this test could have shown: one-sided at the strictest Holm level
        d["mde_holm"] = mde(_sd(d["per_seed"]), d["n"], alpha=0.05 / m_tests, one_sided=True)
    return {"table": table, "paired": diffs, "stated": stated,
            "controls": controls(by, gates), "goal": goal(diffs), "default": default_rule(diffs)}


def controls(by: dict[tuple[str, float], dict[int, dict[str, Any]]], gates: Gates) -> dict[str, Any]:
    """The positive and negative controls' verdicts under the preset's fixed gates."""
    from experiments.stats import paired_t

    def over_majority(arm: str, frac: float) -> Any:
        seeds = by.get((arm, frac), {})
        return paired_t([s["val"].get("val/accuracy_over_majority", math.nan)
                         for s in seeds.values()])

    out: dict[str, Any] = {}
    pos = over_majority("captioner", gates.positive_fraction)
    out["positive"] = {"arm": "captioner", "fraction": gates.positive_fraction,
                       "mean": pos.estimate, "lo": pos.lo, "hi": pos.hi,
                       "passed": bool(math.isfinite(pos.lo) and pos.lo > 0)}
    neg = []
    for (arm, frac) in sorted(by):
        if arm == gates.negative_arm:
            iv = over_majority(arm, frac)
            neg.append({"fraction": frac, "mean": iv.estimate, "lo": iv.lo, "hi": iv.hi,
                        "passed": not (math.isfinite(iv.lo) and iv.lo > 0)})
    out["negative"] = {"arm": gates.negative_arm, "cells": neg,
                       "passed": bool(neg) and all(c["passed"] for c in neg)}
    return out


def _find(diffs: list[dict[str, Any]], arm: str, minus: str, frac: float, metric: str = "event_f1"):
    return next((d for d in diffs if (d["arm"], d["minus"], d["metric"]) == (arm, minus, metric)
                 and d["fraction"] == frac), None)


def goal(diffs: list[dict[str, Any]]) -> dict[str, Any]:
    """Issue 21's goal at the smallest fraction: byog-piloted − self-training's 95% lower bound
    in event F1 above :data:`GOAL_MARGIN`."""
    fracs = sorted({d["fraction"] for d in diffs})
    d = _find(diffs, STATED_ARM, "self-training", fracs[0]) if fracs else None
    if d is None:
        return {"reached": False, "why": "no byog-piloted / self-training pair"}
    return {"fraction": d["fraction"], "lo": d["lo"], "mean": d["mean"], "margin": GOAL_MARGIN,
            "reached": bool(math.isfinite(d["lo"]) and d["lo"] > GOAL_MARGIN)}


def default_rule(diffs: list[dict[str, Any]]) -> dict[str, Any]:
    """Issue 21, item 5: the piloted variant becomes the ``byog`` default only if, at the
    smallest fraction, byog-piloted − byog-hidden has a 95% lower bound above 0 in event F1."""
    fracs = sorted({d["fraction"] for d in diffs})
    d = _find(diffs, STATED_ARM, "byog-hidden", fracs[0]) if fracs else None
    if d is None:
        return {"switch": False, "why": "no byog-piloted / byog-hidden pair"}
    return {"fraction": d["fraction"], "mean": d["mean"], "lo": d["lo"], "hi": d["hi"],
            "switch": bool(math.isfinite(d["lo"]) and d["lo"] > 0)}


def _sd(xs: list[float]) -> float:
    import numpy as np

    x = np.asarray([v for v in xs if math.isfinite(v)], float)
    return float(x.std(ddof=1)) if x.size > 1 else math.nan


PILOT_METRICS = ("event_f1", "accuracy_over_majority", "distinct_1", "nil_rate", "prefix_gain")


def pilot_table(pilot_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per pilot variant: the issue's pilot metrics and the mean BYOG/grounding
    gradient-norm ratio over the run's logged steps."""
    import numpy as np

    out = []
    for r in pilot_rows:
        if r.get("part") == "init":
            continue
        ratio = [v for _, v in r.get("grad", {}).get("grad/byog_over_ground", []) if v is not None]
        out.append({"variant": r.get("variant") or "captioner (reference)",
                    **{m: r["val"].get(f"val/{m}", math.nan) for m in PILOT_METRICS},
                    "grad_ratio": float(np.mean(ratio)) if ratio else math.nan,
                    "candidate": r.get("variant") is not None})
    return out


def choose_variant(pilot_rows: list[dict[str, Any]]) -> str | None:
    """The candidate with the best pilot event F1 (token accuracy would reward a constant
    majority word); ties go to the earlier variant."""
    cands = [r for r in pilot_table(pilot_rows) if r["candidate"]]
    if not cands:
        return None
    return max(cands, key=lambda r: _score(r["event_f1"]))["variant"]


def _mean_ci(mc: tuple[float, float]) -> str:
    """``mean ± half-width``, or the bare mean when the half-width is not finite (one seed)."""
    return f"{mc[0]:.3f} ± {mc[1]:.3f}" if math.isfinite(mc[1]) else f"{mc[0]:.3f}"


def _pilot_lines(ptable: list[dict[str, Any]], chosen: str | None) -> list[str]:
    """The pilot section: every variant's pilot metrics and the one chosen, so a reader sees the
    choice was made on the pilot slice before any main cell ran (empty without a pilot)."""
    if not ptable:
        return []
    lines = ["## Pilot (on the pilot slice; chosen by event F1 before any main cell ran)", "",
             "| variant | event F1 | token acc − majority | distinct-1 | nil rate | prefix gain "
             "| BYOG/ground grad ratio |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['variant']} | " + " | ".join(f"{r[m]:.3f}" for m in (
        *PILOT_METRICS, "grad_ratio")) + " |" for r in ptable]
    return lines + ["", f"Chosen: `{chosen}`.", ""]


def _held_out_lines(table: list[dict[str, Any]]) -> list[str]:
    """The main table: each (fraction, arm)'s held-out greedy narration metrics over seeds."""
    lines = ["## Held-out greedy narration (mean ± 95% t half-width over seeds)", "",
             ("| fraction | arm | event F1 | P | R | token acc | majority | acc − majority "
              "| nil rate | distinct-1 | prefix gain | s/step |"),
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    metrics = ("event_f1", "event_precision", "event_recall", "token_accuracy", "majority_token_accuracy",
               "accuracy_over_majority", "nil_rate", "distinct_1", "prefix_gain", "step_s")
    return lines + [f"| {r['fraction']:g} | {r['arm']} | "
                    + " | ".join(_mean_ci(r[m]) for m in metrics) + " |" for r in table]


def _controls_lines(c: dict[str, Any]) -> list[str]:
    """The positive and negative controls against the preset's fixed gates, each marked pass or
    FAIL, so a study whose controls fail is not read for its comparisons."""
    pos = c["positive"]
    lines = ["", "## Controls (gates fixed in the preset)", "",
             f"- Positive: captioner token accuracy − majority at {pos['fraction']:g}: "
             f"{pos['mean']:+.3f} [{pos['lo']:+.3f}, {pos['hi']:+.3f}]"
             f" → {'pass' if pos['passed'] else 'FAIL'} (lower bound must be > 0)."]
    return lines + [f"- Negative: {c['negative']['arm']} token accuracy − majority at "
                    f"{n['fraction']:g}: {n['mean']:+.3f} [{n['lo']:+.3f}, {n['hi']:+.3f}] → "
                    f"{'pass' if n['passed'] else 'FAIL'} (must not beat it: lower bound ≤ 0)."
                    for n in c["negative"]["cells"]]


def _stated_lines(res: dict[str, Any]) -> list[str]:
    """The stated (Holm-corrected) comparisons, then the issue's goal and the default-arm rule
    where the study ran the cells they need."""
    lines = ["", "## Stated comparisons (event F1, one-sided H1: byog-piloted > reference, Holm over "
             f"{len(res['stated'])})", "",
             "| comparison | mean | 95% CI (two-sided) | p (one-sided) | p Holm | shown | MDE at "
             "Holm level |", "|---|---|---|---|---|---|---|"]
    for k, d in res["stated"].items():
        lines.append(f"| {k} | {d['mean']:+.3f} | [{d['lo']:+.3f}, {d['hi']:+.3f}] | "
                     f"{d['p_greater']:.3f} | {d['p_holm']:.3f} | {'yes' if d['shown'] else 'no'} | "
                     f"{d['mde_holm']:.3f} |")
    g, dr = res["goal"], res["default"]
    if "lo" in g:
        lines += ["", f"Goal (issue 21): at {g['fraction']:g}, lower bound of byog-piloted − "
                  f"self-training > {GOAL_MARGIN}: {g['lo']:+.3f} → "
                  f"{'reached' if g['reached'] else 'NOT reached'}."]
    if "lo" in dr:
        lines += [f"Default rule: byog-piloted − byog-hidden at {dr['fraction']:g}: {dr['mean']:+.3f} "
                  f"[{dr['lo']:+.3f}, {dr['hi']:+.3f}] → "
                  f"{'switch the default' if dr['switch'] else 'keep the default'}."]
    return lines


def _paired_lines(paired: list[dict[str, Any]]) -> list[str]:
    """Every paired difference (same seed and labelled set), sorted so reruns diff cleanly."""
    lines = ["", "## Paired differences (same seed and labelled set; two-sided t-interval over seeds)",
             "", "| fraction | arm | minus | metric | mean | 95% CI | n | MDE |",
             "|---|---|---|---|---|---|---|---|"]
    return lines + [f"| {d['fraction']:g} | {d['arm']} | {d['minus']} | {d['metric']} | "
                    f"{d['mean']:+.3f} | [{d['lo']:+.3f}, {d['hi']:+.3f}] | {d['n']} | {d['mde']:.3f} |"
                    for d in sorted(paired, key=lambda d: (d["fraction"], d["arm"], d["minus"], d["metric"]))]


def report(out: Path, preset: str, gates: Gates, pilot_rows: list[dict[str, Any]],
           rows: list[dict[str, Any]], chosen: str | None) -> str:
    """``results.json``, ``curves.png``, ``grad_norms.png`` and ``report.md`` under the study
    directory ``out``."""
    res = analyse(rows, gates)
    ptable = pilot_table(pilot_rows)
    (out / "results.json").write_text(json.dumps(
        {"preset": preset, "pilot": pilot_rows, "pilot_table": ptable,
         "chosen_variant": chosen, **res, "cells": rows}, indent=2, default=str))
    plot_curves(rows, out / "curves.png")
    plot_grad_norms(rows, out / "grad_norms.png")
    lines = [f"# Narration under label scarcity ({preset})", "",
             f"Command: `python -m experiments.scarcity --preset {preset} --out {out}`", ""]
    lines += _pilot_lines(ptable, chosen)
    lines += _held_out_lines(res["table"])
    lines += _controls_lines(res["controls"])
    lines += _stated_lines(res)
    lines += _paired_lines(res["paired"])
    lines += ["", ("Learning curves against steps and labelled windows seen: `curves.png`; the "
                   "gradient each loss puts on the encoder: `grad_norms.png`; per-event-kind "
                   "P/R/F1 and every cell's figures: `results.json`.")]
    text = "\n".join(lines) + "\n"
    (out / "report.md").write_text(text)
    return text


def whole_runs(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each two-stage arm's row (``init-captioner``: a captioner stage, then BYOG started from it)
    with its curves over the whole run: the init stage's points, then the second stage's shifted
    by the init stage's steps and labelled windows, as one run of the preset's steps would read."""
    inits = {(r["arm"], r["fraction"], r["seed"]): r for r in rows
             if r.get("part") == "init" and "fraction" in r}
    out = []
    for r in rows:
        init = inits.get((r.get("arm"), r.get("fraction"), r.get("seed")))
        if r.get("part") == "init" or init is None:
            out.append(r)
            continue
        steps0, seen0 = init["steps"], (init.get("labelled_seen") or [0])[-1] or 0
        r = dict(r)
        r["curves"] = {k: list(init["curves"].get(k, [])) + [(s + steps0, v) for s, v in c]
                       for k, c in r["curves"].items()}
        r["labelled_seen"] = list(init.get("labelled_seen") or []) + [
            None if x is None else x + seen0 for x in r.get("labelled_seen") or []]
        r["grad"] = {k: list(init.get("grad", {}).get(k, [])) + [(s + steps0, v) for s, v in c]
                     for k, c in r.get("grad", {}).items()}
        out.append(r)
    return out


def plot_curves(rows: list[dict[str, Any]], path: Path) -> Path:
    """Validation event F1 against steps (top) and against true-labelled windows seen
    (bottom), mean over seeds, one column per fraction; a two-stage arm over its whole run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    by = _by_arm(whole_runs(rows))
    fracs = sorted({f for _, f in by})
    fig, axes = plt.subplots(2, len(fracs), figsize=(5 * len(fracs), 7), squeeze=False)
    for j, frac in enumerate(fracs):
        for arm in sorted({a for a, f in by if f == frac}):
            cells = list(by[(arm, frac)].values())
            curves = [c["curves"]["val/event_f1"] for c in cells]
            if not curves or not curves[0]:
                continue
            n = min(len(c) for c in curves)
            steps = [s for s, _ in curves[0][:n]]
            vals = np.nanmean([[v if v is not None else np.nan for _, v in c[:n]] for c in curves], 0)
            seen = np.nanmean([[x if x is not None else np.nan for x in c.get("labelled_seen", [])[:n]]
                               or [np.nan] * n for c in cells], 0)
            axes[0, j].plot(steps, vals, marker="o", label=arm)
            axes[1, j].plot(seen, vals, marker="o", label=arm)
        axes[0, j].set_title(f"label fraction {frac:g}")
        axes[0, j].set_xlabel("optimizer step")
        axes[1, j].set_xlabel("true-labelled windows seen")
        for i in (0, 1):
            axes[i, j].set_ylabel("val event F1")
            axes[i, j].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_grad_norms(rows: list[dict[str, Any]], path: Path) -> Path:
    """The gradient norm each loss puts on the encoder over steps, BYOG arms, mean over seeds
    (a two-stage arm over its whole run)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    by = _by_arm(whole_runs(rows))
    fracs = sorted({f for _, f in by})
    fig, axes = plt.subplots(1, max(1, len(fracs)), figsize=(5 * max(1, len(fracs)), 3.5), squeeze=False)
    for j, frac in enumerate(fracs):
        ax = axes[0, j]
        for arm in sorted({a for a, f in by if f == frac and a.startswith("byog")}):
            for key, style in (("grad/encoder_ground", "-"), ("grad/encoder_byog", "--")):
                curves = [c.get("grad", {}).get(key, []) for c in by[(arm, frac)].values()]
                curves = [c for c in curves if c]
                if not curves:
                    continue
                n = min(len(c) for c in curves)
                ax.plot([s for s, _ in curves[0][:n]],
                        np.nanmean([[v if v is not None else np.nan for _, v in c[:n]]
                                    for c in curves], 0), style,
                        label=f"{arm} {key.split('_')[-1]}")
        ax.set_yscale("log")
        ax.set_title(f"label fraction {frac:g}: encoder gradient norm")
        ax.set_xlabel("optimizer step")
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _score(x: Any) -> float:
    return float(x) if isinstance(x, (int, float)) and math.isfinite(x) else -math.inf
