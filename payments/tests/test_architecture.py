"""The product's modules import each other without cycles.

The graph is read from the source with `ast`: every import of a product module (catalog, core, payments; tests
and migrations left out), at module level and inside functions alike, so that a cycle kept alive by an import
moved into a function (to dodge it at import time) counts as the cycle it is.
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("catalog", "core", "payments")
Graph = dict[str, set[str]]


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def product_modules(root: Path = ROOT) -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).parts
            if "tests" in parts or "migrations" in parts:
                continue
            modules[module_name(path, root)] = path
    return modules


def imported_names(tree: ast.AST, module: str) -> Iterator[str]:
    """Every module name an import in `tree` may refer to (`from a import b` may import module `a.b`)."""
    package = module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package, up level - 1 packages
                parts = package.split(".")
                anchor = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{anchor}.{base}".strip(".")
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def import_graph(modules: dict[str, Path]) -> Graph:
    """Module -> the product modules it imports (the most specific module each import names)."""
    graph: Graph = {}
    for module, path in modules.items():
        deps = set()
        for name in imported_names(ast.parse(path.read_text(), str(path)), module):
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != module:
                deps.add(name)
        graph[module] = deps
    return graph


def strongly_connected(graph: Graph) -> list[list[str]]:
    """The groups of modules that import each other (Tarjan's algorithm, iterative); singletons left out."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = len(index)
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(graph[succ]))))
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    if len(group) > 1:
                        groups.append(sorted(group))
    return groups


def a_cycle(graph: Graph, group: list[str]) -> list[str]:
    """One cycle through the group's first module, as the chain of imports (shortest way back)."""
    start, members = group[0], set(group)
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for succ in sorted(graph[node] & members):
            if succ == start:
                chain = [node]
                while chain[-1] != start:
                    chain.append(came_from[chain[-1]])
                return [start, *reversed(chain[:-1]), start]
            if succ not in came_from:
                came_from[succ] = node
                queue.append(succ)
    return group


def describe_cycles(graph: Graph) -> list[str]:
    return [
        f"{len(group)} modules import each other ({', '.join(group)}), e.g. {' -> '.join(a_cycle(graph, group))}"
        for group in strongly_connected(graph)
    ]


def test_product_modules_import_each_other_without_cycles() -> None:
    graph = import_graph(product_modules())
    assert "payments.states" in graph and "payments.models" in graph["payments.states"]
    assert describe_cycles(graph) == []


# Each app imports only the layers below it: core (settings, money, pages, rate limits) knows no app, the
# catalog knows no payments; payments may use both.
MAY_IMPORT = {"core": {"core"}, "catalog": {"core", "catalog"}, "payments": {"core", "catalog", "payments"}}


def upward_imports(graph: Graph) -> list[str]:
    return sorted(
        f"{module} -> {dep}"
        for module, deps in graph.items()
        for dep in deps
        if dep.partition(".")[0] not in MAY_IMPORT[module.partition(".")[0]]
    )


def test_each_app_imports_only_the_layers_below_it() -> None:
    graph = import_graph(product_modules())
    assert "payments.models" in graph["payments.orders"]  # the graph was read
    assert upward_imports(graph) == []


def test_an_upward_import_is_named() -> None:
    assert upward_imports({"core.devserver": {"payments.events"}, "payments.orders": {"catalog.models"}}) == [
        "core.devserver -> payments.events"
    ]


def test_the_cycle_finder_names_a_cycle_kept_alive_by_a_function_level_import(tmp_path: Path) -> None:
    (tmp_path / "payments").mkdir()
    (tmp_path / "payments" / "__init__.py").write_text("")
    (tmp_path / "payments" / "states.py").write_text("from payments import promotions\n")
    (tmp_path / "payments" / "promotions.py").write_text(
        "def apply() -> None:\n    from payments import orders\n"
    )
    (tmp_path / "payments" / "orders.py").write_text("from payments.states import move\n")
    (tmp_path / "payments" / "pricing.py").write_text("from payments import states\n")
    graph = import_graph({module_name(p, tmp_path): p for p in sorted((tmp_path / "payments").glob("*.py"))})
    assert describe_cycles(graph) == [
        "3 modules import each other (payments.orders, payments.promotions, payments.states), "
        "e.g. payments.orders -> payments.states -> payments.promotions -> payments.orders"
    ]
