"""The seam between the packages, checked on the source: imports only, nothing runs.

* georeader never imports daskcog, nor Dask;
* no module imports a `_private` name from another module (packages and tests);
* no import cycles between the modules of georeader and daskcog (every import
  counts, also those inside functions; only `if TYPE_CHECKING:` blocks are left out,
  as they never run).
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


def _imports(path: Path, module: str) -> Iterator[tuple[str, str | None, int]]:
    """(imported module, imported name or None, line) of every import that can run."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]

    def visit(node: ast.AST) -> Iterator[tuple[str, str | None, int]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                yield from (i for n in child.orelse for i in visit_one(n))
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


def _graph() -> dict[str, set[str]]:
    sources = _sources(*PACKAGES)
    graph: dict[str, set[str]] = {m: set() for m in sources}
    for module, path in sources.items():
        for target, name, _ in _imports(path, module):
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
