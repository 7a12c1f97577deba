"""Report of a study: ``results.csv`` (one row per cell), ``report.md`` (design, gates,
hypotheses with paired intervals and minimum detectable effects, tables, rliable aggregates)
and PNG plots (accuracy per arm, dose-response, performance profiles, PPO curves).

Reading order of ``report.md``: the **gates** decide per env whether it can discriminate at all
(positive control: oracle-text − random-text ≥ 0.10 with its interval above 0; negative
control: shuffled-text equivalent to random-text by TOST at the minimum detectable effect). An
env failing a gate is "non-discriminating" and no hypothesis is tested on it. The hypotheses
(Holm-corrected, one-sided, paired over pipeline seeds) are tested on the rest.
"""
from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from experiments.stats import format_ci, holm, mde, mean_ci, paired_t, tost

COLUMNS = ("study", "env", "encoder", "mode", "n_episodes", "label_fraction", "pretrain_step", "pipeline_seed", "seed",
           "offline/acc", "offline/nll", "offline/majority_acc", "live/success_rate", "live/return",
           "live/length", "live/crafter_score", "live_argmax/success_rate", "live_argmax/return",
           "live_argmax/crafter_score", "narration/event_f1", "narration/token_acc", "train/seconds",
           "train/steps_run", "rl/final_return", "rl/final_success", "rl/heldout_success", "rl/seconds",
           "cell/seconds")
GROUP = ("study", "env", "encoder", "mode", "n_episodes", "label_fraction", "pretrain_step")
METRICS = ("offline/acc", "offline/nll", "live/success_rate", "live_argmax/success_rate", "live/crafter_score",
           "live_argmax/crafter_score", "narration/event_f1", "train/steps_run", "rl/final_success",
           "rl/heldout_success")
POSITIVE_GATE = 0.10
"""oracle-text − random-text must reach this accuracy, with its interval above 0."""
HYPOTHESES = (("byog-text", "random-text", "byog-text > random-text"),
              ("byog-text", "captioner-text", "byog-text > captioner-text"),
              ("byog-hidden+scratch", "scratch", "byog-hidden+scratch > scratch"))
DOSE_ARMS = ("byog-text", "captioner-text", "oracle-text")
"""Arms of the dose-response (the text channel; the oracle's text at F1 = 1)."""
HYPOTHESIS_LF = 0.05
"""Label fraction of the hypotheses' BYOG/captioner arms (the lowest available when absent)."""


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


def _per_seed(rows: list[dict[str, Any]], metric: str) -> list[float]:
    """One value per pipeline seed: the mean over its BC seeds."""
    by: dict[Any, list[float]] = defaultdict(list)
    for r in rows:
        v = _num(r.get(metric))
        if v is not None:
            by[r.get("pipeline_seed", 0)].append(v)
    return [float(np.mean(v)) for _, v in sorted(by.items(), key=lambda kv: str(kv[0]))]


def _sort_key(k: tuple) -> tuple:
    return tuple((0, _num(x), "") if _num(x) is not None else (1, 0.0, str(x)) for x in k)


# ---------------------------------------------------------------------------- paired analysis
def arm_key(r: dict[str, Any]) -> str:
    """``arm`` or ``arm@lf`` for arms pretrained below full labels."""
    lf = _num(r.get("label_fraction"))
    return r["encoder"] + (f"@{lf:g}" if lf is not None and lf < 1.0 else "") + (
        "/finetune" if r.get("mode") == "finetune" else "")


def scores(rows: list[dict[str, Any]], env: str, n: int, metric: str = "offline/acc") -> dict[str, dict[tuple, float]]:
    """``{arm key: {(pipeline seed, BC seed): value}}`` of the BC cells of ``env`` at ``n``."""
    out: dict[str, dict[tuple, float]] = defaultdict(dict)
    for r in rows:
        if r.get("study") == "bc" and r.get("env") == env and r.get("n_episodes") == n:
            v = _num(r.get(metric))
            if v is not None:
                out[arm_key(r)][(r["pipeline_seed"], r["seed"])] = v
    return out


def paired_diffs(a: dict[tuple, float], b: dict[tuple, float]) -> list[float]:
    """Per-pipeline-seed mean of a − b over the (pipeline seed, BC seed) pairs both have."""
    by: dict[Any, list[float]] = defaultdict(list)
    for k in sorted(set(a) & set(b), key=str):
        by[k[0]].append(a[k] - b[k])
    return [float(np.mean(v)) for _, v in sorted(by.items(), key=lambda kv: str(kv[0]))]


def compare(a: dict[tuple, float], b: dict[tuple, float]) -> dict[str, Any]:
    """Paired t-interval over pipeline seeds, its one-sided p, and the MDE."""
    d = paired_diffs(a, b)
    iv = paired_t(d)
    sd = float(np.std(d, ddof=1)) if len(d) > 1 else float("nan")
    return {"diffs": d, "interval": iv, "mde": mde(sd, len(d))}


def gates(sc: dict[str, dict[tuple, float]]) -> dict[str, Any]:
    """The positive and negative control gates of one (env, N)."""
    out: dict[str, Any] = {"positive": None, "negative": None, "discriminating": False}
    if "oracle-text" in sc and "random-text" in sc:
        c = compare(sc["oracle-text"], sc["random-text"])
        c["pass"] = bool(c["interval"].estimate >= POSITIVE_GATE and c["interval"].lo > 0)
        out["positive"] = c
    shuffled = _lf_key(sc, "shuffled-text")  # pretrained (BYOG) narration: keyed with its label fraction
    if shuffled and "random-text" in sc:
        c = compare(sc[shuffled], sc["random-text"])
        margin = c["mde"]
        c["tost_p"], c["pass"] = tost(c["diffs"], margin)
        out["negative"] = c
    out["discriminating"] = bool(out["positive"] and out["positive"]["pass"]
                                 and out["negative"] and out["negative"]["pass"])
    return out


def _lf_key(sc: dict[str, dict], arm: str) -> str | None:
    """``arm@0.05`` (or the lowest label fraction present, else the plain arm)."""
    cands = [k for k in sc if k == arm or (k.startswith(arm + "@") and "/" not in k)]
    if not cands:
        return None
    at = [k for k in cands if k == f"{arm}@{HYPOTHESIS_LF:g}"]
    return at[0] if at else min(cands, key=lambda k: _num(k.split("@")[1]) if "@" in k else 1.0)


def analyse(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Gates per (env, largest N), hypotheses on discriminating envs, Holm across all tested."""
    bc = [r for r in rows if r.get("study") == "bc"]
    envs = sorted({r["env"] for r in bc})
    result: dict[str, Any] = {"envs": {}, "hypotheses": []}
    for env in envs:
        n = max(r["n_episodes"] for r in bc if r["env"] == env)
        sc = scores(bc, env, n)
        g = gates(sc)
        result["envs"][env] = {"n": n, "gates": g, "scores": sc}
        if not g["discriminating"]:
            continue
        for a, b, name in HYPOTHESES:
            ka, kb = _lf_key(sc, a), _lf_key(sc, b)
            if ka and kb:
                c = compare(sc[ka], sc[kb])
                result["hypotheses"].append({"env": env, "n": n, "name": name, "a": ka, "b": kb, **c})
    adj = holm({f"{h['env']}: {h['name']}": h["interval"].p_greater for h in result["hypotheses"]})
    for h in result["hypotheses"]:
        h["p_holm"], h["reject"] = adj[f"{h['env']}: {h['name']}"]
    return result


# ---------------------------------------------------------------------------- markdown
def gates_md(an: dict[str, Any]) -> list[str]:
    lines = ["## Gates (per env, at the largest N)", "",
             ("| env | N | oracle-text − random-text | gate ≥ 0.10, lo > 0 | shuffled-text − random-text | "
              "TOST margin (MDE) | TOST p | verdict |"), "|---|---|---|---|---|---|---|---|"]
    for env, e in an["envs"].items():
        g = e["gates"]
        pos, neg = g["positive"], g["negative"]
        lines.append(" | ".join([
            f"| {env}", str(e["n"]), str(pos["interval"]) if pos else "–", _yn(pos), str(neg["interval"]) if neg else "–",
            f"{neg['mde']:.3f}" if neg else "–", f"{neg['tost_p']:.3f}" if neg else "–",
            "discriminating" if g["discriminating"] else "**non-discriminating**"]) + " |")
    return lines


def hypotheses_md(an: dict[str, Any]) -> list[str]:
    lines = ["## Hypotheses (one-sided, paired over pipeline seeds, Holm-corrected at 0.05)", ""]
    if not an["hypotheses"]:
        return [*lines, "None tested: no env passed both gates (or the arms were not run).", ""]
    lines += ["| env | N | hypothesis | arms | difference [95% CI] | MDE | p | p (Holm) | decision |",
              "|---|---|---|---|---|---|---|---|---|"]
    for h in an["hypotheses"]:
        iv = h["interval"]
        dec = "supported" if h["reject"] else f"not shown (an effect below {h['mde']:.3f} cannot be excluded)"
        lines.append(f"| {h['env']} | {h['n']} | {h['name']} | {h['a']} vs {h['b']} | {iv} | {h['mde']:.3f} | "
                     f"{iv.p_greater:.3f} | {h['p_holm']:.3f} | {dec} |")
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


def _seed_means(sc: dict[tuple, float]) -> dict[Any, float]:
    by: dict[Any, list[float]] = defaultdict(list)
    for (ps, _), v in sc.items():
        by[ps].append(v)
    return {k: float(np.mean(v)) for k, v in by.items()}


# ---------------------------------------------------------------------------- plots
def plots(rows: list[dict[str, Any]], an: dict[str, Any], out: Path) -> list[Path]:
    """``acc_<env>.png`` (per arm, mean ± CI over pipeline seeds, majority line), the
    dose-response plot, and PPO curves when present."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for env, e in an["envs"].items():
        sc = e["scores"]
        arms = sorted(sc, key=lambda a: np.mean(list(sc[a].values())))
        fig, ax = plt.subplots(figsize=(6, 0.35 * len(arms) + 1.5))
        for i, a in enumerate(arms):
            m, h = mean_ci(_seed_means(sc[a]).values())
            ax.errorbar([m], [i], xerr=[[0 if math.isnan(h) else h]], fmt="o", capsize=3)
        maj = [_num(r.get("offline/majority_acc")) for r in rows if r.get("env") == env and r.get("study") == "bc"]
        maj = [x for x in maj if x is not None]
        if maj:
            ax.axvline(float(np.mean(maj)), color="grey", linestyle=":", linewidth=1, label="majority action")
            ax.legend(fontsize=7, loc="lower right")
        ax.set_yticks(range(len(arms)), arms, fontsize=7)
        ax.set(xlabel="held-out action accuracy (mean ± 95% CI over pipeline seeds)", title=f"{env}, N = {e['n']}")
        fig.tight_layout()
        p = out / f"acc_{env}.png"
        fig.savefig(p, dpi=100)
        plt.close(fig)
        written.append(p)
    dose = dose_response(rows)
    if dose:
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        for i, (label, pts) in enumerate(sorted(dose.items())):
            ax.scatter([x for x, _ in pts], [y for _, y in pts], label=label, color=f"C{i}", s=18)
        ax.axhline(0, color="grey", linewidth=0.8)
        ax.set(xlabel="narration event F1 (oracle = 1)", ylabel="BC gain over random-text (accuracy)",
               title="dose-response: a point per pipeline seed and checkpoint")
        ax.legend(fontsize=7)
        fig.tight_layout()
        p = out / "dose_response.png"
        fig.savefig(p, dpi=100)
        plt.close(fig)
        written.append(p)
    return written


def dose_points(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One dose-response point per (env, N, text arm, label fraction, pretraining checkpoint,
    pipeline seed): ``f1`` is that checkpoint's held-out narration event F1
    (``narration/event_f1@step``, the same measure at every step, where the study kept steps;
    else the trainer's final validation F1; the oracle text at 1) and ``gain`` the BC accuracy
    over random-text of the same pipeline seed (BC seeds averaged). The final checkpoints come
    from the ``bc`` cells, earlier ones from the ``dose`` cells."""
    bc = [r for r in rows if r.get("study") == "bc"]
    cloned = [r for r in rows if r.get("study") in ("bc", "dose") and r.get("encoder") in DOSE_ARMS]
    points = []
    for env in sorted({r["env"] for r in bc}):
        for n in sorted({r["n_episodes"] for r in bc if r["env"] == env}):
            base = _seed_means(scores(bc, env, n).get("random-text", {}))
            acc: dict[tuple, list[float]] = defaultdict(list)  # (arm, lf, step, ps) -> BC seeds
            f1: dict[tuple, float | None] = {}
            for r in cloned:
                v = _num(r.get("offline/acc"))
                if r["env"] != env or r["n_episodes"] != n or v is None:
                    continue
                step = _num(r.get("pretrain_step"))
                key = (r["encoder"], _num(r.get("label_fraction")), step, r["pipeline_seed"])
                acc[key].append(v)
                f1[key] = 1.0 if r["encoder"] == "oracle-text" else _checkpoint_f1(r, step)
            for key in sorted(acc, key=str):
                arm, lf, step, ps = key
                if f1[key] is not None and ps in base:
                    points.append({"env": env, "n": n, "arm": arm, "label_fraction": lf, "step": step,
                                   "pipeline_seed": ps, "f1": f1[key],
                                   "gain": float(np.mean(acc[key])) - base[ps]})
    return points


def _checkpoint_f1(r: dict[str, Any], step: float | None) -> float | None:
    """A cell's narration F1 at its pretraining step: the kept-steps measure where the final
    cell carries it (``narration/event_f1@step``), else the cell's own (a dose cell's is its
    checkpoint's; without kept steps, the trainer's final validation F1)."""
    at = r.get(f"narration/event_f1@{int(step)}") if step is not None else None
    return _num(at if at is not None else r.get("narration/event_f1"))


def dose_response(rows: list[dict[str, Any]]) -> dict[str, list[tuple[float, float]]]:
    """``{"env arm": [(narration F1, gain over random-text)]}`` (:func:`dose_points`), the plot's
    series."""
    out: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for d in dose_points(rows):
        out[f"{d['env']} {d['arm']}"].append((d["f1"], d["gain"]))
    return dict(out)


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


def rl_curve_plot(root: Path, out: Path) -> list[Path]:
    """PPO return curves (trailing mean), one line per seed."""
    curves = sorted(root.rglob("curve.csv"))
    if not curves:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for i, c in enumerate(curves):
        with open(c) as f:
            data = list(csv.DictReader(f))
        if data:
            ax.plot([float(d["timesteps"]) for d in data], smooth([float(d["return"]) for d in data], RL_SMOOTH),
                    color=f"C{i % 10}", linewidth=1, label=c.parent.name)
    ax.set(xlabel="environment steps", ylabel=f"episode return (mean of last {RL_SMOOTH})", title="PPO")
    ax.legend(fontsize=6)
    fig.tight_layout()
    p = out / "rl_curves.png"
    fig.savefig(p, dpi=100)
    plt.close(fig)
    return [p]


RL_SMOOTH = 20
"""Episodes in the trailing mean of the PPO return curves."""


def smooth(values: list[float], window: int) -> list[float]:
    """Trailing mean over the last ``window`` values (fewer at the start)."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v - (values[i - window] if i >= window else 0.0)
        out.append(total / min(i + 1, window))
    return out


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


def write_report(root: Path, rows: list[dict[str, Any]] | None = None, design: Any = None, *,
                 command: str = "", seconds: float | None = None) -> str:
    """Write results.csv, analysis.json, report.md and the plots under ``root``; returns the markdown.

    ``rows`` are the study's cell rows (default: every ``cell.json`` under ``root/cells``)."""
    root = Path(root)
    if rows is None:
        rows = [json.loads(f.read_text()) for f in sorted(root.rglob("cell.json"))]
    write_csv(rows, root / "results.csv")
    an = analyse(rows)
    pngs = plots(rows, an, root) + rl_curve_plot(root, root)
    agg, agg_png = rliable_md(an, root)
    md = ["# Transfer study", ""]
    if command:
        md += [f"Command: `{command}`", ""]
    if seconds is not None:
        md += [f"Wall clock: {seconds / 60:.1f} min.", ""]
    if design is not None:
        md += [f"Design: {getattr(design, 'description', '')}", ""]
    md += [("Accuracy is the held-out (test split) action accuracy; intervals are 95% paired t over "
            "pipeline seeds (BC seeds averaged within each); MDE = minimum detectable effect at 80% power."), ""]
    md += gates_md(an) + [""] + hypotheses_md(an) + agg + references_md(rows) + dose_md(rows)
    md += ["## All cells (mean ± 95% CI over pipeline seeds)", "", table(rows), ""]
    md += [f"![{p.stem}]({p.name})" for p in pngs + agg_png]
    text = "\n".join(md) + "\n"
    (root / "report.md").write_text(text)
    (root / "analysis.json").write_text(json.dumps(_jsonable_analysis(an), indent=2, default=str))
    return text


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


def _yn(c: dict | None) -> str:
    return "–" if c is None else ("pass" if c["pass"] else "FAIL")


def _num(v: Any) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x


__all__ = ["COLUMNS", "analyse", "gates", "table", "write_report"]
