"""The layout's rules, checked on the source: every import points down the layers, no cycle, no oversized module.

Every `import` counts, at module level or inside a function, so a lazy import cannot hide a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import fmnist

SRC = Path(fmnist.__file__).parent
MAX_LINES = 400

# Ground floor first. A module may import modules of its own layer or of layers below, never above.
LAYERS = [
    ["fmnist", "fmnist.errors", "fmnist.paths", "fmnist.fileio", "fmnist.runlock"],
    ["fmnist.config"],
    ["fmnist.runtime"],
    ["fmnist.data"],
    ["fmnist.ops"],
    ["fmnist.models"],
    ["fmnist.recipes"],
    ["fmnist.checkpoint", "fmnist.imaging", "fmnist.metrics"],
    ["fmnist.inference"],
    ["fmnist.export"],
    ["fmnist.train"],
    ["fmnist.rundir"],
    ["fmnist.plots"],
    ["fmnist.reports"],
    ["fmnist.cv"],
    ["fmnist.serve"],
    ["fmnist.pipeline"],
    ["fmnist.sweep"],
    ["fmnist.cli", "fmnist.__main__"],
]


def module_name(path: Path) -> str:
    parts = ("fmnist", *path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in SRC.rglob("*.py")}


def layer(module: str) -> int:
    """The layer of the longest LAYERS name that is `module` or a package holding it."""
    matches = [(len(n), i) for i, names in enumerate(LAYERS) for n in names if module == n or module.startswith(n + ".")]
    assert matches, f"{module} is in no layer of tests/test_architecture.py: give it a room"
    return max(matches)[1]


def imports_of(module: str) -> set[str]:
    """The fmnist modules `module` imports anywhere in its file (a name imported from a package that is itself a
    module counts as that module)."""
    tree = ast.parse(MODULES[module].read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "fmnist"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "fmnist":
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in MODULES else node.module)
    return {m for m in found if m != module}


GRAPH = {m: imports_of(m) for m in MODULES}


def test_every_module_has_a_room_and_every_import_points_down():
    upward = [f"{m} (layer {layer(m)}) imports {d} (layer {layer(d)})"
              for m, deps in GRAPH.items() for d in deps if layer(d) > layer(m)]
    assert not upward, "imports that point up:\n" + "\n".join(sorted(upward))


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle a depth-first walk of `graph` meets, each as the path that closes it."""
    state: dict[str, int] = {}  # 1 on the current path, 2 finished
    cycles: list[list[str]] = []

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                cycles.append(path[path.index(d):] + [d])
            elif d not in state:
                visit(d, path + [d])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    return cycles


def test_the_import_graph_has_no_cycle():
    cycles = find_cycles(GRAPH)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_cycle_finder_finds_a_cycle_hidden_in_a_function():
    # The cycle the layout removed (a report importing a runner that imported the report inside a function),
    # rebuilt as source: both imports are seen and the cycle is found.
    runner = ast.parse("from fmnist.cv.store import x\ndef run():\n    from fmnist.reports.cv import write\n")
    found = {n.module for n in ast.walk(runner) if isinstance(n, ast.ImportFrom)}
    assert found == {"fmnist.cv.store", "fmnist.reports.cv"}
    graph = {"fmnist.cv.runner": found, "fmnist.reports.cv": {"fmnist.cv.runner"}, "fmnist.cv.store": set()}
    assert find_cycles(graph) == [["fmnist.cv.runner", "fmnist.reports.cv", "fmnist.cv.runner"]]


def test_no_module_is_oversized():
    big = {m: n for m, p in MODULES.items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not big, f"modules over {MAX_LINES} lines: {big}"


def test_library_imports_are_at_module_level():
    # Outside the CLI (where lazy imports keep `fmnist --help` fast), a function-level import of fmnist would hide
    # a dependency from a reader of the file's head.
    lazy = []
    for m, path in MODULES.items():
        if m.startswith("fmnist.cli"):
            continue
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for node in ast.walk(fn):
                    if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fmnist"):
                        lazy.append(f"{m}.{fn.name}: from {node.module}")
    assert not lazy, "\n".join(lazy)
