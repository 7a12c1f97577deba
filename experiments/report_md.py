"""The markdown sections of ``report.md``: gates, hypotheses, rliable aggregates, dose-response,
convergence and references.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from experiments.report_analysis import (
    AT_CAP_BUDGET,
    GateSpec,
    _lf_key,
    _num,
    _seed_means,
    _sort_key,
    at_cap_share,
    dose_points,
)
from experiments.stats import (
    format_ci,
)


# ---------------------------------------------------------------------------- markdown
def gates_md(an: dict[str, Any]) -> list[str]:
    spec = GateSpec(**an["spec"]) if "spec" in an else GateSpec()
    lines = ["## Gates (per env, at the largest N; fixed in the preset before any data)", "",
             (f"Positive: the 95% interval of oracle-text − random-text has its lower bound ≥ {spec.positive_lo:g}. "
              f"Negative: shuffled-oracle-text (the annotation text shuffled across episodes) equivalent to "
              f"random-text by TOST at the fixed margin ±{spec.equivalence_margin:g} (α = {spec.alpha:g}). "
              "Alignment (a diagnostic, not a gate): byog-text − shuffled-text (BYOG's own narration shuffled)."), "",
             ("| env | N | majority action | oracle-text − random-text | lo ≥ gate | shuffled-oracle-text − random-text "
              "| TOST p | verdict | alignment: byog-text − shuffled-text | BYOG held-out F1 |"),
             "|---|---|---|---|---|---|---|---|---|---|"]
    for env, e in an["envs"].items():
        g = e["gates"]
        pos, neg, al = g["positive"], g["negative"], g["alignment"]
        lines.append(" | ".join([
            f"| {env}", str(e["n"]), _f3(e.get("majority_acc")), _iv(pos), _yn(pos), _iv(neg),
            f"{neg['tost_p']:.3f}" if neg else "–",
            "discriminating" if g["discriminating"] else "**non-discriminating**", _iv(al),
            _f3(e.get("narrator_f1"))]) + " |")
        for c, label in ((pos, "oracle-text − random-text"), (neg, "shuffled-oracle-text − random-text")):
            if c and c.get("bootstrap") is not None:
                lines.append(f"|  |  |  | bootstrap ({label}): {c['bootstrap']} |  |  |  |  |  |  |")
    return lines


def hypotheses_md(an: dict[str, Any]) -> list[str]:
    spec = GateSpec(**an["spec"]) if "spec" in an else GateSpec()
    lines = [f"## Hypotheses (MLP head; one-sided, paired over pipeline seeds, Holm-corrected at {spec.alpha:g})", ""]
    hyps, untested = an["hypotheses"], an.get("untested", [])
    if not hyps and not untested:
        return [*lines, "None tested: no env passed both gates (or the arms were not run).", ""]
    boot = any(h.get("bootstrap") is not None for h in hyps + untested)
    lines += [("| env | N | hypothesis | arms | difference [95% CI] | " + ("bootstrap [95%] | " if boot else "")
               + "convex head | Holm level | MDE at that level | p | p (Holm) | decision |"),
              "|---|---|---|---|---|" + ("---|" if boot else "") + "---|---|---|---|---|---|"]
    for h in [*hyps, *untested]:
        iv = h["interval"]
        if "not_tested" in h:
            dec, level, mde_s, ph = f"not tested: {h['not_tested']}", "–", "–", "–"
        else:
            level, mde_s, ph = f"{h['level']:.4f}", f"{h['mde_holm']:.3f}", f"{h['p_holm']:.3f}"
            dec = ("supported" if h["reject"] else
                   f"not shown (MDE {h['mde_holm']:.3f} at one-sided {h['level']:.4f}; the interval excludes "
                   f"effects above {iv.hi:+.3f})")
        cells = [h["env"], str(h["n"]), h["name"], f"{h['a']} vs {h['b']}", str(iv)]
        if boot:
            cells.append(str(h["bootstrap"]) if h.get("bootstrap") is not None else "–")
        cells += [str(h["convex"]) if h.get("convex") is not None else "–", level, mde_s,
                  f"{iv.p_greater:.3f}", ph, dec]
        lines.append("| " + " | ".join(cells) + " |")
    maj = [f"{env} {_f3(e.get('majority_acc'))}" for env, e in an["envs"].items()]
    lines += ["", "Training-set majority action on the test split (the floor beside every arm): " + ", ".join(maj) + ".",
              ""]
    matched = [(env, e["matched_f1"]) for env, e in an["envs"].items() if e.get("matched_f1")]
    if matched:
        lines += ["### byog-text vs captioner-text at matched narration F1 (beside the matched-step row above)", "",
                  ("Per pipeline seed, the pretraining checkpoints (final and dose steps) whose BC-validation "
                   "narration F1 is nearest; descriptive, not in the Holm family."), "",
                  "| env | arms | checkpoints (byog, captioner) per seed | BC-val F1 (byog, captioner) | difference [95% CI] |",
                  "|---|---|---|---|---|"]
        for env, m in matched:
            steps = "; ".join(f"p{p['pipeline_seed']}: {p['steps'][0]:g}, {p['steps'][1]:g}" for p in m["pairs"])
            f1s = "; ".join(f"{p['f1'][0]:.3f}, {p['f1'][1]:.3f}" for p in m["pairs"])
            lines.append(f"| {env} | {m['a']} vs {m['b']} | {steps} | {f1s} | {m['interval']} |")
        lines.append("")
    return [*lines, ""]


def rliable_md(an: dict[str, Any], out: Path) -> tuple[list[str], list[Path]]:
    """IQM of normalised scores ((m − random-text) / (oracle-text − random-text)) over the gated
    (env × N) tasks, probability of improvement, performance profiles (rliable)."""
    tasks = [(env, e) for env, e in an["envs"].items() if e["gates"]["discriminating"]]
    if not tasks:
        return ["## Aggregates (rliable)", "", "Not computed: no env passed the gates.", ""], []
    try:
        from experiments.stats import (
            performance_profile_plot,
            probability_of_improvement,
            rliable_summary,
        )
    except ImportError:  # pragma: no cover - the study extra is missing
        return ["## Aggregates (rliable)", "", "rliable is not installed (pip install '.[study]').", ""], []
    arms = sorted(set.intersection(*[set(e["scores"]) for _, e in tasks]))
    norm: dict[str, list[list[float]]] = {a: [] for a in arms}
    for _env, e in tasks:
        sc = e["scores"]
        lo, hi = _seed_means(sc["random-text"]), _seed_means(sc["oracle-text"])
        seeds = sorted(set(lo) & set(hi), key=str)
        for a in arms:
            m = _seed_means(sc[a])
            norm[a].append([(m[s] - lo[s]) / (hi[s] - lo[s]) if s in m and hi[s] != lo[s] else float("nan")
                            for s in seeds])
    mats = {a: np.array(v).T for a, v in norm.items()}  # [runs (pipeline seeds), tasks]
    mats = {a: m for a, m in mats.items() if m.size and np.isfinite(m).all()}
    if not mats:
        return ["## Aggregates (rliable)", "", "Not computed: no complete normalised scores.", ""], []
    s = rliable_summary(mats)
    lines = ["## Aggregates (rliable, normalised: 0 = random-text, 1 = oracle-text, gated tasks only)", "",
             "| arm | IQM [95% CI] |", "|---|---|"]
    lines += [f"| {a} | {v['iqm']:.3f} [{v['lo']:.3f}, {v['hi']:.3f}] |" for a, v in sorted(s.items())]
    byog = _lf_key(mats, "byog-text")
    if byog and "random-text" in mats:
        lines += ["", f"P({byog} > random-text) = {probability_of_improvement(mats[byog], mats['random-text']):.3f}"]
    path = Path(performance_profile_plot(mats, str(out / "performance_profiles.png")))
    return [*lines, ""], [path]


def dose_md(rows: list[dict[str, Any]]) -> list[str]:
    """The dose-response plot's numbers: per text arm and pretraining checkpoint, narration F1
    and the BC gain over random-text (mean ± 95% t half-width over pipeline seeds)."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for d in dose_points(rows):
        groups[(d["env"], d["n"], d["arm"], d["label_fraction"], d["step"])].append(d)
    if not any(k[4] is not None for k in groups):
        return []  # no checkpoints beyond the final ones: the plot says it all
    lines = ["## Dose-response (BC gain over random-text vs narration F1, per pretraining checkpoint)", "",
             "| env | N | arm | label fraction | pretraining step | narration F1 | gain over random-text | seeds |",
             "|---|---|---|---|---|---|---|---|"]
    for key in sorted(groups, key=_sort_key):
        ds = groups[key]
        step = "–" if key[4] is None else f"{key[4]:g}"
        lf = "–" if key[3] is None else f"{key[3]:g}"
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {lf} | {step} | {format_ci([d['f1'] for d in ds])} | "
                     f"{format_ci([d['gain'] for d in ds])} | {len(ds)} |")
    return [*lines, ""]


def convergence_md(rows: list[dict[str, Any]]) -> list[str]:
    """How many BC heads stopped on their BC-validation NLL, against the budget."""
    k, n = at_cap_share(rows)
    if not n:
        return []
    ok = "within" if k <= AT_CAP_BUDGET * n else "**over**"
    return [f"BC convergence: {k} of {n} BC cells ({100 * k / n:.1f}%) reached their step cap while their "
            f"BC-validation NLL still improved (`train/at_cap_improving`), {ok} the {100 * AT_CAP_BUDGET:g}% budget.", ""]


def references_md(rows: list[dict[str, Any]]) -> list[str]:
    """Live references (expert, random, observation-blind action prior) beside the arms."""
    ref = [r for r in rows if r.get("study") == "ref"]
    if not ref:
        return []
    lines = ["## Live references", "", "| env | policy | success rate | return | Crafter score |", "|---|---|---|---|---|"]
    for key in sorted({(r["env"], r["encoder"]) for r in ref}):
        rs = [r for r in ref if (r["env"], r["encoder"]) == key]
        lines.append(f"| {key[0]} | {key[1]} | {format_ci([_num(r.get('live/success_rate')) for r in rs])} | "
                     f"{format_ci([_num(r.get('live/return')) for r in rs])} | "
                     f"{format_ci([_num(r.get('live/crafter_score')) for r in rs if _num(r.get('live/crafter_score')) is not None])} |")
    return [*lines, ""]


def _iv(c: dict | None) -> str:
    return "–" if c is None else str(c["interval"])


def _f3(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def _yn(c: dict | None) -> str:
    return "–" if c is None else ("pass" if c["pass"] else "FAIL")
