"""Fails when modules of src/ import each other in a circle (`make test` runs it).

A module depends on the modules its code names (`crate::…`, `super::…`; comments, doc
links and tests left out). A parent re-exporting its children is not a dependency.
Prints each circle found and exits 1; prints nothing and exits 0 when there is none."""

import os
import re
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"


def module_of(path):
    name = str(path.relative_to(SRC).with_suffix(""))
    if name.endswith("/mod"):
        name = name[: -len("/mod")]
    return None if name in ("lib", "main") or name.startswith("bin/") else name.replace(os.sep, "::")


def dependencies(modules):
    edges = {}
    for module, path in modules.items():
        code = path.read_text().split("#[cfg(test)]")[0]
        code = "\n".join(line for line in code.splitlines() if not line.strip().startswith("//"))
        found = set()
        for reference in re.findall(r"crate::([a-z_]+(?:::[a-z_]+)*)", code):
            parts = reference.split("::")
            found.update(next(([c] for c in ("::".join(parts[:k]) for k in range(len(parts), 0, -1)) if c in modules), []))
        parent = module.rpartition("::")[0]
        for name in re.findall(r"\bsuper::([a-z_]+)", code):
            child = f"{parent}::{name}" if parent else name
            found.add(child if child in modules else parent)
        found.discard(module)
        found.discard("")
        edges[module] = found
    return edges


def circles(edges):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
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

    for v in edges:
        if v not in index:
            visit(v)
    return found


if __name__ == "__main__":
    sys.setrecursionlimit(10_000)
    modules = {m: p for p in SRC.rglob("*.rs") if (m := module_of(p))}
    edges = dependencies(modules)
    for circle in circles(edges):
        print("import circle: " + ", ".join(f"{m} -> {sorted(d for d in edges[m] if d in circle)}" for m in circle))
    sys.exit(1 if circles(edges) else 0)
