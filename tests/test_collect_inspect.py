"""`byog-inspect` (`collect.inspect_dataset`): stats, contact sheet, frequency plot, clear errors."""
from __future__ import annotations

import sys
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import tomllib

from collect.dataset import DatasetWriter
from collect.inspect_dataset import InspectConfig, cli, main


def _write(path):
    w = DatasetWriter(path, {"env": "toy", "policy": "random"})
    rng = np.random.default_rng(1)
    for i in range(3):
        n = 6 + i
        ann = [["collected 1 wood"] if t == 2 else (["cow in view", "died"] if t == n - 1 else []) for t in range(n)]
        w.write_episode(i, rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8), rng.integers(0, 3, n - 1),
                        annotations=ann, rewards=np.eye(n)[-1], success=i != 1)
    w.finalize()


def test_inspect_prints_stats_and_writes_pngs(tmp_path, capsys):
    _write(tmp_path / "ds")
    stats = main(InspectConfig(path=tmp_path / "ds", out=tmp_path / "png", frames=5, deep=True))
    assert stats["episodes"] == 3 and stats["frames"] == 21 and stats["annotations"] == 9
    assert stats["annotated_frame_fraction"] == 6 / 21
    assert stats["top_sentences"][0] == ("collected 1 wood", 3)
    assert stats["success_rate"] == 2 / 3 and stats["return_mean"] == 1.0
    assert sum(stats["events_by_kind"].values()) == 9
    out = capsys.readouterr().out
    assert "episodes 3, frames 21 of [16, 16, 3]" in out and "collected 1 wood" in out
    for name in ("contact_sheet.png", "annotation_frequency.png"):
        img = mpimg.imread(tmp_path / "png" / name)
        assert img.shape[0] > 200 and img.shape[1] > 300 and img.std() > 0.05


def test_inspect_cli_reports_broken_dataset(tmp_path, capsys):
    _write(tmp_path / "ds")
    (tmp_path / "ds" / "data" / "chunk-000" / "episode_000002.parquet").unlink()
    assert cli([str(tmp_path / "ds")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Episode file") and "episode_000002.parquet" in err and "missing" in err


def test_examples_by_kind_keeps_the_most_frequent_sentences_of_each_kind():
    from collect.stats import examples_by_kind

    top = [("facing tree", 9), ("collected 1 wood", 7), ("facing stone", 5), ("facing water", 4),
           ("facing sand", 3), ("not a template", 2), ("collected 2 stone", 1)]
    assert examples_by_kind(top, n=3) == {
        "face": ["facing tree", "facing stone", "facing water"],
        "collect": ["collected 1 wood", "collected 2 stone"],
        "unparsed": ["not a template"],
    }


def test_usage_errors_exit_2_with_one_line(tmp_path, capsys):
    _write(tmp_path / "ds")
    assert cli([str(tmp_path / "ds"), "--frames", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --frames and --top must be >= 1") and err.count("\n") == 1


def test_old_module_name_is_retired_and_the_console_script_exists():
    """`collect/inspect.py` shadowed the standard library's `inspect` when `python
    collect/rollout.py` ran as a script; no module of collect/ may carry a stdlib name."""
    root = Path(__file__).resolve().parent.parent
    assert not (root / "collect" / "inspect.py").exists()
    names = {p.stem for p in (root / "collect").iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}
    assert not names & set(sys.stdlib_module_names)
    scripts = tomllib.loads((root / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["byog-inspect"] == "collect.inspect_dataset:cli"
    assert scripts["byog-collect"] == "collect.rollout:cli"
