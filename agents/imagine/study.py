"""The analyses of an imagination run beyond one model against its baselines (issue 24).

* :func:`tokenizer_report`: the frame tokens' reconstruction of held-out frames against copying
  the frame before, day and night apart where the env family has a day cycle
  (``EnvFamily.daylight``);
* :func:`day_night`: the same split of the evaluation clips' imagined / copy-last / ceiling PSNR;
* :func:`ablation`: world models of several seeds per condition, paired on the same clips:
  differences state+action - action (language), action - none (action) with intervals
  (:func:`agents.imagine.stats.paired_interval`);
* :func:`steering_study`: the prompted-imagination score (:mod:`agents.imagine.steering`) of each
  seed's state+action model, paired per clip and prompt.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from agents.imagine.metrics import psnr
from agents.imagine.stats import paired_interval, split_mean

Daylight = Callable[[np.ndarray], np.ndarray]
NIGHT_BELOW = 0.5  # crafter adds night noise below daylight 0.5 (LocalView._light)
ABLATION_PAIRS = (("language", "state+action", "action"), ("action", "action", "none"),
                  ("state+action vs none", "state+action", "none"))


def model_key(condition: str, seed_index: int) -> str:
    """Key of a fitted model: the condition for the first seed, ``cond@seedN`` after it."""
    return condition if seed_index == 0 else f"{condition}@seed{seed_index}"


def phases(daylight: np.ndarray | None, n: int) -> dict[str, np.ndarray]:
    """Masks ``all`` / ``day`` / ``night`` over ``n`` frames (only ``all`` without daylight)."""
    groups = {"all": np.ones(n, bool)}
    if daylight is not None:
        d = np.asarray(daylight)
        groups.update(day=d >= NIGHT_BELOW, night=d < NIGHT_BELOW)
    return groups


@torch.no_grad()
def tokenizer_report(tokens: Any, episodes: Sequence[tuple[np.ndarray, np.ndarray]],
                     daylight: Daylight | None) -> dict[str, Any]:
    """Reconstruction PSNR of every held-out frame t >= 1 against copying frame t-1.

    Returns:
        ``{phase: {"recon": {"mean", "n"}, "copy_last": {...}, "gain_db": ..}}``.
    """
    rec, cl, steps = [], [], []
    for frames, _ in episodes:
        x = torch.as_tensor(np.asarray(frames))
        r = tokens.decode(tokens.encode_all(x))
        rec.append(psnr(r[1:], x[1:]).numpy())
        cl.append(psnr(x[:-1], x[1:]).numpy())
        steps.append(np.arange(1, len(x)))
    rec_a, cl_a, st = np.concatenate(rec), np.concatenate(cl), np.concatenate(steps)
    groups = phases(None if daylight is None else daylight(st), len(st))
    r, c = split_mean(rec_a, groups), split_mean(cl_a, groups)
    return {g: {"recon": r[g], "copy_last": c[g], "gain_db": r[g]["mean"] - c[g]["mean"]}
            for g in groups}


def day_night(scores: dict[str, dict[str, torch.Tensor]], start: torch.Tensor | None,
              context: int, daylight: Daylight | None, horizons: Sequence[int],
              ) -> dict[str, Any]:
    """Mean PSNR of each rollout kind (imagined, copy_last, ceiling, ...) per horizon and phase
    over the clips (``scores[kind]["psnr"]`` float [B, K]; clip b's future frame h is drawn at
    episode step ``start[b] + context + h - 1``)."""
    out: dict[str, Any] = {}
    for h in horizons:
        dl = None if daylight is None or start is None else \
            daylight(start.numpy() + context + h - 1)
        groups = phases(dl, len(next(iter(scores.values()))["psnr"]))
        out[str(h)] = {g: {kind: split_mean(sc["psnr"][:, h - 1].numpy(), {g: m})[g]
                           for kind, sc in scores.items()} for g, m in groups.items()}
    return out


def ablation(scores: dict[str, dict[str, dict[str, torch.Tensor]]], seeds: int,
             horizons: Sequence[int], metric: str = "psnr") -> dict[str, Any]:
    """Per-arm means and paired differences with intervals over seeds and clips.

    Args:
        scores: model key (``cond`` or ``cond@seedN``, see :func:`model_key`) ->
            :func:`agents.imagine.command.evaluate`'s ``rollouts["scores"]``.
        seeds: Seeds per condition.
        horizons: Horizons reported.

    Returns:
        ``{"arms": {cond: {h: interval of imagined - copy_last}}, "differences": {name: {h:
        interval}}}`` over the conditions present.
    """
    conds = [c for c in ("state+action", "action", "none") if c in scores]

    def per_seed(cond: str, kind: str, h: int) -> np.ndarray:  # [S, B]
        return np.stack([scores[model_key(cond, s)][kind][metric][:, h - 1].numpy()
                         for s in range(seeds)])

    arms = {c: {str(h): paired_interval(per_seed(c, "imagined", h) - per_seed(c, "copy_last", h))
                for h in horizons} for c in conds}
    diffs = {name: {str(h): paired_interval(per_seed(a, "imagined", h) - per_seed(b, "imagined", h))
                    for h in horizons}
             for name, a, b in ABLATION_PAIRS if a in conds and b in conds}
    return {"metric": metric, "seeds": seeds, "arms": arms, "differences": diffs}


def steering_study(agent: Any, models: dict[str, Any], seeds: int, clips: Any,
                   prompts: Sequence[str], *, steps: int, tolerance: int) -> dict[str, Any]:
    """:func:`agents.imagine.steering.steering` for each seed's state+action model; the score with its
    interval over seeds and (clip, prompt) pairs, and per prompt."""
    from agents.imagine.steering import steering

    runs = [steering(agent, models[model_key("state+action", s)], clips.context,
                     clips.actions, prompts, steps=steps, tolerance=tolerance)
            for s in range(seeds)]
    pro = np.stack([r["prompted"].reshape(-1) for r in runs]).astype(float)  # [S, P*B]
    free = np.stack([r["unprompted"].reshape(-1) for r in runs]).astype(float)
    P = len(prompts)
    per_prompt = {p: {"prompted": float(np.mean([r["prompted"][i].mean() for r in runs])),
                      "unprompted": float(np.mean([r["unprompted"][i].mean() for r in runs])),
                      "codes_changed": float(np.mean([r["codes_changed"][i] for r in runs]))}
                  for i, p in enumerate(prompts)}
    return {"prompts": list(prompts), "tolerance": tolerance, "pairs": int(pro.shape[1]),
            "prompted_share": float(pro.mean()), "unprompted_share": float(free.mean()),
            "score": paired_interval(pro - free), "per_prompt": per_prompt, "prompts_n": P,
            "example": {p: runs[0]["narration"][p][:2] for p in prompts}}


def _iv(r: dict[str, float], digits: int = 2) -> str:
    return f"{r['mean']:+.{digits}f} [{r['lo']:+.{digits}f}, {r['hi']:+.{digits}f}]"


def report_sections(out: dict[str, Any]) -> list[str]:
    """Markdown sections of the analyses present in a run's output (see the module docstring)."""
    parts: list[str] = []
    if "tokenizer" in out:
        rows = ["| frames | n | reconstruction PSNR | copy-last PSNR | gain dB |",
                "|---|---:|---:|---:|---:|"]
        rows += [f"| {g} | {r['recon']['n']} | {r['recon']['mean']:.2f} | "
                 f"{r['copy_last']['mean']:.2f} | {r['gain_db']:+.2f} |"
                 for g, r in out["tokenizer"].items()]
        parts += ["## Tokenizer on every held-out frame (frame t vs copying frame t-1)",
                  "\n".join(rows)]
    if "day_night" in out:
        rows = ["| horizon | frames | n | imagined | copy last | ceiling (recon) |",
                "|---:|---|---:|---:|---:|---:|"]
        for h, groups in out["day_night"].items():
            for g, kinds in groups.items():
                rows.append(f"| {h} | {g} | {kinds['imagined']['n']} | " + " | ".join(
                    f"{kinds[k]['mean']:.2f}" if k in kinds else "–"
                    for k in ("imagined", "copy_last", "ceiling")) + " |")
        parts += ["## Clips by day and by night (PSNR dB)", "\n".join(rows)]
    if "ablation" in out:
        ab = out["ablation"]
        hs = list(next(iter(ab["arms"].values())))
        rows = ["| arm: imagined - copy last (dB) | " + " | ".join(f"h={h}" for h in hs) + " |",
                "|---|" + "---:|" * len(hs)]
        rows += [f"| {c} | " + " | ".join(_iv(v[h]) for h in hs) + " |"
                 for c, v in ab["arms"].items()]
        rows += [f"| **{n}** difference | " + " | ".join(_iv(v[h]) for h in hs) + " |"
                 for n, v in ab["differences"].items()]
        parts += [f"## Ablation over {ab['seeds']} world-model seeds, paired on the same clips "
                  "(mean [95% interval], bootstrap over seeds and clips)", "\n".join(rows)]
    if "steering" in out:
        st = out["steering"]
        rows = ["| prompt | said, prompted | said, unprompted | imagined codes changed |",
                "|---|---:|---:|---:|"]
        rows += [f"| {p} | {v['prompted']:.3f} | {v['unprompted']:.3f} | "
                 f"{v['codes_changed']:.4f} |" for p, v in st["per_prompt"].items()]
        parts += [f"## Words that steer pictures ({st['pairs']} clip x prompt pairs per seed, "
                  f"within {st['tolerance']} frames)",
                  f"score = {_iv(st['score'], 3)} (prompted {st['prompted_share']:.3f} - "
                  f"unprompted {st['unprompted_share']:.3f})", "\n".join(rows)]
    return parts
