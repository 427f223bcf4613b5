"""Layers that point one way: no module imports from a layer above its own.

Every module of the `latentcast` package (server/, client/ and the package root, mapped as
pyproject.toml's package-dir says) is parsed with `ast`, and every import in it is checked: at
module level, inside functions, and under `if TYPE_CHECKING:` alike (none is exempt). Layers in
one row of `LAYERS` are siblings: neither may import the other. Inside a layer, imports form no
cycle: a module that needs another's names and is needed by it is one idea split in two, and its
import order decides which half sees the other half-built. README.md's "Layout" table lists the
same layers in the same order, which the last test holds it to.
"""

from __future__ import annotations

import ast
import functools
import gc
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Bottom to top. A module belongs to the layer naming it or the package it is in.
LAYERS: list[dict[str, tuple[str, ...]]] = [
    {"wire": ("latentcast.wire",)},
    {"client": ("latentcast.client",)},
    {"server.protocol": ("latentcast.server.protocol",)},
    {"server.errors": ("latentcast.server.errors",)},
    {"server.tasks": ("latentcast.server.tasks",)},
    {"server.config": ("latentcast.server.config",)},
    {"server.security": ("latentcast.server.security",)},
    {"server.backends": ("latentcast.server.backends",), "server.engine": ("latentcast.server.engine",)},
    {"server.training": ("latentcast.server.training",)},
    {"server.observability": ("latentcast.server.observability",)},
    {"server.deliveries": ("latentcast.server.deliveries",)},
    {"server.api": ("latentcast.server.api",)},
    {"server.compat": ("latentcast.server.compat",)},
    {
        "top": (
            "latentcast.server.app",
            "latentcast.server.cli",
            "latentcast.server.keys_command",
            "latentcast.server.worker_command",
            "latentcast.server.worker_process",
            "latentcast.__main__",
        )
    },
]
# The package roots hold no code of their own (`latentcast` re-exports the client's names): they
# are at the top, but only themselves, not the modules below them.
PACKAGE_ROOTS = {"latentcast": "top", "latentcast.server": "top"}
# Packages of files, not code (the pages, read with importlib.resources): in no layer.
DATA_PACKAGES = {"latentcast.static"}


def _rank() -> dict[str, int]:
    return {layer: rank for rank, row in enumerate(LAYERS) for layer in row}


def layer_of(module: str) -> str | None:
    if module in PACKAGE_ROOTS:
        return PACKAGE_ROOTS[module]
    found = [
        (len(prefix), layer)
        for row in LAYERS
        for layer, prefixes in row.items()
        for prefix in prefixes
        if module == prefix or module.startswith(prefix + ".")
    ]
    return max(found)[1] if found else None


def project_modules() -> dict[str, Path]:
    """Every module of the package, by its import name, from pyproject.toml's package-dir."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    modules = {}
    for package, folder in config["tool"]["setuptools"]["package-dir"].items():
        if package in DATA_PACKAGES:
            continue
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join((package, *parts))] = path
    return modules


@functools.cache
def parse(path: Path) -> ast.Module:
    """The module's syntax tree, parsed with the cyclic garbage collector off; once a session (a
    full collection before each of some 300 parses cost the three graph tests 4 minutes).

    CPython 3.11 formats a traceback's carets with `ast.parse`; a collection during this parse
    can finalize an earlier test's failed asyncio task, whose "exception was never retrieved"
    log then parses inside this parse, and 3.11.7 fails the outer one with "AST constructor
    recursion depth mismatch".
    """
    gc.disable()
    try:
        return ast.parse(path.read_text(), filename=str(path))
    finally:
        gc.enable()


def imports(module: str, path: Path, known: set[str]) -> Iterator[tuple[int, str]]:
    """(line, imported module) for every import of a module of the package, wherever it stands."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(parse(path)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's own package up
                package = module.split(".") if is_package else module.split(".")[:-1]
                anchor = package[: len(package) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = {f"{base}.{alias.name}" for alias in node.names}
            for target in sorted(targets & known) or [base]:
                yield node.lineno, target


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the modules of the package it imports (wherever the import stands)."""
    known = set(modules)
    return {name: {target for _, target in imports(name, path, known) if target in known} for name, path in modules.items()}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every group of modules that import one another, round and round (Tarjan's strongly connected
    components of more than one module, or of one that imports itself), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in sorted(graph.get(module, ())):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1 or module in graph.get(module, ()):
                cycles.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return sorted(cycles)


def test_every_module_has_a_layer() -> None:
    unplaced = [f"{path.relative_to(ROOT)} ({name})" for name, path in project_modules().items() if layer_of(name) is None]
    assert not unplaced, "modules in no layer (add them to LAYERS and README.md's Layout table): " + ", ".join(
        unplaced
    )


def test_no_module_imports_from_a_layer_above_its_own() -> None:
    modules = project_modules()
    rank = _rank()
    wrong = []
    for name, path in modules.items():
        layer = layer_of(name)
        if layer is None:
            continue
        for line, target in imports(name, path, set(modules)):
            if not target.startswith("latentcast"):
                continue
            other = layer_of(target)
            if other is None or other == layer or rank[other] < rank[layer]:
                continue
            how = "a sibling layer" if rank[other] == rank[layer] else "a layer above it"
            wrong.append(f"{path.relative_to(ROOT)}:{line}: {layer} imports {target} from {other}, {how}")
    assert not wrong, "\n".join(wrong)


def test_no_modules_import_one_another_in_a_cycle() -> None:
    cycles = import_cycles(import_graph(project_modules()))
    assert not cycles, "modules that import one another: " + "; ".join(" <-> ".join(cycle) for cycle in cycles)


def test_a_cycle_planted_inside_one_layer_is_caught(tmp_path: Path) -> None:
    # Two engine modules that import each other, one of them only for its annotations: the layer
    # rule passes them (one layer), the cycle rule does not.
    (tmp_path / "planted_a.py").write_text("from latentcast.server.engine.planted_b import B\n")
    (tmp_path / "planted_b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from latentcast.server.engine import planted_a\n"
    )
    modules = project_modules()
    planted = {f"latentcast.server.engine.planted_{x}": tmp_path / f"planted_{x}.py" for x in "ab"}
    assert import_cycles(import_graph(modules | planted)) == [sorted(planted)]


def test_the_readme_lists_the_same_layers_in_the_same_order() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Layout", 1)[1].split("\n## ", 1)[0]
    # the first column of each row names its layer, siblings joined by " / "
    rows = [re.findall(r"`([^`]+)`", line.split("|")[1]) for line in table.splitlines() if line.startswith("| `")]
    expected = [list(row) for row in LAYERS]
    assert [row for row in rows if row] == expected
