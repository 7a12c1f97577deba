"""The agents CLIs' exit-code policy and entry points: usage 2, runtime 1, interrupt 130, one
``error:`` line; ``python agents/train.py`` runs as a script without editing sys.path;
``byog-train`` / ``byog-narrate`` are declared console scripts."""
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from agents.cli import run_cli
from agents.errors import ModelError, TrainDiverged

ROOT = Path(__file__).resolve().parents[1]


def _raise(exc):
    def body():
        raise exc
    return body


@pytest.mark.parametrize("exc, code", [
    (ModelError("bad value; pass a good one"), 2),  # usage: the user can fix the command
    (TrainDiverged("the loss became nan; lower optim.lr"), 1),  # runtime failure
    (OSError("disk full"), 1),
    (KeyboardInterrupt(), 130),
])
def test_exit_code_policy_and_one_error_line(exc, code, capsys):
    assert run_cli(_raise(exc)) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")


def test_a_bug_keeps_its_traceback():
    with pytest.raises(ZeroDivisionError):
        run_cli(lambda: 1 // 0)


def test_train_script_runs_without_editing_sys_path(plugin_env):
    import ast

    tree = ast.parse((ROOT / "agents" / "train.py").read_text())
    touched = [n for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr == "path"
               and isinstance(n.value, ast.Name) and n.value.id == "sys"]
    assert not touched  # the script works because the package is installed, not a path edit
    out = subprocess.run([sys.executable, "agents/train.py", "--help"], cwd=ROOT, check=False,
                         capture_output=True, text=True, timeout=120,
                         env={**plugin_env, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert "--data" in out.stdout and "--preset" in out.stdout


def test_console_scripts_point_at_the_clis():
    import importlib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    for name, target in (("byog-train", "agents.train:cli"), ("byog-narrate", "agents.narrate:cli")):
        assert scripts[name] == target
        module, _, attr = target.partition(":")
        assert callable(getattr(importlib.import_module(module), attr))
