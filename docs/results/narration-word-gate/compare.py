"""Paired comparison of ``agents.narrate`` runs on the same episodes (the first run is the
baseline): a markdown table of each run's pooled figures from its summary.json, then per-episode
differences to the baseline (event F1, precision, recall) with paired-t 95% intervals over
episodes; ``--plot=PNG`` also draws them. Usage: ``python compare.py BASE_DIR OTHER_DIR...
[--plot=PNG]``."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from agents.model.monitors import event_prf  # noqa: E402
from agents.model.text import unslot  # noqa: E402
from agents.narrate.narration import load_narrating_agent  # noqa: E402
from experiments.stats import paired_t  # noqa: E402


def per_episode(run: Path, tokenizer) -> list[dict[str, float]]:
    """Event P/R/F1 of each episode, scored as agents.narrate scores it (slots read back)."""
    eps: dict[int, list[dict]] = {}
    for line in (run / "narration.jsonl").open():
        r = json.loads(line)
        eps.setdefault(r["episode"], []).append(r)
    out = []
    for e in sorted(eps):
        ids = torch.as_tensor(np.array([r["narration_tokens"] for r in eps[e]]))
        out.append(event_prf(unslot(ids, tokenizer), [r["annotations"] for r in eps[e]]))
    return out


def main(runs: list[Path]) -> None:
    summaries = [json.loads((r / "summary.json").read_text()) for r in runs]
    tok = load_narrating_agent(summaries[0]["config"]["checkpoint"]).tokenizer
    print("| run | word_share | sentence_share | live F1 | precision | recall | offline F1 | "
          "abs lag p50 | abs lag p90 | paired | narrated events | gated words | hushed sentences |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r, s in zip(runs, summaries):
        ev, lag = s["events"], s["lag"]
        print(f"| {r.name} | {s['config']['word_share']} | {s['config'].get('sentence_share')} | "
              f"{ev['f1']:.3f} | {ev['precision']:.3f} | "
              f"{ev['recall']:.3f} | {s['offline/events']['f1']:.3f} | {lag['abs_p50']:.0f} | "
              f"{lag['abs_p90']:.0f} | {lag['paired_share']:.0%} | {lag['narrated']} | "
              f"{s['slots'].get('gated_words', 0)} | {s['slots'].get('hushed_sentences', 0)} |")
    base = per_episode(runs[0], tok)
    print(f"\nPaired per-episode differences to {runs[0].name} (mean, paired-t 95% interval, "
          f"n = {len(base)} episodes):\n")
    print("| run | event F1 | precision | recall |\n|---|---|---|---|")
    for r in runs[1:]:
        other = per_episode(r, tok)
        cells = [str(paired_t([o[k] - b[k] for o, b in zip(other, base)]))
                 for k in ("f1", "precision", "recall")]
        print(f"| {r.name} | " + " | ".join(cells) + " |")


def _gate_name(config: dict) -> str:
    """'off', 'word 0.8', 'sentence 0.8' (or both) for a run's config."""
    parts = [f"{name} {config[key]}" for key, name in (("word_share", "word"),
                                                       ("sentence_share", "sentence"))
             if config.get(key) is not None]
    return " + ".join(parts) or "off"


def plot(runs: list[Path], out: Path) -> None:
    """Live F1, precision, recall and |lag| p90 of each run, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = [json.loads((r / "summary.json").read_text()) for r in runs]
    names = [_gate_name(x["config"]) for x in s]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    x = np.arange(len(runs))
    for i, key in enumerate(("f1", "precision", "recall")):
        a.bar(x + (i - 1) * 0.25, [v["events"][key] for v in s], 0.25, label=key)
    a.set_xticks(x, names)
    a.set_xlabel("gate")
    a.set_ylim(0, 1)
    a.legend(fontsize=8)
    a.set_title("live event agreement")
    b.bar(x, [v["lag"]["abs_p90"] for v in s], 0.5, color="gray")
    b.axhline(3, ls="--", color="k", lw=1, label="target 3")
    b.set_xticks(x, names)
    b.set_xlabel("gate")
    b.set_title("|lag| p90 (frames)")
    b.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)


if __name__ == "__main__":
    args = [Path(a) for a in sys.argv[1:] if not a.startswith("--plot=")]
    main(args)
    for a in sys.argv[1:]:
        if a.startswith("--plot="):
            plot(args, Path(a.split("=", 1)[1]))
