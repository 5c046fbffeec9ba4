"""Print the import graph between the packages of the repository, and its cycles.

Usage: ``python -m tools.import_graph [--depth 2]`` from the repository root.
Depth 1 groups modules by top-level package (svconv, bench, sweeps, analysis, svconv_cli);
depth 2 by subpackage (svconv.layers, svconv.tt, ...). Imports are read with ``ast``,
so nothing is executed; imports inside functions count too (they are still dependencies).
"""
from __future__ import annotations

import argparse
import ast
from pathlib import Path

ROOTS = ("svconv", "bench", "sweeps", "analysis", "svconv_cli")


def module_name(path: Path, root: Path) -> str:
    """Dotted module name of ``path`` relative to the repository ``root``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, module: str) -> set[str]:
    """Absolute names of the modules imported by the file ``path`` (module name ``module``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_pkg = path.name == "__init__.py"
    package = module.split(".") if is_pkg else module.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            found.add(prefix)
            # ``from pkg import sub`` may import the submodule ``pkg.sub``.
            found.update(f"{prefix}.{alias.name}" for alias in node.names)
    return found


def group(name: str, depth: int) -> str | None:
    """The node of the graph that module ``name`` belongs to, or None outside the repository."""
    parts = name.split(".")
    if parts[0] not in ROOTS:
        return None
    return ".".join(parts[:depth])


def import_graph(root: Path, depth: int = 2) -> dict[str, set[str]]:
    """Edges ``node -> {nodes it imports}`` between the repository's packages at ``depth``."""
    # ``__main__.py`` is an entry point (``python -m svconv`` runs the CLI): nothing imports it, so what it
    # imports is no dependency of its package
    modules = {module_name(p, root): p for r in ROOTS for p in sorted((root / r).rglob("*.py")) if p.name != "__main__.py"}
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        src = group(module, depth)
        targets = graph.setdefault(src, set())
        for imp in imported_modules(path, module):
            # Keep only names that are modules or packages of the repository.
            while imp and imp not in modules:
                imp = imp.rpartition(".")[0]
            dst = group(imp, depth) if imp else None
            if dst and dst != src:
                targets.add(dst)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Pairs of nodes that reach each other (each pair once, sorted)."""
    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    reachable = {node: reach(node) for node in graph}
    return sorted((a, b) for a in graph for b in reachable[a] if a < b and a in reachable.get(b, ()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=2, help="1: top-level packages, 2: subpackages")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    args = parser.parse_args()
    graph = import_graph(args.root, args.depth)
    for node in sorted(graph):
        print(f"{node} -> {', '.join(sorted(graph[node])) or '(nothing)'}")
    found = cycles(graph)
    print("cycles (mutually reachable pairs):", "none" if not found else "")
    for a, b in found:
        print(f"  {a} <-> {b}")


if __name__ == "__main__":
    main()
