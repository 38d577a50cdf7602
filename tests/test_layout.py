"""The package's architecture, checked from its source: layers point one way, no import
cycles, no private name imported from another module, and the checkout's folders cannot be
imported a second time under their bare names.

Layers, lowest first (a module may import its own layer and the ones below):

0. the row contract and its helpers: ``dismai_data/*.py`` (schema, structure, io, tasks, ...)
1. shared engines: ``dismai_data.physics``, ``dismai_data.cards``
2. ``dismai_data.builders``, ``dismai_data.evaluation``, ``dismai_data.models``
3. ``dismai_data.hub``
4. ``dismai_data.leaderboard``
5. the CLI and the main job (``dismai_data.cli``, ``dismai_data.mainjob``)
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: checkout folder -> installed package name (pyproject.toml's package-dir)
FOLDERS = {"dismai_data": "dismai_data", "builders": "dismai_data.builders", "models": "dismai_data.models",
           "evaluation": "dismai_data.evaluation", "cards": "dismai_data.cards"}
TOP = ("dismai_data.cli", "dismai_data.mainjob")
LAYERS = [("dismai_data.leaderboard", 4), ("dismai_data.hub", 3), ("dismai_data.builders", 2),
          ("dismai_data.evaluation", 2), ("dismai_data.models", 2), ("dismai_data.physics", 1),
          ("dismai_data.cards", 1)]


def _modules() -> dict[str, Path]:
    out = {}
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out[".".join([package, *parts])] = path
    return out


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def layer(name: str) -> int:
    if name in TOP or any(name.startswith(t + ".") for t in TOP):
        return 5
    for prefix, rank in LAYERS:
        if name == prefix or name.startswith(prefix + "."):
            return rank
    return 0


def _resolve(importer: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = importer.split(".")
    base = base if _is_package(importer) else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(name: str) -> list[tuple[str, str | None, int]]:
    """(module imported, name taken from it or None, line) for every import of ``name``'s source,
    at any depth (a lazy import inside a function is a dependency too)."""
    out = []
    for node in ast.walk(ast.parse(MODULES[name].read_text(), str(MODULES[name]))):
        if isinstance(node, ast.Import):
            out += [(a.name, None, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            mod = _resolve(name, node)
            for a in node.names:
                sub = f"{mod}.{a.name}"
                out.append((sub, None, node.lineno) if sub in MODULES else (mod, a.name, node.lineno))
    return [(m, n, line) for m, n, line in out if m in MODULES]


def test_layers_point_one_way():
    upward = [f"{MODULES[name].relative_to(ROOT)}:{line} imports {mod} (layer {layer(mod)} > {layer(name)})"
              for name in MODULES for mod, _, line in imports(name) if layer(mod) > layer(name)]
    assert upward == []


def test_no_private_name_crosses_modules():
    crossing = [f"{MODULES[name].relative_to(ROOT)}:{line} imports {taken} from {mod}"
                for name in MODULES for mod, taken, line in imports(name)
                if taken and taken.startswith("_") and not taken.startswith("__") and mod != name]
    assert crossing == []


def test_no_import_cycle():
    """Between modules, a package ``__init__`` re-exporting its own submodules aside."""
    graph = {name: {m for m, _, _ in imports(name) if m != name and not name.startswith(m + ".")}
             for name in MODULES}
    cycles, state = [], {}

    def visit(node, stack):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if _is_package(node) and nxt.startswith(node + "."):
                continue  # an __init__ importing its own submodules to re-export them
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])
    assert cycles == []


@pytest.mark.parametrize("folder", [f for f in FOLDERS if f != "dismai_data"])
def test_checkout_folder_cannot_be_imported_under_its_bare_name(folder):
    """From the checkout root ``import evaluation`` would load a second copy of
    ``dismai_data.evaluation`` (sharing, and breaking, the first one's numba cache)."""
    proc = subprocess.run([sys.executable, "-c", f"import {folder}"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode != 0 and f"installed as dismai_data.{folder}" in proc.stderr, proc.stderr[-2000:]


def test_every_package_folder_is_installed():
    """pyproject's package list is explicit (the folders are mapped under dismai_data): a new
    subpackage missing from it would be left out of a wheel."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    packages = {name for name in MODULES if _is_package(name)}
    assert packages - listed == set() and listed - packages == set()
