"""The import graph of the product code (`cra/**`): no import cycles, and llama.cpp only in the local engine.

Module-level imports only (what runs when a module is imported: its top-level statements, including those inside
top-level `if`/`try`/`with` blocks and class bodies, but not `if TYPE_CHECKING:` blocks or function bodies), parsed
with `ast`. `import a.b` and `from a import b` point at the module `a.b` when that is a module of cra, else at
`a` (a name inside it); relative imports (`from . import x`, `from ..y import z`) resolve against the package.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[1] / "cra"
# Modules that may import llama.cpp at module level: the local engine (llama-cpp-python's own API).
LLAMA_CPP_ALLOWED_UNDER = "cra.pipeline.engine."


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def product_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE_ROOT.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def module_level_imports(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements that run when the module is imported."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from module_level_imports(node.body)
            yield from module_level_imports(node.orelse)
        elif isinstance(node, ast.Try) or type(node).__name__ == "TryStar":
            for block in (node.body, node.orelse, node.finalbody):  # type: ignore[attr-defined]
                yield from module_level_imports(block)
            for handler in node.handlers:  # type: ignore[attr-defined]
                yield from module_level_imports(handler.body)
        elif isinstance(node, (ast.With, ast.AsyncWith, ast.For, ast.While)):
            yield from module_level_imports(node.body)
            yield from module_level_imports(getattr(node, "orelse", []))
        elif isinstance(node, ast.ClassDef):
            yield from module_level_imports(node.body)


def _resolve_relative(module: str, is_package: bool, level: int, target: str | None) -> str:
    base = module.split(".") if is_package else module.split(".")[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, *([target] if target else [])])


class Edge:
    def __init__(self, source: str, target: str, line: int, statement: str) -> None:
        self.source, self.target, self.line, self.statement = source, target, line, statement


def imports_of(module: str, path: Path, known: set[str]) -> tuple[list[Edge], list[tuple[str, int, str]]]:
    """(edges to other cra modules, every imported module name with its line and statement)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    is_package = path.name == "__init__.py"
    edges: list[Edge] = []
    names: list[tuple[str, int, str]] = []
    for node in module_level_imports(tree.body):
        statement = ast.unparse(node)
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
            names += [(t, node.lineno, statement) for t in targets]
        else:
            base = (_resolve_relative(module, is_package, node.level, node.module) if node.level
                    else node.module or "")
            names.append((base, node.lineno, statement))
            # `from pkg import sub` imports the submodule `pkg.sub` when there is one, else a name of `pkg`.
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        for target in dict.fromkeys(targets):
            while target and target not in known and "." in target:
                target = target.rsplit(".", 1)[0]  # `import cra.x.y` where y is a name: the module is cra.x
            if target in known and target != module:
                edges.append(Edge(module, target, node.lineno, statement))
    return edges, names


def import_graph() -> tuple[dict[str, list[Edge]], dict[str, list[tuple[str, int, str]]]]:
    modules = product_modules()
    known = set(modules)
    graph: dict[str, list[Edge]] = {}
    imported: dict[str, list[tuple[str, int, str]]] = {}
    for name, path in modules.items():
        graph[name], imported[name] = imports_of(name, path, known)
    return graph, imported


def strongly_connected_components(graph: dict[str, list[Edge]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (no recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, Iterator[Edge]]] = [(root, iter(graph[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            advanced = False
            for edge in edges:
                nxt = edge.target
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(graph.get(nxt, []))))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return components


def a_cycle(graph: dict[str, list[Edge]], component: list[str]) -> list[Edge]:
    """One shortest cycle through the component's first module, as the import statements that make it."""
    members = set(component)
    start = component[0]
    previous: dict[str, Edge] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for edge in graph[node]:
                if edge.target not in members:
                    continue
                if edge.target == start:
                    path = [edge]
                    while path[0].source != start:
                        path.insert(0, previous[path[0].source])
                    return path
                if edge.target not in previous:
                    previous[edge.target] = edge
                    following.append(edge.target)
        frontier = following
    raise AssertionError(f"no cycle through {start} in {component}")


def describe(cycle: list[Edge]) -> str:
    modules = " -> ".join([cycle[0].source, *(e.target for e in cycle)])
    lines = [f"  {e.source}:{e.line}: {e.statement}" for e in cycle]
    return modules + "\n" + "\n".join(lines)


def test_product_code_has_no_import_cycles() -> None:
    graph, _ = import_graph()
    assert len(graph) > 50, "the package was not found"
    cycles = [c for c in strongly_connected_components(graph) if len(c) > 1]
    report = "\n\n".join(f"{len(c)} modules import each other: {', '.join(c)}\none cycle: {describe(a_cycle(graph, c))}"
                         for c in cycles)
    if report:
        print(report)
    assert not cycles, f"import cycles in cra/:\n\n{report}"


def test_only_the_local_engine_imports_llama_cpp_at_module_level() -> None:
    _, imported = import_graph()
    offenders = [f"{module}:{line}: {statement}" for module, names in sorted(imported.items())
                 for name, line, statement in names
                 if (name == "llama_cpp" or name.startswith("llama_cpp."))
                 and not module.startswith(LLAMA_CPP_ALLOWED_UNDER)]
    assert not offenders, "module-level llama_cpp imports outside cra/pipeline/engine/:\n" + "\n".join(offenders)


def test_the_graph_reader_resolves_imports_the_way_python_does(tmp_path: Path) -> None:
    """The parser itself, on a small made-up package: relative and absolute forms, TYPE_CHECKING, functions."""
    source = (
        "from __future__ import annotations\n"
        "import os\n"
        "from typing import TYPE_CHECKING\n"
        "from . import sibling\n"
        "from .sibling import NAME\n"
        "from .. import toplevel\n"
        "import cra.pkg.deep.leaf\n"
        "from cra.pkg import deep\n"
        "try:\n    import llama_cpp\nexcept ImportError:\n    llama_cpp = None\n"
        "if TYPE_CHECKING:\n    from cra.pkg import hidden\n"
        "def f():\n    from cra.pkg import lazy\n"
        "class C:\n    from cra.pkg import in_class\n"
    )
    path = tmp_path / "cra" / "pkg" / "mod.py"
    path.parent.mkdir(parents=True)
    path.write_text(source)
    known = {"cra", "cra.toplevel", "cra.pkg", "cra.pkg.mod", "cra.pkg.sibling", "cra.pkg.deep", "cra.pkg.deep.leaf",
             "cra.pkg.hidden", "cra.pkg.lazy", "cra.pkg.in_class"}
    edges, names = imports_of("cra.pkg.mod", path, known)
    assert [e.target for e in edges] == ["cra.pkg.sibling", "cra.pkg.sibling", "cra.toplevel", "cra.pkg.deep.leaf",
                                         "cra.pkg.deep", "cra.pkg.in_class"]
    assert ("llama_cpp", 10, "import llama_cpp") in names
    package_edges, _ = imports_of("cra.pkg", _write(tmp_path / "cra" / "pkg" / "__init__.py", "from . import mod\n"),
                                  known)
    assert [e.target for e in package_edges] == ["cra.pkg.mod"]
    graph = {"a": [Edge("a", "b", 1, "import b")], "b": [Edge("b", "c", 1, "import c")],
             "c": [Edge("c", "a", 1, "import a")], "d": [Edge("d", "a", 1, "import a")]}
    assert [c for c in strongly_connected_components(graph) if len(c) > 1] == [["a", "b", "c"]]
    assert describe(a_cycle(graph, ["a", "b", "c"])).startswith("a -> b -> c -> a")


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
