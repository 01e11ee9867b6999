"""The shape of the code, checked from its source (ast, no imports run).

- Imports flow one way: no circle between modules or packages, and no package imports a
  package above it in :data:`LAYERS` (imports inside functions count too).
- Ray, RLlib and Tune internals (an underscore name, a ``_private``/``_internal`` path) are
  used in ``algospace/ray_compat.py`` only.
- No source file passes :data:`MAX_LINES` lines.
"""

from __future__ import annotations

import ast
import collections
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("algospace", "envs", "experiments")
MAX_LINES = 450
RAY_COMPAT = "algospace/ray_compat.py"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("algospace.errors", "algospace.schema", "algospace.files", "algospace.ray_compat"),
    ("algospace.data",),
    ("algospace.config",),
    ("algospace.market",),
    ("algospace.features",),
    ("algospace.regime",),
    ("envs",),
    ("algospace.models",),
    ("algospace.training",),
    ("algospace.inference",),
    ("algospace.evaluation",),
    ("algospace.tune",),
    ("algospace.cli",),
    ("algospace", "experiments"),
)
"""Packages from the bottom up: each may import its own layer and the layers below it."""


def _modules() -> dict[str, Path]:
    mods = {}
    for top in SOURCES:
        for path in (ROOT / top).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            mods[name] = path
    return mods


MODULES = _modules()


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The project modules an import statement names (the nearest existing module)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = module.split(".")
            if MODULES[module].name != "__init__.py":
                package = package[:-1]
            package = package[:len(package) - node.level + 1]
            base = ".".join([*package, base] if base else package)
        names = [f"{base}.{alias.name}" for alias in node.names] or [base]
    out = []
    for name in names:
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        if name and name != module and not module.startswith(name + "."):
            out.append(name)
    return out


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = collections.defaultdict(set)
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                graph[module].update(_targets(module, node))
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(set(graph) | {t for ts in graph.values() for t in ts}):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on.add(start)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                    break
                if nxt in on:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        top = stack.pop()
                        on.discard(top)
                        comp.append(top)
                        if top == node:
                            break
                    if len(comp) > 1:
                        found.append(sorted(comp))
    return found


def _package(module: str) -> str:
    """The layer package a module belongs to (longest match in LAYERS)."""
    best = ""
    for layer in LAYERS:
        for pkg in layer:
            if (module == pkg or module.startswith(pkg + ".")) and len(pkg) > len(best):
                best = pkg
    return best or module


def _rank(package: str) -> int:
    for i, layer in enumerate(LAYERS):
        if package in layer:
            return i
    raise AssertionError(f"{package} is in no layer of tests/test_architecture.py LAYERS; "
                         "place it there")


def test_no_module_import_circle():
    assert _cycles(_graph()) == []


def test_no_package_import_circle_and_no_upward_import():
    packages: dict[str, set[str]] = collections.defaultdict(set)
    upward = []
    for module, targets in _graph().items():
        for target in targets:
            a, b = _package(module), _package(target)
            if a != b:
                packages[a].add(b)
                if _rank(b) > _rank(a):
                    upward.append(f"{module} -> {target}")
    assert _cycles(packages) == []
    assert sorted(upward) == []


def _own_private_names() -> set[str]:
    """Underscore names this project defines itself (attributes, functions, classes, names)."""
    names = set()
    for path in MODULES.values():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.arg):
                names.add(node.arg)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
    return {n for n in names if n.startswith("_")}


def _private_ray_uses(path: Path, own: set[str]) -> list[str]:
    uses = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import | ast.ImportFrom):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [
                node.module or ""]
            imported = [] if isinstance(node, ast.Import) else [a.name for a in node.names]
            for mod in mods:
                if mod.split(".")[0] == "ray" and (
                        any(p.startswith("_") for p in mod.split("."))
                        or any(n.startswith("_") for n in imported)):
                    uses.append(f"{where} imports {mod} {imported}")
        elif isinstance(node, ast.Attribute):
            private = node.attr.startswith("_") and not node.attr.startswith("__")
            if private and node.attr not in own:
                uses.append(f"{where} reads .{node.attr}")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in {"getattr", "setattr", "hasattr"} and len(node.args) > 1
              and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)
              and node.args[1].value.startswith("_")
              and not node.args[1].value.startswith("__")):
            uses.append(f"{where} {node.func.id}(..., {node.args[1].value!r})")
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
              and node.value.startswith("ray.")
              and ("._private" in node.value or "._internal" in node.value)):
            uses.append(f"{where} names {node.value}")
    return uses


def test_ray_internals_only_in_ray_compat():
    own = _own_private_names()
    found = []
    for path in sorted(MODULES.values()):
        if path.relative_to(ROOT).as_posix() != RAY_COMPAT:
            found += _private_ray_uses(path, own)
    assert found == []


def test_the_checks_can_fail(tmp_path):
    """The helpers above do find a circle, an upward arrow and a private Ray name."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c"]]
    assert _rank("algospace.data") < _rank("algospace.training")
    bad = tmp_path / "bad.py"
    bad.write_text("from ray._private import ray_constants\nx = learner._learner_connector\n"
                   "y = getattr(group, '_learner', None)\n")
    global ROOT
    root, ROOT = ROOT, tmp_path
    try:
        assert len(_private_ray_uses(bad, set())) == 3
    finally:
        ROOT = root


@pytest.mark.parametrize("top", SOURCES)
def test_no_source_file_passes_the_line_limit(top):
    long = {str(p.relative_to(ROOT)): n for p in sorted((ROOT / top).rglob("*.py"))
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}, f"split these files (over {MAX_LINES} lines): {long}"
