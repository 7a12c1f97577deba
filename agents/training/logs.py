"""Metric logging (``metrics.jsonl`` + TensorBoard) and the end-of-run PNG plots."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.jsonl"

# which keys go in which plot (prefix match), one PNG each
PLOTS: dict[str, tuple[str, ...]] = {
    "losses": ("loss/",),
    "validation": ("val/token_accuracy", "val/majority_token_accuracy", "val/event_f1",
                   "val/event_precision", "val/event_recall"),
    "predictor": ("monitor/predictor_nll", "monitor/unigram_nll", "monitor/prefix_gain",
                  "val/predictor_nll", "val/unigram_nll", "val/prefix_gain"),
    "collapse": ("monitor/distinct", "monitor/nil_rate", "val/distinct", "val/nil_rate"),
    "throughput": ("perf/frames_per_s",),
}


class MetricLog:
    """Append-only metric history of a run: ``RUNDIR/metrics.jsonl`` and TensorBoard scalars.

    On resume the file is truncated to the checkpoint's step, so the history (and the plots)
    equal those of an uninterrupted run.

    Args:
        run_dir: The run directory.
        tensorboard: Also write TensorBoard event files under ``RUNDIR/tb``.
        resume_step: Keep only records with ``step <= resume_step`` (None: start afresh).
        enabled: False on non-zero DDP ranks (nothing is written).
    """

    def __init__(self, run_dir: str | Path, *, tensorboard: bool = True,
                 resume_step: int | None = None, enabled: bool = True) -> None:
        self.path = Path(run_dir) / METRICS_FILE
        self.enabled = enabled
        self.history: list[dict[str, Any]] = []
        if not enabled:
            self.tb = None
            return
        if resume_step is not None and self.path.is_file():
            for line in self.path.read_text().splitlines():
                rec = json.loads(line)
                if rec["step"] <= resume_step:
                    self.history.append(rec)
        self.path.write_text("".join(json.dumps(r) + "\n" for r in self.history))
        self.tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(Path(run_dir) / "tb"), purge_step=resume_step)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        """Record finite scalars at ``step``."""
        if not self.enabled:
            return
        clean = {k: float(v) for k, v in metrics.items()
                 if isinstance(v, (int, float)) and math.isfinite(float(v))}
        rec = {"step": int(step), **clean}
        self.history.append(rec)
        with self.path.open("a") as f:
            f.write(json.dumps(rec) + "\n")
        if self.tb is not None:
            for k, v in clean.items():
                self.tb.add_scalar(k, v, step)

    def series(self, key: str) -> tuple[list[int], list[float]]:
        """(steps, values) of one key."""
        pts = [(r["step"], r[key]) for r in self.history if key in r]
        return [p[0] for p in pts], [p[1] for p in pts]

    def last(self, key: str) -> float | None:
        """The newest value of ``key``."""
        _, values = self.series(key)
        return values[-1] if values else None

    def close(self) -> None:
        """Flush TensorBoard."""
        if self.tb is not None:
            self.tb.close()


def plot_curves(log: MetricLog, out_dir: str | Path) -> list[Path]:
    """One PNG per group of :data:`PLOTS` (losses, monitors, validation, throughput).

    Returns:
        The files written (groups with no data are skipped).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    keys = sorted({k for r in log.history for k in r if k != "step"})
    written = []
    for name, prefixes in PLOTS.items():
        chosen = [k for k in keys if k.startswith(prefixes)]
        if not chosen:
            continue
        fig, ax = plt.subplots(figsize=(8, 4.5))
        for k in chosen:
            steps, values = log.series(k)
            ax.plot(steps, values, label=k, marker="o" if len(steps) < 20 else None, ms=3)
        ax.set_xlabel("step")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
        fig.tight_layout()
        f = out_dir / f"{name}.png"
        fig.savefig(f, dpi=90)
        plt.close(fig)
        written.append(f)
    return written
