"""Layers you can see: the import graph of okrsync has no circle and no import that climbs a layer.

Bottom to top: the kernel (errors, field types); the domain (connectors, metrics, the OKR store),
which knows nothing above it; the project configuration (loading, problems, building, sensitive
fields, small groups); the flows that wire them; the faces (the CLI, the web app, the demo and the
sandboxes). Every import counts, also one inside a function; only ``if TYPE_CHECKING:`` imports are
left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("connectors", "metrics", "okr_store", "flows", "okrsync")
KERNEL = ("okrsync", "okrsync.errors", "okrsync.schema")
CONFIGURATION = ("okrsync.project", "okrsync.project_build", "okrsync.project_file", "okrsync.project_model",
                 "okrsync.project_problems", "okrsync.project_bindings", "okrsync.pii",
                 "okrsync.small_groups", "okrsync.project_reconcile", "okrsync.project_alerts")
LAYER_NAMES = ("kernel", "domain", "configuration", "flows", "faces")


def modules(root: Path = ROOT) -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (root / package).rglob("*.py"):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def layer(module: str) -> int:
    top = module.split(".")[0]
    if module in KERNEL:
        return 0
    if top in ("connectors", "metrics", "okr_store"):
        return 1
    if module in CONFIGURATION:
        return 2
    return 3 if top == "flows" else 4


def import_graph(root: Path = ROOT) -> dict[str, dict[str, int]]:
    """module → {imported module of ours: line}. Importing ``a.b.c`` imports the packages ``a`` and
    ``a.b`` too (their ``__init__``); a module's own ancestor packages are left out (Python imports them
    first anyway), as are imports under ``if TYPE_CHECKING:``."""
    mods = modules(root)

    def ours(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, dict[str, int]] = {}
    for mod, path in mods.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        typing_only = {id(n) for node in ast.walk(tree)
                       if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
                       for stmt in node.body for n in ast.walk(stmt)}
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        edges: dict[str, int] = {}
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([node.module] if node.module else []))
                names = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            for name in names:
                target = ours(name)
                while target:
                    if target != mod and not mod.startswith(target + "."):
                        edges.setdefault(target, node.lineno)
                    target = ours(target.rpartition(".")[0])
        graph[mod] = edges
    return graph


def circles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def upward(graph: dict[str, dict[str, int]]) -> list[str]:
    """Imports of a module in a higher layer, and of one face by another it does not own: the web app
    does not reach into the CLI."""
    bad = []
    for mod, edges in sorted(graph.items()):
        for target, line in sorted(edges.items()):
            if layer(target) > layer(mod):
                bad.append(f"{mod} ({LAYER_NAMES[layer(mod)]}) imports {target} "
                           f"({LAYER_NAMES[layer(target)]}), line {line}")
            elif mod.startswith("okrsync.web") and target.startswith("okrsync.cli"):
                bad.append(f"{mod} (the web app) imports {target} (the CLI), line {line}")
    return bad


def test_no_import_circles() -> None:
    found = circles(import_graph())
    assert not found, "import circles:\n" + "\n".join(" ↔ ".join(c) for c in found)


def test_no_import_climbs_a_layer() -> None:
    bad = upward(import_graph())
    assert not bad, "\n".join(bad)


if __name__ == "__main__":  # python -m tests.architecture.test_layers [ROOT]: the numbers
    import sys

    g = import_graph(Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else ROOT)
    print(f"import circles: {len(circles(g))}", *(" ↔ ".join(c) for c in circles(g)), sep="\n  ")
    print(f"upward imports: {len(upward(g))}", *upward(g), sep="\n  ")
