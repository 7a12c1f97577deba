"""Report of a study: ``results.csv`` (one row per cell), ``report.md`` (design, gates,
hypotheses with paired intervals and minimum detectable effects, tables, rliable aggregates)
and PNG plots (accuracy per arm, dose-response, performance profiles, PPO curves).

Reading order of ``report.md``: the **gates**, fixed in the preset before any data and the same
for every env (:class:`GateSpec`), decide per env whether it can discriminate at all: positive
control, the 95% interval of oracle-text − random-text has its *lower bound* at or above 0.10;
negative control, ``shuffled-oracle-text`` (the annotation text shuffled across episodes) is
equivalent to random-text by TOST at the fixed margin 0.025. A margin computed from the same
data would let noise pass (the MDE of the differences scales with their spread); a fixed one
fails when the data are noisy. An env failing a gate is "non-discriminating" and no hypothesis
is tested on it. ``shuffled-text`` (BYOG's own narration shuffled) is reported as the alignment
diagnostic byog-text − shuffled-text, not as a gate. The text hypotheses are tested only where
BYOG's held-out narration F1 reaches ``GateSpec.min_narrator_f1`` (else "not tested: narrator
silent"); the hypotheses tested are Holm-corrected, one-sided, paired over pipeline seeds, each
"not shown" beside its MDE at the one-sided level Holm tested it at.
"""
from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from experiments.report_analysis import (  # noqa: F401  (moved there; importable from here)
    AT_CAP_BUDGET,
    COLUMNS,
    DOSE_ARMS,
    GROUP,
    HYPOTHESES,
    HYPOTHESIS_LF,
    METRICS,
    POSITIVE_GATE,
    TEXT_HYPOTHESES,
    GateSpec,
    _num,
    _per_seed,
    _sort_key,
    analyse,
    arm_key,
    at_cap_share,
    bootstrap_interval,
    compare,
    dose_points,
    dose_response,
    episode_scores,
    gates,
    matched_f1,
    narrator_f1,
    paired_diffs,
    scores,
)
from experiments.report_md import (  # noqa: F401  (moved there; importable from here)
    convergence_md,
    dose_md,
    gates_md,
    hypotheses_md,
    references_md,
    rliable_md,
)
from experiments.report_plots import (  # noqa: F401  (moved there; importable from here)
    RL_SMOOTH,
    plots,
    rl_curve_plot,
    smooth,
)
from experiments.stats import (
    format_ci,
)


# ---------------------------------------------------------------------------- rows
def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(COLUMNS), extrasaction="ignore")
        w.writeheader()
        w.writerows([{c: r.get(c, "") for c in COLUMNS} for r in rows])


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown table, one line per cell group: mean ± 95% t-interval over the per-pipeline-seed
    means (BC seeds averaged within each pipeline seed first)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[tuple(r.get(g, "") for g in GROUP)].append(r)
    metrics = [m for m in METRICS if any(_num(r.get(m)) is not None for r in rows)]
    lines = ["| " + " | ".join((*GROUP, *metrics)) + " |", "|" + "---|" * (len(GROUP) + len(metrics))]
    for key in sorted(groups, key=_sort_key):
        cells = [format_ci(_per_seed(groups[key], m)) for m in metrics]
        lines.append("| " + " | ".join([*("–" if k is None else str(k) for k in key), *cells]) + " |")
    return "\n".join(lines)


def write_report(root: Path, rows: list[dict[str, Any]] | None = None, design: Any = None, *,
                 command: str = "", seconds: float | None = None) -> str:
    """Write results.csv, analysis.json, report.md and the plots under ``root``; returns the markdown.

    ``rows`` are the study's cell rows (default: every ``cell.json`` under ``root/cells``)."""
    root = Path(root)
    if rows is None:
        rows = [json.loads(f.read_text()) for f in sorted(root.rglob("cell.json"))]
    write_csv(rows, root / "results.csv")
    an = analyse(rows, design)
    pngs = plots(rows, an, root) + rl_curve_plot(root, root)
    agg, agg_png = rliable_md(an, root)
    md = ["# Transfer study", ""]
    if command:
        md += [f"Command: `{command}`", ""]
    if seconds is not None:
        md += [f"Wall clock: {seconds / 60:.1f} min.", ""]
    if design is not None:
        md += [f"Preset: {getattr(design, 'description', '')}", "", f"This run's design: {design_summary(design)}", ""]
    md += [("Accuracy is the held-out (test split) action accuracy; intervals are 95% paired t over "
            "pipeline seeds (BC seeds averaged within each); MDE = minimum detectable effect at 80% power. "
            "The MLP head decides; the convex head (logistic regression on the frozen features + mission "
            "one-hot, C tuned on BC-validation) is a secondary check."), ""]
    md += convergence_md(rows)
    md += gates_md(an) + [""] + hypotheses_md(an) + agg + references_md(rows) + dose_md(rows)
    md += ["## All cells (mean ± 95% CI over pipeline seeds)", "", table(rows), ""]
    md += [f"![{p.stem}]({p.name})" for p in pngs + agg_png]
    text = "\n".join(md) + "\n"
    (root / "report.md").write_text(text)
    (root / "analysis.json").write_text(json.dumps(_jsonable_analysis(an), indent=2, default=str))
    return text


def design_summary(design: Any) -> str:
    """The resolved design of a run (the preset *with* its overrides: a preset's description
    alone misdescribes a run that overrode its envs, episodes or arms)."""
    envs = "; ".join(f"{e} {plan.episodes} episodes" + (f" x {plan.max_steps} steps" if plan.max_steps else "")
                     for e, plan in getattr(design, "envs", {}).items())
    parts = [envs, "arms " + ", ".join(getattr(design, "arms", ())),
             "N " + ", ".join(str(n) for n in getattr(design, "ns", ())),
             f"pipeline seeds {list(getattr(design, 'pipeline_seeds', ()))} x BC seeds {list(getattr(design, 'bc_seeds', ()))}",
             f"label fractions {list(getattr(design, 'label_fractions', ()))}",
             f"{getattr(design, 'pretrain_steps', '?')} pretraining steps"
             + (f" (dose checkpoints {list(design.dose_steps)})" if getattr(design, "dose_steps", ()) else ""),
             f"BC at most {getattr(design, 'bc_steps', '?')} steps of {getattr(design, 'bc_batch', '?')} episodes "
             f"(lr {getattr(design, 'bc_lr', '?')}, patience {getattr(design, 'patience', '?')} evaluations "
             f"every {getattr(design, 'eval_every', '?')} steps)",
             f"{getattr(design, 'live_episodes', 0)} live episodes per cell and action mode"]
    return "; ".join(x for x in parts if x) + "."


def _jsonable_analysis(an: dict[str, Any]) -> dict[str, Any]:
    def conv(x: Any) -> Any:
        if isinstance(x, dict):
            return {str(k): conv(v) for k, v in x.items() if k != "scores"}
        if isinstance(x, list):
            return [conv(v) for v in x]
        if hasattr(x, "estimate"):
            return {"estimate": x.estimate, "lo": x.lo, "hi": x.hi, "n": x.n, "method": x.method,
                    "p_greater": x.p_greater}
        return x
    return conv(an)


__all__ = ["COLUMNS", "analyse", "gates", "table", "write_report"]
