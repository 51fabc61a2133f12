"""The seam between the packages, checked on the source: imports only, nothing runs.

* georeader never imports daskcog, nor Dask;
* no module imports a `_private` name from another module (packages and tests);
* no import cycles between the modules of georeader and daskcog: every import
  statement counts, at module level, inside functions and under `if TYPE_CHECKING:`
  (a cycle hidden there is still two modules that need each other);
* georeader's longest chain of module-level imports is at most 6 modules.
"""

from __future__ import annotations

import ast
import graphlib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("georeader", "daskcog")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources(*tops: str) -> dict[str, Path]:
    return {_module_name(p): p for top in tops for p in sorted((ROOT / top).rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(
    path: Path, module: str, *, module_level: bool = False
) -> Iterator[tuple[str, str | None, int]]:
    """(imported module, imported name or None, line) of every import statement: at module
    level, in functions and under `TYPE_CHECKING`; with `module_level`, only those that run
    when the module is imported (not in functions or classes, not under `TYPE_CHECKING`)."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]

    def visit(node: ast.AST) -> Iterator[tuple[str, str | None, int]]:
        for child in ast.iter_child_nodes(node):
            if module_level and isinstance(child, ast.If) and _is_type_checking(child):
                yield from (i for n in child.orelse for i in visit_one(n))
                continue
            if module_level and isinstance(
                child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda
            ):
                continue
            yield from visit_one(child)

    def visit_one(node: ast.AST) -> Iterator[tuple[str, str | None, int]]:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                yield base, alias.name, node.lineno
        else:
            yield from visit(node)

    yield from visit(tree)


def test_georeader_never_imports_daskcog_or_dask() -> None:
    bad = [
        f"{module}:{line} imports {target}"
        for module, path in _sources("georeader").items()
        for target, _, line in _imports(path, module)
        if target.split(".")[0] in ("daskcog", "dask", "distributed")
    ]
    assert not bad, "\n".join(bad)


def test_no_private_names_cross_modules() -> None:
    ours = _sources(*PACKAGES, "tests", "benchmarks")
    bad = []
    for module, path in ours.items():
        for target, name, line in _imports(path, module):
            if target.split(".")[0] not in (*PACKAGES, "tests", "benchmarks"):
                continue
            private_module = any(
                part.startswith("_") and part != "__init__" for part in target.split(".")
            )
            private_name = name is not None and name.startswith("_") and not name.startswith("__")
            if private_module or private_name:
                bad.append(f"{module}:{line} imports {target}{'.' + name if name else ''}")
    assert not bad, "\n".join(bad)


def _graph(*packages: str, module_level: bool = False) -> dict[str, set[str]]:
    sources = _sources(*(packages or PACKAGES))
    graph: dict[str, set[str]] = {m: set() for m in sources}
    for module, path in sources.items():
        for target, name, _ in _imports(path, module, module_level=module_level):
            if target.split(".")[0] not in PACKAGES:
                continue
            full = f"{target}.{name}" if name else target
            if full in sources:  # `from package import module`
                graph[module].add(full)
            elif target in sources:
                graph[module].add(target)
    for module in graph:
        graph[module].discard(module)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles graphlib finds, one at a time (each cycle's edges are cut, then again)."""
    graph = {m: set(t) for m, t in graph.items()}
    found = []
    while True:
        try:
            graphlib.TopologicalSorter(graph).prepare()
        except graphlib.CycleError as exc:
            cycle = exc.args[1]  # [a, b, ..., a]
            found.append(cycle)
            for a, b in zip(cycle, cycle[1:], strict=False):
                graph[b].discard(a)  # TopologicalSorter's edges point at predecessors
                graph[a].discard(b)
            continue
        return found


def _package_edges_ok(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The graph without edges from a package's `__init__` down into its own modules.

    A package's `__init__` re-exports its modules (that is its job); a module that
    imports its package's `__init__` back would then be a cycle, and is reported.
    """
    trimmed = {}
    for module, targets in graph.items():
        is_init = any(other.startswith(module + ".") for other in graph)
        trimmed[module] = {t for t in targets if not (is_init and t.startswith(module + "."))}
    return trimmed


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycles(package: str) -> None:
    cycles = [
        c for c in _cycles(_package_edges_ok(_graph())) if any(m.startswith(package) for m in c)
    ]
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def _longest_chain(graph: dict[str, set[str]]) -> list[str]:
    """The longest path of imports in an acyclic graph (module first, what it imports next)."""
    longest: dict[str, list[str]] = {}
    for module in graphlib.TopologicalSorter(graph).static_order():  # imported modules first
        below = [longest[t] for t in graph[module] if t in longest]
        longest[module] = [module, *max(below, key=len, default=[])]
    return max(longest.values(), key=len)


def test_georeader_import_chain_is_at_most_six_modules() -> None:
    """A newcomer reading georeader follows at most 6 modules down from any module (it was
    11: reader -> fetch -> assemble -> header -> rasterio route -> ... -> errors)."""
    chain = _longest_chain(_package_edges_ok(_graph("georeader", module_level=True)))
    assert len(chain) <= 6, " -> ".join(chain)


def test_daskcog_uses_georeaders_public_surface() -> None:
    """daskcog imports from georeader only what georeader declares public.

    A module with `__all__` (the package itself, the reader module) exports exactly
    those names; other georeader modules are public as a whole (their public
    functions and values), `_private` ones never.
    """
    import importlib

    bad = []
    for module, path in _sources("daskcog").items():
        for target, name, line in _imports(path, module):
            if target.split(".")[0] != "georeader" or name is None:
                continue
            if f"{target}.{name}" in _sources("georeader"):
                continue  # a whole module: `from georeader import window_utils`
            exported = getattr(importlib.import_module(target), "__all__", None)
            if exported is not None and name not in exported:
                bad.append(
                    f"{module}:{line} imports {target}.{name}, "
                    f"which {target}.__all__ does not export"
                )
    assert not bad, "\n".join(bad)
