"""The layers of docs/architecture.md ("Layers"), checked on the source tree's imports.

Every import counts, also those inside functions and under ``if TYPE_CHECKING:``: a module
that needs another's types depends on it as much as one that calls it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("mdfeed", "proto", "fix_spec", "fix_session", "fanout", "storage", "ohlcv")
GENERATED = ("fix_spec/fix44", "fix_spec/fix50sp2", "fix_spec/venue44")

#: What each part may import of mdfeed's own code (besides itself).
ALLOWED: dict[str, set[str]] = {
    "proto": set(),
    "fix_spec": set(),
    "mdfeed.kernel": {"proto"},
    "storage": {"mdfeed.kernel", "proto"},
    "fix_session": {"mdfeed.kernel", "proto", "fix_spec"},
    "fanout": {"mdfeed.kernel", "proto", "storage"},
    "ohlcv": {"mdfeed.kernel", "proto", "storage"},
    "mdfeed.stack": set(),
    "mdfeed.codegen": {"fix_spec"},
    "mdfeed.composition": {"mdfeed.kernel", "proto", "storage", "fix_session", "fanout", "ohlcv"},
}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # what it imports
    line: int


def _module_name(path: Path) -> str:
    name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    return name.removesuffix(".__init__")


def _imports(path: Path) -> Iterator[Import]:
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Import | ast.ImportFrom):
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                prefix = ".".join(base)
                targets = [f"{prefix}.{node.module}" if node.module else prefix]
                if not node.module:
                    targets = [f"{prefix}.{alias.name}" for alias in node.names]
            elif node.module:
                targets = [node.module]
                targets += [f"{node.module}.{alias.name}" for alias in node.names]
        for target in targets:
            if target.split(".")[0] in PACKAGES:
                yield Import(module, target, node.lineno)


def _sources() -> list[Path]:
    files = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if not relative.startswith(GENERATED) and "_pb2" not in path.name:
                files.append(path)
    return files


def _part(module: str) -> str:
    """The layer part a module belongs to: a component, or a part of ``mdfeed``."""
    parts = module.split(".")
    if parts[0] == "mdfeed" and len(parts) > 1:
        return f"mdfeed.{parts[1]}"
    return parts[0]


ALL_IMPORTS = [imp for path in _sources() for imp in _imports(path)]
MODULES = {_module_name(path) for path in _sources()}


def _existing(target: str) -> str | None:
    """The project module ``target`` names (``from a import b`` may name a module or not)."""
    while target and target not in MODULES:
        target = target.rpartition(".")[0]
    return target or None


def test_the_sources_are_found() -> None:
    assert {"mdfeed.kernel.config", "fanout.lane", "mdfeed.composition"} <= MODULES
    assert len(ALL_IMPORTS) > 200


@pytest.mark.parametrize("part", sorted(ALLOWED))
def test_each_part_imports_only_the_layers_below_it(part: str) -> None:
    allowed = ALLOWED[part] | {part}
    wrong = sorted(
        f"{imp.module}:{imp.line} imports {imp.target}"
        for imp in ALL_IMPORTS
        if _part(imp.module) == part and _part(imp.target) not in allowed
    )
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def test_components_use_each_others_public_modules_only() -> None:
    wrong = sorted(
        f"{imp.module}:{imp.line} imports {imp.target}"
        for imp in ALL_IMPORTS
        if _part(imp.module) != _part(imp.target)
        and any(
            segment.startswith("_") and not segment.startswith("__")
            for segment in imp.target.split(".")[1:]
        )
    )
    assert not wrong, "imports of another part's private modules:\n" + "\n".join(wrong)


def test_no_import_cycles() -> None:
    graph: dict[str, set[str]] = {module: set() for module in MODULES}
    for imp in ALL_IMPORTS:
        target = _existing(imp.target)
        if target is not None and target != imp.module:
            # A package's __init__ importing its own modules is how it exports them.
            if imp.module == target.rpartition(".")[0] or target.startswith(imp.module + "."):
                continue
            graph[imp.module].add(target)
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)
