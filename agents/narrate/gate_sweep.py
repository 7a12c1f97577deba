"""``agents.narrate --sentence-share-sweep``: the live narration said again at several sentence
gate shares, from one run.

The sentence gate (rule 4 of :mod:`agents.model.slot_rule`) leaves decoding as it is: it only
decides which of the decoded sentences are *said*, from each decoded token's share of the
words' probability. So a run that records the decoded slots and those shares
(``NarrationWrapper(shares=True)``) can be said again at any share q with
``SlotRule.say_shares``, and each q's row is exactly what a run with ``--sentence-share q``
says (``tests/test_narrate_cli.py`` checks). The rows are scored like the live arm (event
F1 with its interval over episodes, precision, recall, |lag|), so a user picks q on
episodes of their own (other episodes than those they report).
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.errors import NarrationError
from agents.narrate.config import NarrateConfig
from agents.narrate.episodes import EpisodeLog

CSV, PLOT = "sentence_gate_sweep.csv", "sentence_gate_sweep.png"
COLUMNS = ("sentence_share", "f1", "f1_lo", "f1_hi", "precision", "recall", "lag_abs_p50",
           "lag_abs_p90", "hushed_sentences")


def said_at(rule: Any, log: EpisodeLog) -> tuple[np.ndarray, int]:
    """One episode's recorded decoding said by ``rule`` (its ``sentence_share`` set): ids int64
    [T, k] and the sentences left unsaid. One track for the whole log, as live: a narrator keeps
    its track over an episode (and over a ``--stream``'s env resets)."""
    track = rule.start(1, "cpu")
    said = [rule.say_shares(track, torch.as_tensor(d)[None], torch.as_tensor(s)[None])[0]
            for d, s in zip(log.decoded, log.shares)]
    return torch.stack(said).numpy(), int(track.hushed.sum())


def sentence_gate_sweep(cfg: NarrateConfig, agent: Any, logs: list[EpisodeLog]) -> list[dict]:
    """Per share q of ``cfg.sentence_share_sweep``: the live narration as said at q, scored
    against the annotations (``f1``, ``f1_ci``, ``precision``, ``recall``, ``lag_abs_p50``,
    ``lag_abs_p90``; None without annotations) and ``hushed_sentences``."""
    from agents.model.slot_rule import narration_rule
    from agents.narrate.scoring import score_arm

    if any(len(lg.shares) != len(lg.frames) for lg in logs):
        raise NarrationError("the sweep needs every step's decoded slot and word shares; narrate "
                             "with shares=True (agents.narrate --sentence-share-sweep does).")
    annotated = any(lg.annotated for lg in logs)
    rows = []
    for q in cfg.sentence_share_sweep:
        rule = narration_rule(agent, cut=cfg.cut, early_exit=cfg.early_exit,
                              word_share=cfg.word_share, sentence_share=q)
        if rule is None:
            raise NarrationError("this checkpoint has no slot format (SlotRule): the sentence "
                                 "gate cannot apply; drop --sentence-share-sweep.")
        said = [said_at(rule, lg) for lg in logs]
        row: dict[str, Any] = {"sentence_share": q, "hushed_sentences": sum(n for _, n in said)}
        if annotated:
            arm = score_arm(cfg, [ids for ids, _ in said], logs, agent.tokenizer, True)
            ev, lag = arm["events"], arm["lag"]
            row.update(f1=ev["f1"], f1_ci=ev["f1_ci"], precision=ev["precision"],
                       recall=ev["recall"], lag_abs_p50=lag["abs_p50"], lag_abs_p90=lag["abs_p90"])
        rows.append(row)
    return rows


def print_sweep(rows: list[dict], console: Any) -> None:
    """The sweep as a rich table."""
    from rich.table import Table

    from agents.narrate.summary import _ci, _fmt

    table = Table(title="Live narration said at each --sentence-share (one decoding)")
    for col in ("share", "F1", "95% CI", "prec.", "recall", "|lag| p50", "|lag| p90", "hushed"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(f"{r['sentence_share']:g}", _fmt(r.get("f1")), _ci(r.get("f1_ci")),
                      _fmt(r.get("precision")), _fmt(r.get("recall")),
                      _fmt(r.get("lag_abs_p50"), ".1f"), _fmt(r.get("lag_abs_p90"), ".1f"),
                      str(r["hushed_sentences"]))
    console.print(table)


def write_sweep(rows: list[dict], out: Path) -> list[Path]:
    """``sentence_gate_sweep.csv`` and, with annotations, ``sentence_gate_sweep.png`` (F1 with
    its interval and |lag| p90 against the share) in ``out``; returns the paths written."""
    with open(out / CSV, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for r in rows:
            lo, hi = r.get("f1_ci") or (None, None)
            w.writerow([_cell(v) for v in (r["sentence_share"], r.get("f1"), lo, hi,
                                           r.get("precision"), r.get("recall"),
                                           r.get("lag_abs_p50"), r.get("lag_abs_p90"),
                                           r["hushed_sentences"])])
    if not any(r.get("f1") is not None for r in rows):
        return [out / CSV]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    q = [r["sentence_share"] for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3.2))
    f1 = [_num(r.get("f1")) for r in rows]
    ci = np.array([[_num(v) for v in (r.get("f1_ci") or (None, None))] for r in rows])
    a.errorbar(q, f1, yerr=[np.subtract(f1, ci[:, 0]), np.subtract(ci[:, 1], f1)], marker="o",
               capsize=3)
    a.set(title="event F1 (95% CI over episodes)", xlabel="--sentence-share")
    b.plot(q, [_num(r.get("lag_abs_p90")) for r in rows], marker="o")
    b.set(title="|lag| p90 (frames)", xlabel="--sentence-share")
    fig.tight_layout()
    fig.savefig(out / PLOT, dpi=100)
    plt.close(fig)
    return [out / CSV, out / PLOT]


def _num(x: Any) -> float:
    return float("nan") if x is None else float(x)


def _cell(x: Any) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return ""
    return f"{x:.6g}" if isinstance(x, float) else str(x)
