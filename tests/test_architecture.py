"""Architecture rules over the non-test modules of byog_env, collect, agents and experiments
(and, for the length rules, byog_core and benchmarks: every file outside tests): no function
over 60 lines, no file over 600, no import cycle between modules (imports inside functions count; ``if TYPE_CHECKING:`` blocks do not run, so they do
not). Read from the source with ``ast``; nothing is imported."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("byog_env", "collect", "agents", "experiments")
MAX_FUNCTION_LINES = 60
MAX_LOOP_LINES = 60


def module_files(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of ``packages`` under ``root``."""
    mods = {}
    for pkg in packages:
        for f in sorted((root / pkg).rglob("*.py")):
            parts = list(f.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(parts)] = f
    return mods


def long_functions(files: dict[str, Path], limit: int) -> list[str]:
    """``file:function (N lines)`` for every function or method longer than ``limit`` lines."""
    out = []
    for f in files.values():
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > limit:
                    out.append(f"{f.relative_to(ROOT) if f.is_relative_to(ROOT) else f}:"
                               f"{node.name} ({n} lines)")
    return out


def _type_checking(node: ast.If) -> bool:
    t = node.test
    return getattr(t, "id", None) == "TYPE_CHECKING" or getattr(t, "attr", None) == "TYPE_CHECKING"


def import_graph(mods: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the modules of ``mods`` it imports, anywhere in its body (functions too)."""
    graph = {}
    for name, f in mods.items():
        is_pkg = f.name == "__init__.py"
        edges: set[str] = set()

        def add(target: str, name: str = name, edges: set[str] = edges) -> None:
            while target and target not in mods:
                target = target.rpartition(".")[0]
            if target and target != name:
                edges.add(target)

        stack = list(ast.parse(f.read_text()).body)
        while stack:
            node = stack.pop()
            if isinstance(node, ast.If) and _type_checking(node):
                stack.extend(node.orelse)
                continue
            if isinstance(node, ast.Import):
                for alias in node.names:
                    add(alias.name)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the package of this module
                    pkg = name.split(".") if is_pkg else name.split(".")[:-1]
                    pkg = pkg[: len(pkg) - (node.level - 1)]
                    base = ".".join(pkg + ([base] if base else []))
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    add(full if full in mods else base)
            stack.extend(ast.iter_child_nodes(node))
        graph[name] = edges
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


# ----------------------------------------------------------------------------- the checkers


def test_checkers_find_a_long_function_and_a_cycle_inside_functions(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from pkg import b\n    return b\n")
    (pkg / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                              "    from pkg import c\nfrom pkg.a import f\n")
    (pkg / "c.py").write_text("import pkg.b\n" + "def g():\n" + "    x = 1\n" * 81)
    mods = module_files(tmp_path, ("pkg",))
    assert import_cycles(import_graph(mods)) == [["pkg.a", "pkg.b"]]  # b -> c is TYPE_CHECKING
    assert long_functions(mods, 80) == [f"{pkg / 'c.py'}:g (82 lines)"]


# ----------------------------------------------------------------------------- the repository


def test_no_function_over_60_lines_outside_tests():
    assert long_functions(module_files(ROOT, LAYOUT_PACKAGES), MAX_FUNCTION_LINES) == []


def test_training_loop_function_is_at_most_60_lines():
    tree = ast.parse((ROOT / "agents" / "training" / "loop.py").read_text())
    loop = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "run_loop")
    assert loop.end_lineno - loop.lineno + 1 <= MAX_LOOP_LINES


def test_no_import_cycle_between_modules():
    assert import_cycles(import_graph(module_files(ROOT))) == []


def test_no_import_cycle_among_the_core_model_modules():
    """The model's own modules (config, errors, registry, objectives, lm, decode plan, encoder,
    predictor, narrator, training loop and callbacks) take part in no cycle but the known ones."""
    core = {"agents.config", "agents.errors", "byog_core.registry", "agents.model.objectives", "agents.model.lm",
            "agents.model.decode_plan", "agents.model.kv_cache", "agents.model.encoder", "agents.model.predictor",
            "agents.narrate.narrator", "agents.narrate.narration", "agents.model.losses", "agents.model.monitors",
            "agents.model.text", "agents.training.loop", "agents.training.callbacks",
            "agents.training.evaluate", "agents.training.config", "agents.training.command", "agents.narrate.command",
            "agents.cli"}
    for cycle in import_cycles(import_graph(module_files(ROOT))):
        assert not core & set(cycle), cycle


def test_tests_import_no_other_test_module():
    """Shared helpers live in tests/helpers.py and fixtures in tests/conftest.py."""
    offenders = []
    for f in sorted((ROOT / "tests").glob("test_*.py")):
        for node in ast.walk(ast.parse(f.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{f.name}: {n}" for n in names if n.split(".")[-1].startswith("test_")]
    assert offenders == []


# ----------------------------------------------------------------------------- the rooms
MAX_AGENTS_TOP_LEVEL = 12


def agents_top_level(root: Path = ROOT) -> list[str]:
    """What ``agents/`` holds at its top level: its modules (shims too; ``__init__`` and
    ``__main__`` aside) and its packages (one each)."""
    here = root / "agents"
    mods = [f.name for f in here.glob("*.py") if f.stem not in ("__init__", "__main__")]
    pkgs = [d.name + "/" for d in here.iterdir() if (d / "__init__.py").is_file()]
    return sorted(mods + pkgs)


def test_agents_keeps_at_most_12_modules_at_its_top_level():
    top = agents_top_level()
    assert len(top) <= MAX_AGENTS_TOP_LEVEL, top


MAX_FILE_LINES = 600
LAYOUT_PACKAGES = ("byog_core", "byog_env", "collect", "agents", "experiments", "benchmarks")


def test_no_file_over_600_lines_outside_tests():
    long = [f"{f.relative_to(ROOT)} ({n} lines)" for f in module_files(ROOT, LAYOUT_PACKAGES).values()
            if (n := len(f.read_text().splitlines())) > MAX_FILE_LINES]
    assert long == []
