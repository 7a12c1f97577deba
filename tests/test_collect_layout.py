"""The collect package's layout: one concept per module, no import cycles, short functions,
one error base class, policies by registration."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "collect"


def _modules() -> dict[str, Path]:
    out = {}
    for f in PKG.rglob("*.py"):
        parts = list(f.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


def _imports(f: Path, name: str, known: set[str]) -> set[str]:
    """Modules of ``collect`` that ``f`` imports anywhere (also inside functions)."""
    found = set()
    pkg = name if f.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(f.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(pkg.split(".")[: len(pkg.split(".")) - node.level + 1] + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        found |= {t for t in targets if t in known and t != name}
    return found


def test_no_import_cycles_counting_imports_inside_functions():
    mods = _modules()
    graph = {m: _imports(f, m, set(mods)) for m, f in mods.items()}
    # a package's __init__ is imported by its submodules implicitly; only count explicit edges
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycle = stack[stack.index(n):] + [n]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert "collect.rollout" not in graph["collect.backends.ray_actors"]


def test_no_function_over_80_lines():
    long = []
    for f in PKG.rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > 80:
                    long.append(f"{f.relative_to(ROOT)}:{node.lineno} {node.name} ({n} lines)")
    assert not long, long


def test_every_error_derives_from_one_value_error_base():
    from collect import errors
    from collect.dataset import DatasetError
    from collect.export import ExportError
    from collect.importers import ImporterError
    from collect.policies import PolicyError
    from collect.rollout import CollectError

    assert issubclass(errors.CollectError, ValueError)
    for cls in (DatasetError, ExportError, ImporterError, PolicyError, errors.UsageError):
        assert issubclass(cls, errors.CollectError)
    assert CollectError is errors.CollectError
    # new error classes go to collect/errors.py (append-only), under the one base
    stray = [f"{f.relative_to(ROOT)}:{n.name}" for f in PKG.rglob("*.py") if f.name != "errors.py"
             for n in ast.walk(ast.parse(f.read_text())) if isinstance(n, ast.ClassDef) and n.name.endswith("Error")]
    assert not stray, stray
    assert all(issubclass(c, errors.CollectError) for c in vars(errors).values()
               if isinstance(c, type) and c.__name__.endswith("Error"))


def test_policies_by_registration(tmp_path):
    import gymnasium as gym

    from collect import policies
    from collect.policies import (
        POLICY_NAMES,
        PolicyError,
        make_policy,
        needs_live_env,
        register_policy,
    )

    assert POLICY_NAMES[:5] == ("random", "crafter-scripted", "babyai-bot", "sb3:<path.zip>",
                                "mixed:<policy>:<eps>")
    register_policy("test-constant", "collect.policies.base:make_random")
    try:
        policy = make_policy("mixed:test-constant:0.5", gym.make("CartPole-v1"), seed=0)
        assert policy.name == "mixed:test-constant:0.5" and policy.inner.name == "test-constant"
        assert "test-constant" in policies.POLICY_NAMES  # the listing follows the registry
    finally:
        policies._REGISTRY.unregister("test-constant")
    assert needs_live_env("babyai-bot") and needs_live_env("mixed:babyai-bot:0.2")
    assert not needs_live_env("mixed:random:0.2") and not needs_live_env("sb3:babyai-bot.zip")
    with pytest.raises(PolicyError, match="Unknown policy 'nope'. Valid policies: random, crafter-scripted"):
        make_policy("nope", gym.make("CartPole-v1"))
    with pytest.raises(PolicyError, match="takes no argument"):
        make_policy("random:3", gym.make("CartPole-v1"))


def test_rollout_runs_as_a_script_without_editing_sys_path(tmp_path):
    assert "sys.path" not in (PKG / "rollout.py").read_text()
    res = subprocess.run([sys.executable, str(PKG / "rollout.py"), "--help"], capture_output=True,
                         text=True, timeout=120, cwd=tmp_path, check=False)
    assert res.returncode == 0, res.stderr
    assert "--num-envs" in res.stdout and "--resume" in res.stdout


def test_policy_listing(capsys):
    from collect.policies.__main__ import main

    assert main([]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "random\tcollect.policies.base:make_random\t-"
    assert "babyai-bot\tcollect.policies.babyai:make\tlive env" in lines and len(lines) >= 5
    assert main(["--plugin", "no_such_module_xyz"]) == 2
    assert capsys.readouterr().err.startswith("error: Policy plugin 'no_such_module_xyz' cannot be imported")


def test_a_policy_is_one_plugin_file_and_reaches_worker_processes(tmp_path):
    """tests/plugins/toy_policy.py registers `every:<n>`; `--plugins` imports it in the driver
    and in each spawned worker (the process backend), and the recorded actions follow it."""
    import numpy as np

    from collect.dataset import open_dataset
    from collect.rollout import cli

    out = tmp_path / "ds"
    assert cli(["--env", "crafter", "--episodes", "2", "--max-episode-steps", "7", "--num-envs", "2",
                "--plugins", "plugins.toy_policy", "--policy", "every:3", "--out", str(out), "--no-progress"]) == 0
    ds = open_dataset(out)
    for i in range(2):
        assert np.array_equal(ds.episode(i).actions[:6], [0, 0, 0, 1, 1, 1])
    assert cli(["--env", "crafter", "--episodes", "1", "--plugins", "no_such_module_xyz", "--out",
                str(tmp_path / "x"), "--no-progress"]) == 2
