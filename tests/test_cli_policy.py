"""The agents CLIs' exit-code policy and entry points: usage 2, runtime 1, interrupt 130, one
``error:`` line; ``python -m agents.training`` runs without editing sys.path;
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
    assert len(err) == 1 and err[0].startswith("interrupted: " if code == 130 else "error: ")


def test_a_bug_keeps_its_traceback():
    with pytest.raises(ZeroDivisionError):
        run_cli(lambda: 1 // 0)


def test_train_module_runs_without_editing_sys_path(plugin_env):
    import ast

    tree = ast.parse((ROOT / "agents" / "training" / "command.py").read_text())
    touched = [n for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr == "path"
               and isinstance(n.value, ast.Name) and n.value.id == "sys"]
    assert not touched  # the script works because the package is installed, not a path edit
    out = subprocess.run([sys.executable, "-m", "agents.training", "--help"], cwd=ROOT, check=False,
                         capture_output=True, text=True, timeout=120,
                         env={**plugin_env, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert "--data" in out.stdout and "--preset" in out.stdout


def test_console_scripts_point_at_the_clis():
    import importlib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    for name, target in (("byog-train", "agents.training.command:cli"), ("byog-narrate", "agents.narrate.command:cli")):
        assert scripts[name] == target
        module, _, attr = target.partition(":")
        assert callable(getattr(importlib.import_module(module), attr))


# ------------------------------------------------------------- one policy, every entry point
# Every console script and every ``python -m`` entry point, by the callable that runs it.
ENTRY_POINTS = {
    "byog-collect": "collect.rollout:cli", "byog-train": "agents.training.command:cli",
    "byog-narrate": "agents.narrate.command:cli", "byog-inspect": "collect.inspect_dataset:cli",
    "byog-import": "collect.importers.__main__:cli", "byog-export": "collect.export:cli",
    "byog-policies": "collect.policies.__main__:main", "byog-env": "byog_env.__main__:main",
    "byog-obs": "agents.obs.__main__:main", "byog-view": "agents.view:cli",
    "byog-study": "experiments.run_all:cli", "byog-scarcity": "experiments.scarcity:cli",
    "byog-imagine": "agents.imagine.command:cli",
    "python -m agents": "agents.__main__:main", "python -m agents.obs.embed": "agents.obs.embed:cli",
    "python -m agents.training": "agents.training.__main__:cli",
    "python -m agents.narrate": "agents.narrate.__main__:cli",
    "python -m agents.imagine": "agents.imagine.__main__:cli",
    "python -m experiments.action_transfer": "experiments.action_transfer:cli",
    "python -m experiments.rl_finetune": "experiments.rl_finetune:cli",
    "python -m experiments.arms": "experiments.arms:main",
}


def _entry(target: str):
    import importlib

    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def test_the_table_names_every_console_script_and_module_entry_point():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert {k: v for k, v in ENTRY_POINTS.items() if k in scripts} == scripts
    modules = set()
    for pkg in ("agents", "byog_env", "collect", "experiments"):
        for path in (ROOT / pkg).rglob("*.py"):
            if 'if __name__ == "__main__"' in path.read_text():
                modules.add(".".join(path.relative_to(ROOT).with_suffix("").parts))
    modules.discard("agents.train")  # the deprecated old path (tests/test_moved_paths.py)
    assert modules == {t.partition(":")[0] for t in ENTRY_POINTS.values()}


class _Diverged(ValueError):  # a package error that is also a failure while running
    pass


@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
@pytest.mark.parametrize("exc, code", [
    (ValueError("bad --thing; pass a good one"), 2),
    (OSError("No space left on device"), 1),
    (KeyboardInterrupt(), 130),
    ("runfailure", 1),
    ("gym-unregistered", 2),
])
def test_every_entry_point_follows_the_one_policy(name, exc, code, monkeypatch, capsys):
    """Whatever the entry point, the same error exits with the same status and one line: the
    argument parser (tyro or argparse, the first thing every body runs) raises it here."""
    import argparse

    import gymnasium as gym
    import tyro

    from byog_core.errors import RunFailure

    if exc == "runfailure":
        exc = type("Diverged", (_Diverged, RunFailure), {})("the loss became nan; lower --lr")
    elif exc == "gym-unregistered":
        exc = gym.error.UnregisteredEnv("No registered env with id: Nope-v0")

    def raise_it(*_a, **_k):
        raise exc

    monkeypatch.setattr(tyro, "cli", raise_it)
    monkeypatch.setattr(tyro.extras, "subcommand_cli_from_dict", raise_it)
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", raise_it)
    assert _entry(ENTRY_POINTS[name])([]) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("interrupted: " if code == 130 else "error: "), err


def test_a_bug_keeps_its_traceback_unless_asked_and_traceback_on_request(monkeypatch):
    from byog_core.cli import run_cli as core_run_cli

    with pytest.raises(ZeroDivisionError):
        core_run_cli(lambda: 1 // 0)
    monkeypatch.setenv("BYOG_TRACEBACK", "1")
    with pytest.raises(ValueError):
        core_run_cli(_raise(ValueError("bad")))


def test_a_plugin_module_that_cannot_be_imported_is_usage_and_a_missing_extra_runtime():
    from byog_core.cli import exit_code
    from byog_env.errors import PluginImportError

    assert exit_code(PluginImportError("Cannot import module 'x'")) == 2  # named on the command line
    assert exit_code(ModuleNotFoundError("No module named 'ray'")) == 1  # install the extra
    assert exit_code(gymnasium_dependency_missing()) == 1


def gymnasium_dependency_missing():
    import gymnasium as gym

    return gym.error.DependencyNotInstalled("minerl is not installed, run `pip install byog[minerl]`")
