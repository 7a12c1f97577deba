"""Old module paths of ``agents`` (before it was split into rooms) keep working and warn.

Every old dotted path imports, is the very module of its new home (one module object:
registries, monkeypatches and ``isinstance`` see one thing) and emits a ``DeprecationWarning``
naming the new path; the names the old ``agents.model`` / ``agents.narrate`` /
``agents.imagine`` modules held resolve from the packages that took their paths; ``python -m``
of every old command line runs (``--help``) and says where it moved; registry strings saved
with old paths (``"agents.objectives:prefix_objective"``) still load; and nothing in the
repository outside this file uses an old path.
"""
from __future__ import annotations

import importlib
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from agents._moved import MOVED

ROOT = Path(__file__).resolve().parents[1]


def _fresh(name: str) -> None:
    """Forget an old alias so importing it runs the finder (and warns) again."""
    sys.modules.pop(name, None)
    parent, _, leaf = name.rpartition(".")
    if parent in sys.modules:
        sys.modules[parent].__dict__.pop(leaf, None)


@pytest.mark.parametrize("old, new", sorted(MOVED.items()))
def test_an_old_module_path_is_its_new_module_and_warns(old, new):
    _fresh(old)
    with pytest.warns(DeprecationWarning, match=rf"{re.escape(old)} moved to {re.escape(new)}"):
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)
    assert module.__name__ == new and module.__spec__.name == new  # the new home is untouched


def test_from_imports_of_old_paths_resolve_to_the_same_objects():
    from agents.model.text import unslot
    from agents.narrate.narrator import Narrator

    for old in ("agents.text", "agents.narrator"):
        _fresh(old)
    with pytest.warns(DeprecationWarning):
        from agents.text import unslot as old_unslot
    with pytest.warns(DeprecationWarning):
        from agents.narrator import Narrator as OldNarrator
    assert old_unslot is unslot and OldNarrator is Narrator


@pytest.mark.parametrize("package, name, home", [
    ("agents.model", "select_rows", "agents.model.batch"),
    ("agents.model", "WEIGHTS", "agents.model.agent"),
    ("agents.narrate", "main", "agents.narrate.command"),
    ("agents.narrate", "cli", "agents.narrate.command"),
    ("agents.narrate", "NarrateConfig", "agents.narrate.config"),
    ("agents.narrate", "summarize", "agents.narrate.scoring"),
    ("agents.imagine", "main", "agents.imagine.command"),
    ("agents.imagine", "cli", "agents.imagine.command"),
    ("agents.imagine", "ImagineConfig", "agents.imagine.command"),
    ("agents.imagine", "evaluate", "agents.imagine.evaluation"),
    ("agents.imagine", "psnr", "agents.imagine.metrics"),
])
def test_names_of_an_old_module_resolve_from_the_package_that_took_its_path(package, name, home):
    pkg = importlib.import_module(package)
    with pytest.warns(DeprecationWarning, match=rf"{package}.{name} moved to {home}.{name}"):
        value = getattr(pkg, name)
    assert value is getattr(importlib.import_module(home), name)


def test_the_rooms_public_names_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        from agents.imagine import Imagination, WorldModel, imagine  # noqa: F401
        from agents.model import BYOGAgent  # noqa: F401
        from agents.narrate import (  # noqa: F401
            NarrationWrapper,
            Narrator,
            VectorNarrationWrapper,
            VectorNarrator,
            narrate_clips,
            narrate_env,
        )
    from agents.model.agent import BYOGAgent as Agent

    assert BYOGAgent is Agent
    with pytest.raises(AttributeError):
        _ = importlib.import_module("agents.narrate").no_such_name


def test_the_old_train_module_warns_and_keeps_its_names():
    from agents.training import command

    _fresh("agents.train")
    with pytest.warns(DeprecationWarning, match="agents.train moved to agents.training.command"):
        old = importlib.import_module("agents.train")
    assert old.main is command.main and old.cli is command.cli


def test_old_registry_strings_still_resolve():
    """A config or checkpoint written before the move names ``agents.objectives:...`` or
    ``agents.world_model:...``: the entry points load the same objects."""
    from agents.imagine.world_model import WorldModel
    from agents.model.objectives import prefix_objective

    for old, obj in (("agents.objectives:prefix_objective", prefix_objective),
                     ("agents.world_model:WorldModel", WorldModel)):
        module, _, attr = old.partition(":")
        _fresh(module)
        with pytest.warns(DeprecationWarning):
            assert getattr(importlib.import_module(module), attr) is obj
    from agents.config import OBJECTIVES

    assert OBJECTIVES.get("prefix") is prefix_objective  # the registry's own string: the new path


OLD_COMMAND_LINES = [
    (["-m", "agents.train"], "agents.training.command"),
    (["agents/train.py"], "agents.training.command"),  # torchrun's old script form
    (["-m", "agents.embed"], "agents.obs.embed"),
    (["-m", "agents.narrate"], None),  # still the command's path: no warning
    (["-m", "agents.imagine"], None),
    (["-m", "agents.training"], None),
]


@pytest.mark.slow
def test_old_command_lines_run_and_say_where_they_moved(plugin_env):
    """Each command line in a fresh interpreter (a command line's warning is attributed to
    ``__main__``, so only there is it shown by default); started together: one interpreter's
    start-up each, not one after another."""
    procs = [subprocess.Popen([sys.executable, *argv, "--help"], cwd=ROOT, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env={**plugin_env, "PYTHONPATH": str(ROOT)})
             for argv, _ in OLD_COMMAND_LINES]
    for (argv, new), proc in zip(OLD_COMMAND_LINES, procs):
        stdout, stderr = proc.communicate(timeout=240)
        assert proc.returncode == 0, (argv, stderr[-2000:])
        assert "usage:" in stdout, argv
        if new:
            assert f"DeprecationWarning: {argv[-1].removesuffix('.py').replace('/', '.')} moved to {new}" \
                in stderr, argv
        else:
            assert "DeprecationWarning" not in stderr, argv


# ------------------------------------------------------------------- nothing uses an old path
OLD = "|".join(sorted({m.removeprefix("agents.") for m in MOVED} | {"train"}, key=len, reverse=True))
OLD_DOTTED = re.compile(rf"\bagents\.({OLD})\b(?![\w])")
OLD_FROM = re.compile(rf"^\s*from agents import .*\b({OLD})\b", re.M)
ALLOWED = {"agents/_moved.py", "agents/train.py", "agents/__init__.py", "tests/test_moved_paths.py",
           "tests/test_cli_policy.py"}


def _code_lines(path: Path) -> list[tuple[int, str]]:
    """The import statements and string literals that hold a dotted path (not prose)."""
    import ast

    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            out += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and "\n" not in node.value and " " not in node.value.strip():
            out.append((node.lineno, node.value))
    return out


def test_nothing_in_the_repository_uses_an_old_path():
    """No import, path string or prose (docstrings, comments, messages) names a moved path; the
    old ``python -m agents.train`` is named only where the text says it is the old form."""
    offenders = []
    for pkg in ("agents", "byog_core", "byog_env", "collect", "experiments", "benchmarks", "tests"):
        for f in sorted((ROOT / pkg).rglob("*.py")):
            rel = str(f.relative_to(ROOT))
            if rel in ALLOWED or rel.startswith("tests/fixtures/"):
                continue
            for line, text in _code_lines(f):
                if OLD_DOTTED.search(text):
                    offenders.append(f"{rel}:{line}: {text}")
            source = f.read_text()
            offenders += [f"{rel}: {m.group(0).strip()}" for m in OLD_FROM.finditer(source)]
            offenders += [f"{rel}:{i}: {line.strip()}" for i, line in enumerate(source.splitlines(), 1)
                          if OLD_DOTTED.search(line) and "old" not in line.lower()]
    for f in ("Makefile", "pyproject.toml", "README.md"):
        text = (ROOT / f).read_text()
        offenders += [f"{f}: {m.group(0)}" for m in OLD_DOTTED.finditer(text)]
    assert offenders == []
