"""One cell of the narration-under-scarcity study: a training run (optionally on a pseudo-labelled
or an annotation-shuffled copy of the data) and what it reports (final validation, curves over
steps and labelled windows seen, encoder gradient norms, per-event-kind P/R/F1).

The cells' entry point stays ``experiments.scarcity:run_cell`` (cell keys hash it).
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from experiments.errors import ExperimentError


def _train_config(base: dict[str, Any], data: str, out: Path) -> Any:
    from agents.training.config import config_from_dict

    return config_from_dict({**base, "data": data, "out": str(out)})


def run_cell(config: dict[str, Any], out: Path) -> dict[str, Any]:
    """One training run (a study cell): ``config["train"]`` is the trainer config dict. With
    ``config["teacher"]`` (a captioner's run directory, trained on the labelled draw of
    ``config["teacher_train"]``) the unlabelled training episodes are pseudo-labelled by it
    first; with ``config["shuffle_seed"]`` the training episodes' annotations are shuffled
    across episodes first (the negative control). Returns the final validation metrics, the
    learning curves (over steps and labelled windows seen), the step time and per-event-kind
    P/R/F1."""
    from agents.training.loop import train

    data = config["data"]
    t0 = time.perf_counter()
    if config.get("teacher"):
        data = str(pseudo_labelled_copy(config["teacher"], data, config["teacher_train"],
                                        out / "pseudo_data"))
    if config.get("shuffle_seed") is not None:
        data = str(shuffled_copy(data, config["train"], out / "shuffled_data",
                                 seed=config["shuffle_seed"]))
    label_s = time.perf_counter() - t0
    run = out / "run"
    if run.exists():  # a cell killed mid-run starts afresh (its cell.json was never written)
        shutil.rmtree(run)
    summary = train(_train_config(config["train"], data, run))
    rows = _metrics(run)
    curve = [r for r in rows if "val/token_accuracy" in r]
    seen = labelled_windows_seen(rows)
    steps = summary["steps"]
    return {"val": summary["val"], "steps": steps, "wall_s": summary["wall_clock_s"],
            "step_s": summary["wall_clock_s"] / max(steps, 1), "pseudo_label_s": label_s,
            "curves": {k: [(r["step"], r.get(k)) for r in curve] for k in CURVE_KEYS},
            "labelled_seen": [seen.get(r["step"]) for r in curve],
            "grad": {k: [(r["step"], r.get(k)) for r in rows if k in r] for k in GRAD_KEYS},
            "per_kind": per_kind_prf(run, config["data"], config["train"]),
            "episodes": summary["episodes"], "run": str(run)}


CURVE_KEYS = ("val/token_accuracy", "val/event_f1", "val/nil_rate", "val/distinct_1",
              "val/entropy", "val/prefix_gain")
GRAD_KEYS = ("grad/encoder_ground", "grad/encoder_byog", "grad/byog_over_ground")


def labelled_windows_seen(rows: list[dict[str, Any]]) -> dict[int, float]:
    """Step -> true-labelled windows the run had drawn by then (the logged per-step count,
    held between log steps)."""
    out, total, per, last = {}, 0.0, 0.0, 0
    for r in sorted(rows, key=lambda r: r["step"]):
        if "data/labelled_windows_per_step" in r:
            per = float(r["data/labelled_windows_per_step"])
        total += per * (r["step"] - last)
        last = r["step"]
        out[r["step"]] = total
    return out


def _metrics(run: Path) -> list[dict[str, Any]]:
    f = run / "metrics.jsonl"
    return [json.loads(x) for x in f.read_text().splitlines()] if f.is_file() else []


def _validation(run: Path, data: str, train_cfg: dict[str, Any]) -> tuple[Any, list, list]:
    """The trained agent, its validation batches and their greedy narration."""
    from agents.training.data import build_data, validation_batches
    from agents.training.evaluate import validate
    from agents.training.loading import load_agent

    cfg = _train_config(train_cfg, data, run)
    agent = load_agent(run)
    bundle = build_data(data, cfg.loader, label_fraction=cfg.label_fraction,
                        label_seed=cfg.label_seed, tokenizer=agent.tokenizer)
    vals = validation_batches(bundle.val, cfg.logging.val_windows, cfg.logging.val_batches)
    _, preds = validate(agent, vals, step=0, tolerance=cfg.logging.tolerance)
    return agent, vals, preds


def per_kind_prf(run: Path, data: str, train_cfg: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Event P/R/F1 of the final greedy narration on the validation windows, per event kind
    (``byog_env.parse_event(s).kind``), pooled over windows."""
    from agents.model import monitors as M
    from agents.model.text import unslot
    from byog_env import parse_event

    agent, vals, preds = _validation(run, data, train_cfg)
    tol = _train_config(train_cfg, data, run).logging.tolerance

    def kind(s: str) -> str | None:
        try:
            return parse_event(s).kind
        except ValueError:
            return None

    windows = []  # (pred per frame, true per frame) over every validation window
    for batch, ids in zip(vals, preds):
        narrated = unslot(ids, agent.tokenizer)
        for b in range(ids.shape[0]):
            n = int(batch["valid"][b].sum())
            windows.append((narrated[b][:n], [list(f) for f in batch["annotations"][b][:n]]))
    kinds = sorted({kind(s) for p, t in windows for fr in p + t for s in fr} - {None})
    out = {}
    for kd in kinds:
        pick = [([[s for s in fr if kind(s) == kd] for fr in p],
                 [[s for s in fr if kind(s) == kd] for fr in t]) for p, t in windows]
        prf = M.combine_prf(M.event_prf(p, t, tolerance=tol) for p, t in pick)
        out[kd] = {m: float(prf[m]) for m in ("precision", "recall", "f1", "tp", "fp", "fn")}
    return out


def _bundle(data: str, train_cfg: dict[str, Any], dest: Path, tokenizer: Any = None) -> Any:
    from agents.training.data import build_data

    cfg = _train_config(train_cfg, data, dest)
    return cfg, build_data(data, cfg.loader, label_fraction=cfg.label_fraction,
                           label_seed=cfg.label_seed, tokenizer=tokenizer)


def pseudo_labelled_copy(teacher_run: str, data: str, teacher_train: dict[str, Any],
                         dest: Path) -> Path:
    """A copy of dataset ``data`` whose unlabelled training episodes (those outside the
    teacher's labelled draw; pilot and validation episodes excluded) carry the teacher's greedy
    narration as annotations; labelled, pilot and validation episodes keep theirs. Only the
    ``annotations`` column of those episode files is rewritten; frames are copied as stored."""
    import torch

    from agents.model.text import unslot
    from agents.training.loading import load_agent
    from collect.dataset import WindowDataset, collate_windows
    from collect.writer import set_annotations

    src = Path(data)
    teacher = load_agent(teacher_run)
    cfg, bundle = _bundle(str(src), teacher_train, dest, teacher.tokenizer)
    unlabelled = sorted(set(bundle.train_ids) - set(bundle.labelled_ids))
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(src, dest)
    W = cfg.loader.window
    pseudo: dict[int, list[list[str]]] = {}
    for pos in unlabelled:
        windows = WindowDataset(str(src), window=W, stride=W, episodes=[pos])
        frames: list[list[str]] = []
        for i in range(0, len(windows), cfg.loader.batch_size):
            batch = collate_windows([windows[j] for j in range(i, min(i + cfg.loader.batch_size,
                                                                      len(windows)))])
            with torch.no_grad():
                ids = teacher.narrate(batch["frames"], batch["valid"],
                                      prev_frame=batch.get("prev_frame"))
            for b, said in enumerate(unslot(ids, teacher.tokenizer)):
                frames.extend(said[: int(batch["valid"][b].sum())])
        pseudo[int(bundle.dataset.records[pos]["episode_index"])] = frames
    set_annotations(dest, pseudo)  # atomic per file; episode records and meta/ follow
    return dest


def shuffled_copy(data: str, train_cfg: dict[str, Any], dest: Path, *, seed: int) -> Path:
    """A copy of ``data`` whose training episodes' annotation streams are permuted across those
    episodes (a derangement: none keeps its own), each cut or padded with silence to its
    episode's length; validation and pilot episodes keep theirs. A captioner trained on it
    learns the words' frequencies but nothing about the frames: the negative control."""
    import numpy as np

    from agents.training.data import episode_annotations
    from collect.writer import set_annotations

    _, bundle = _bundle(data, train_cfg, dest)
    ids = list(bundle.train_ids)
    if len(ids) < 2:
        raise ExperimentError("Shuffling annotations across episodes needs >= 2 training episodes.")
    shift = int(np.random.default_rng(seed).integers(1, len(ids)))
    order = np.random.default_rng(seed + 1).permutation(len(ids))
    donor = {int(ids[order[i]]): int(ids[order[(i + shift) % len(ids)]]) for i in range(len(ids))}
    ds = bundle.dataset
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(data, dest)
    new: dict[int, list[list[str]]] = {}
    for pos, src in donor.items():
        n = int(ds.lengths[pos])
        ann = episode_annotations(ds, src)[:n]
        new[int(ds.records[pos]["episode_index"])] = ann + [[] for _ in range(n - len(ann))]
    set_annotations(dest, new)
    return dest
