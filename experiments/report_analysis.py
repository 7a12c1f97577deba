"""The study's analysis: per-arm scores, paired differences with hierarchical bootstrap intervals,
the gates (:class:`GateSpec`), the hypotheses (Holm, MDE), narrator F1 and the dose-response.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

from experiments.stats import (
    Interval,
    hierarchical_bootstrap,
    holm,
    mde,
    paired_t,
    tost,
)

COLUMNS = ("study", "env", "encoder", "mode", "n_episodes", "label_fraction", "pretrain_step", "pipeline_seed", "seed",
           "offline/acc", "offline/nll", "offline/majority_acc", "offline/convex_acc", "offline/convex_nll",
           "train/convex_C", "live/success_rate", "live/return", "live/length", "live/crafter_score",
           "live_argmax/success_rate", "live_argmax/return", "live_argmax/crafter_score", "narration/event_f1",
           "narration/bc_val_f1", "narration/token_acc", "narration/trainer_event_f1", "offline/narration_support", "live/narration_support",
           "live_argmax/narration_support", "train/seconds",
           "train/steps_run", "train/at_cap_improving", "rl/final_return", "rl/final_success",
           "rl/heldout_success", "rl/seconds", "cell/seconds")
GROUP = ("study", "env", "encoder", "mode", "n_episodes", "label_fraction", "pretrain_step")
METRICS = ("offline/acc", "offline/majority_acc", "offline/convex_acc", "offline/nll", "live/success_rate",
           "live_argmax/success_rate", "live/crafter_score", "live_argmax/crafter_score", "narration/event_f1",
           "offline/narration_support", "live/narration_support", "train/steps_run", "train/at_cap_improving",
           "rl/final_success", "rl/heldout_success")


@dataclass(frozen=True)
class GateSpec:
    """The study's decision rules, fixed before any data (``StudyPreset`` carries them; the
    same for every env)."""

    positive_lo: float = 0.10
    """Positive control: the 95% interval's lower bound of oracle-text − random-text must reach this."""
    equivalence_margin: float = 0.025
    """Negative control: shuffled-oracle-text − random-text within ± this, by TOST at ``alpha``."""
    min_narrator_f1: float = 0.15
    """The text hypotheses are tested only where BYOG's held-out narration F1 reaches this."""
    alpha: float = 0.05
    """Family-wise level of the hypotheses (Holm) and of each TOST test."""
    bootstrap: bool = False
    """Also the paired hierarchical bootstrap (pipeline seed → BC seed → test episode) as a
    secondary interval of every comparison."""

    @classmethod
    def of(cls, design: Any = None) -> GateSpec:
        """The rules of a ``StudyPreset`` (its ``positive_gate``, ``equivalence_margin``,
        ``min_narrator_f1``, ``hierarchical_bootstrap``); the defaults without one."""
        d = cls()
        if design is None:
            return d
        return cls(positive_lo=float(getattr(design, "positive_gate", d.positive_lo)),
                   equivalence_margin=float(getattr(design, "equivalence_margin", d.equivalence_margin)),
                   min_narrator_f1=float(getattr(design, "min_narrator_f1", d.min_narrator_f1)),
                   bootstrap=bool(getattr(design, "hierarchical_bootstrap", d.bootstrap)))


POSITIVE_GATE = GateSpec.positive_lo
"""oracle-text − random-text: the lower bound of its 95% interval must reach this."""
HYPOTHESES = (("byog-text", "random-text", "byog-text > random-text"),
              ("byog-text", "captioner-text", "byog-text > captioner-text"),
              ("byog-hidden+scratch", "scratch", "byog-hidden+scratch > scratch"))
TEXT_HYPOTHESES = ("byog-text > random-text", "byog-text > captioner-text")
"""The hypotheses about BYOG's words: untested where its narrator is silent."""
DOSE_ARMS = ("byog-text", "captioner-text", "oracle-text")
"""Arms of the dose-response (the text channel; the oracle's text at F1 = 1)."""
HYPOTHESIS_LF = 0.05
"""Label fraction of the hypotheses' BYOG/captioner arms (the lowest available when absent)."""


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


def compare(a: dict[tuple, float], b: dict[tuple, float], ea: dict[tuple, Any] | None = None,
            eb: dict[tuple, Any] | None = None) -> dict[str, Any]:
    """Paired t-interval over pipeline seeds, its one-sided p, the spread and the two-sided MDE;
    with per-episode results of both arms (``ea``/``eb``, :func:`episode_scores`) also the paired
    hierarchical bootstrap (``bootstrap``, None where the seeds are not a full grid)."""
    d = paired_diffs(a, b)
    iv = paired_t(d)
    sd = float(np.std(d, ddof=1)) if len(d) > 1 else float("nan")
    out = {"diffs": d, "interval": iv, "sd": sd, "mde": mde(sd, len(d))}
    if ea is not None and eb is not None:
        out["bootstrap"] = bootstrap_interval(ea, eb)
    return out


def episode_scores(rows: list[dict[str, Any]], env: str, n: int) -> dict[str, dict[tuple, tuple]]:
    """``{arm key: {(pipeline seed, BC seed): (correct per test episode, steps per test episode)}}``."""
    out: dict[str, dict[tuple, tuple]] = defaultdict(dict)
    for r in rows:
        c, s = r.get("offline/episode_correct"), r.get("offline/episode_steps")
        if r.get("study") == "bc" and r.get("env") == env and r.get("n_episodes") == n and c and s:
            out[arm_key(r)][(r["pipeline_seed"], r["seed"])] = (list(c), list(s))
    return out


def bootstrap_interval(ea: dict[tuple, tuple], eb: dict[tuple, tuple]) -> Interval | None:
    """The paired hierarchical bootstrap (pipeline seed → BC seed → test episode, the same
    resampled indices for both arms) of the per-step accuracy difference; None unless both
    arms have every (pipeline seed, BC seed) of a full grid with the same test episodes."""
    keys = set(ea) & set(eb)
    ps, bs = sorted({k[0] for k in keys}, key=str), sorted({k[1] for k in keys}, key=str)
    if len(ps) < 2 or any((p, b) not in keys for p in ps for b in bs):
        return None
    steps = {len(ea[k][1]) for k in keys} | {len(eb[k][1]) for k in keys}
    if len(steps) != 1:
        return None

    def grid(e: dict[tuple, tuple], i: int) -> np.ndarray:
        return np.array([[e[(p, b)][i] for b in bs] for p in ps], dtype=float)  # [S, B, E]

    w = grid(ea, 1)
    if not np.array_equal(w, grid(eb, 1)):
        return None  # not the same test episodes
    safe = np.maximum(w, 1)
    return hierarchical_bootstrap(grid(ea, 0) / safe, grid(eb, 0) / safe, w)


def gates(sc: dict[str, dict[tuple, float]], spec: GateSpec | None = None,
          eps: dict[str, dict[tuple, tuple]] | None = None) -> dict[str, Any]:
    """The positive and negative control gates of one (env, N), and the alignment diagnostic."""
    spec = spec or GateSpec()
    out: dict[str, Any] = {"positive": None, "negative": None, "alignment": None, "discriminating": False}

    def cmp(a: str, b: str) -> dict[str, Any]:
        return compare(sc[a], sc[b], *((eps.get(a, {}), eps.get(b, {})) if eps is not None else ()))

    if "oracle-text" in sc and "random-text" in sc:
        c = cmp("oracle-text", "random-text")
        lo = c["interval"].lo
        c["pass"] = bool(math.isfinite(lo) and lo >= spec.positive_lo)
        out["positive"] = c
    if "shuffled-oracle-text" in sc and "random-text" in sc:
        c = cmp("shuffled-oracle-text", "random-text")
        c["margin"] = spec.equivalence_margin  # fixed in advance: noisier data fail, never pass
        c["tost_p"], c["pass"] = tost(c["diffs"], spec.equivalence_margin, spec.alpha)
        out["negative"] = c
    byog, shuffled = _lf_key(sc, "byog-text"), _lf_key(sc, "shuffled-text")
    if byog and shuffled:  # does BYOG's narration align with its episode? (not a gate)
        out["alignment"] = {"a": byog, "b": shuffled, **cmp(byog, shuffled)}
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


def narrator_f1(rows: list[dict[str, Any]], env: str, n: int, key: str) -> float | None:
    """BYOG's held-out narration F1 (the final checkpoint's ``narration/event_f1`` on the test
    split), the mean over pipeline seeds of the ``key`` arm's BC cells; None without one."""
    by: dict[Any, list[float]] = defaultdict(list)
    for r in rows:
        v = _num(r.get("narration/event_f1"))
        if r.get("study") == "bc" and r.get("env") == env and r.get("n_episodes") == n and arm_key(r) == key \
                and v is not None:
            by[r["pipeline_seed"]].append(v)
    return float(np.mean([np.mean(v) for v in by.values()])) if by else None


def matched_f1(rows: list[dict[str, Any]], env: str, n: int, a: str = "byog-text",
               b: str = "captioner-text") -> dict[str, Any] | None:
    """``a`` vs ``b`` at matched narration F1: per pipeline seed, the pair of pretraining
    checkpoints (final and dose steps) whose *BC-validation* F1 (``narration/bc_val_f1``, never
    the test split) is nearest, then the paired accuracy difference over the BC seeds both have
    (the later pair on a tie); a paired t over pipeline seeds. None without BC-validation F1."""
    cells: dict[tuple, dict[str, Any]] = defaultdict(lambda: {"f1": [], "acc": {}})
    keys = {}
    for r in rows:
        if r.get("study") not in ("bc", "dose") or r.get("env") != env or r.get("n_episodes") != n:
            continue
        f1, acc, step = _num(r.get("narration/bc_val_f1")), _num(r.get("offline/acc")), _num(r.get("pretrain_step"))
        if r.get("encoder") in (a, b) and f1 is not None and acc is not None and step is not None:
            keys.setdefault(r["encoder"], set()).add(arm_key(r))
            c = cells[(arm_key(r), r["pipeline_seed"], step)]
            c["f1"].append(f1)
            c["acc"][r["seed"]] = acc
    ka, kb = _lf_key(dict.fromkeys(keys.get(a, ())), a), _lf_key(dict.fromkeys(keys.get(b, ())), b)
    if not ka or not kb:
        return None
    pairs, diffs = [], []
    for ps in sorted({k[1] for k in cells}, key=str):
        ca = {k[2]: v for k, v in cells.items() if k[0] == ka and k[1] == ps}
        cb = {k[2]: v for k, v in cells.items() if k[0] == kb and k[1] == ps}
        options = [(abs(np.mean(ca[sa]["f1"]) - np.mean(cb[sb]["f1"])), -(sa + sb), sa, sb)
                   for sa in ca for sb in cb if set(ca[sa]["acc"]) & set(cb[sb]["acc"])]
        if not options:
            continue
        _, _, sa, sb = min(options)
        common = sorted(set(ca[sa]["acc"]) & set(cb[sb]["acc"]), key=str)
        diffs.append(float(np.mean([ca[sa]["acc"][s] - cb[sb]["acc"][s] for s in common])))
        pairs.append({"pipeline_seed": ps, "steps": (sa, sb), "f1": (float(np.mean(ca[sa]["f1"])),
                                                                      float(np.mean(cb[sb]["f1"])))})
    return {"a": ka, "b": kb, "pairs": pairs, "diffs": diffs, "interval": paired_t(diffs)} if diffs else None


def analyse(rows: list[dict[str, Any]], design: Any = None) -> dict[str, Any]:
    """Gates per (env, largest N) under the design's :class:`GateSpec`; the hypotheses on
    discriminating envs (the text ones only where BYOG's narrator speaks), Holm across all
    tested, each with its MDE at the one-sided level Holm tested it at; the convex head's and
    the matched-F1 comparisons beside them."""
    spec = GateSpec.of(design)
    bc = [r for r in rows if r.get("study") == "bc"]
    envs = sorted({r["env"] for r in bc})
    result: dict[str, Any] = {"spec": spec.__dict__, "envs": {}, "hypotheses": [], "untested": []}
    for env in envs:
        n = max(r["n_episodes"] for r in bc if r["env"] == env)
        sc, cvx = scores(bc, env, n), scores(bc, env, n, "offline/convex_acc")
        eps = episode_scores(bc, env, n) if spec.bootstrap else None
        g = gates(sc, spec, eps)
        byog = _lf_key(sc, "byog-text")
        f1 = narrator_f1(bc, env, n, byog) if byog else None
        maj = [_num(r.get("offline/majority_acc")) for r in bc if r["env"] == env and r["n_episodes"] == n]
        maj = [m for m in maj if m is not None]
        result["envs"][env] = {"n": n, "gates": g, "scores": sc, "narrator_f1": f1,
                               "majority_acc": float(np.mean(maj)) if maj else None,
                               "matched_f1": matched_f1(rows, env, n)}
        if not g["discriminating"]:
            continue
        for a, b, name in HYPOTHESES:
            ka, kb = _lf_key(sc, a), _lf_key(sc, b)
            if not (ka and kb):
                continue
            c = compare(sc[ka], sc[kb], *((eps.get(ka, {}), eps.get(kb, {})) if eps is not None else ()))
            h = {"env": env, "n": n, "name": name, "a": ka, "b": kb, **c}
            if ka in cvx and kb in cvx:
                h["convex"] = compare(cvx[ka], cvx[kb])["interval"]
            if name in TEXT_HYPOTHESES and (f1 is None or f1 < spec.min_narrator_f1):
                h["not_tested"] = "narrator silent (F1 " + ("–" if f1 is None else f"{f1:.3f}") + ")"
                result["untested"].append(h)
            else:
                result["hypotheses"].append(h)
    adj = holm({f"{h['env']}: {h['name']}": h["interval"].p_greater for h in result["hypotheses"]}, spec.alpha)
    order = sorted(result["hypotheses"], key=lambda h: (not math.isfinite(h["interval"].p_greater),
                                                         h["interval"].p_greater))
    for rank, h in enumerate(order):
        h["p_holm"], h["reject"] = adj[f"{h['env']}: {h['name']}"]
        h["level"] = spec.alpha / (len(order) - rank)  # the one-sided level Holm tested it at
        h["mde_holm"] = mde(h["sd"], len(h["diffs"]), alpha=h["level"], one_sided=True)
    return result


def _seed_means(sc: dict[tuple, float]) -> dict[Any, float]:
    by: dict[Any, list[float]] = defaultdict(list)
    for (ps, _), v in sc.items():
        by[ps].append(v)
    return {k: float(np.mean(v)) for k, v in by.items()}


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


AT_CAP_BUDGET = 0.05
"""At most this share of BC cells may reach their step cap while their BC-validation NLL still improved."""


def at_cap_share(rows: list[dict[str, Any]]) -> tuple[int, int]:
    """``(cells at their cap while improving, BC cells that say)`` over the bc and dose cells."""
    flags = [_num(r.get("train/at_cap_improving")) for r in rows if r.get("study") in ("bc", "dose", "cross")]
    flags = [f for f in flags if f is not None]
    return int(sum(f > 0 for f in flags)), len(flags)


def _num(v: Any) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x
