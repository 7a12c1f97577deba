"""Negative control for the sentence gate: from the gate-off run, leave unsaid the same share of
sentences as the gated run, chosen at random (independent of the narrator's confidence), and
score it the same way. If the gate's precision and |lag| p90 came from saying less rather than
from leaving out the *unsure* sentences, this control would match it. Usage: ``python
random_control.py OFF_DIR GATED_DIR [--draws 20]``."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from agents.model.monitors import combine_prf, event_lags, event_prf  # noqa: E402
from agents.model.text import unslot  # noqa: E402
from agents.narrate.narration import load_narrating_agent  # noqa: E402


def episodes(run: Path, tokenizer) -> list[tuple[list[list[str]], list[list[str]]]]:
    """(said sentences per frame, annotations per frame) of each episode of a run, read back
    from its slots as agents.narrate scores them (a sentence belongs to its first frame)."""
    import torch

    eps: dict[int, list[dict]] = {}
    for line in (run / "narration.jsonl").open():
        r = json.loads(line)
        eps.setdefault(r["episode"], []).append(r)
    return [(unslot(torch.tensor([r["narration_tokens"] for r in rows]), tokenizer),
             [r["annotations"] for r in rows]) for _, rows in sorted(eps.items())]


def score(eps: list[tuple[list[list[str]], list[list[str]]]]) -> dict[str, float]:
    """Pooled event P/R/F1 (±2 frames) and |lag| p90, as agents.narrate reports them."""
    prf = combine_prf([event_prf(said, true, tolerance=2) for said, true in eps])
    lags = [x for said, true in eps for x in event_lags(said, true)[0]]
    return {"f1": prf["f1"], "precision": prf["precision"], "recall": prf["recall"],
            "p90": float(np.percentile(np.abs(lags), 90)), "said": sum(len(s) for e, _ in eps for s in e)}


def main(off: Path, gated: Path, draws: int) -> None:
    config = json.loads((off / "summary.json").read_text())["config"]
    tok = load_narrating_agent(config["checkpoint"]).tokenizer
    base, gate = episodes(off, tok), episodes(gated, tok)
    s_off, s_gate = score(base), score(gate)
    keep = s_gate["said"] / s_off["said"]
    rand = []
    for d in range(draws):
        rng = np.random.default_rng(d)
        thinned = [([[x for x in fr if rng.random() < keep] for fr in said], true) for said, true in base]
        rand.append(score(thinned))
    print("| arm | sentences said | F1 | precision | recall | abs lag p90 |\n|---|---|---|---|---|---|")
    for name, s in (("gate off", s_off), ("sentence gate", s_gate)):
        print(f"| {name} | {s['said']} | {s['f1']:.3f} | {s['precision']:.3f} | {s['recall']:.3f} | {s['p90']:.0f} |")
    lo, hi = (np.percentile([r[k] for r in rand], [2.5, 97.5]) for k in ("f1", "p90"))
    m = {k: float(np.mean([r[k] for r in rand])) for k in rand[0]}
    print(f"| random, same share said ({draws} draws; mean) | {m['said']:.0f} | {m['f1']:.3f} "
          f"[{lo[0]:.3f}, {lo[1]:.3f}] | {m['precision']:.3f} | {m['recall']:.3f} | "
          f"{m['p90']:.1f} [{hi[0]:.0f}, {hi[1]:.0f}] |")


if __name__ == "__main__":
    args = sys.argv[1:]
    n = 20
    if "--draws" in args:
        i = args.index("--draws")
        n = int(args[i + 1])
        del args[i:i + 2]
    main(Path(args[0]), Path(args[1]), n)
