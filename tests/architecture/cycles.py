"""Import cycles among a package's modules, type-checking imports included, found with grimp
(the graph library import-linter is built on) and Tarjan's strongly connected components.

    python tests/architecture/cycles.py [package]     prints the module count and every cycle
"""

from __future__ import annotations

import sys

import grimp


def import_cycles(package: str = "choir") -> list[list[str]]:
    """Every set of modules that import each other in a circle (directly or through others)."""
    graph = grimp.build_graph(package, include_external_packages=False, cache_dir=None)
    edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    return [sorted(c) for c in _components(edges) if len(c) > 1]


def _components(edges: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (a deep package must not hit the recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, child = work.pop()
            if child == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            targets = edges.get(node, [])
            if child < len(targets):
                work.append((node, child + 1))
                target = targets[child]
                if target not in index:
                    work.append((target, 0))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                found.append(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return found


if __name__ == "__main__":
    package = sys.argv[1] if len(sys.argv) > 1 else "choir"
    cycles = import_cycles(package)
    print(f"{package}: {len(cycles)} import cycles")
    for cycle in cycles:
        print(f"  {len(cycle)} modules: {', '.join(cycle)}")
