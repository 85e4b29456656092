"""``python -m headroom.devtools.layers``: the import rules of ``headroom/``, checked.

Two rules, over every import in every module (function-level and ``TYPE_CHECKING`` ones
included, since a type-only import is still a dependency a reader must follow):

* **Arrows point down.** Each module belongs to a layer (the table below, first match wins);
  a module may import its own layer or a lower one, never a higher one.
* **No circles.** Inside a layer too, the import graph between modules has no cycle.

Exit 0 with nothing printed when both hold; else one line per violation and exit 1.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

# Highest first. A module's layer is the first entry its dotted name starts with.
LAYERS: tuple[tuple[str, ...], ...] = (
    # entry points and process management
    (
        "headroom.cli",
        "headroom.compress_cli",
        "headroom.stats_cli",
        "headroom.ccr_cli",
        "headroom.proxy.__main__",
        "headroom.supervisor",
        "headroom.workers",
        "headroom.server",
        "headroom.listeners",
        "headroom.systemd",
        "headroom.parity",
        "headroom.devtools",
    ),
    ("headroom.proxy",),  # the exchange, its flows, local routes, the app
    ("headroom.protocol", "headroom.providers", "headroom.telemetry", "headroom.learning"),
    ("headroom.transforms",),
    ("headroom.signals", "headroom.ccr"),
    ("headroom.config", "headroom.log", "headroom"),  # leaves everyone may use
)


def layer_of(module: str) -> int:
    for level, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return level
    raise ValueError(f"{module} is in no layer: add it to LAYERS")


def modules(root: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> Iterator[tuple[str, int]]:
    """(imported headroom module, line) for every import statement in the module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "headroom":
                    yield _known(alias.name, known), node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "headroom":
                continue
            for alias in node.names:
                full = f"{target}.{alias.name}"
                yield (full if full in known else _known(target, known)), node.lineno


def _known(module: str, known: dict[str, Path]) -> str:
    while module not in known and "." in module:
        module = module.rpartition(".")[0]
    return module


def check(root: Path) -> list[str]:
    known = modules(root)
    problems: list[str] = []
    graph: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        mine = layer_of(name)
        for target, line in imports(name, path, known):
            if target == name:
                continue
            graph[name].add(target)
            if layer_of(target) < mine:
                problems.append(f"{path}:{line}: {name} imports {target}, a higher layer")
    problems += [f"import circle among: {', '.join(group)}" for group in cycles(graph)]
    return problems


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The modules of each import circle: strongly connected components (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    problems = check(root)
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
