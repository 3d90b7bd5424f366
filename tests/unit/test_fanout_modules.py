"""The fanout's modules: the tick path's cache, groups, frames, lanes and clients know no
transport (so a new one reuses them whole), and every module says what it holds."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FANOUT = ROOT / "fanout"
#: What only a transport may import: the wire protocols' libraries, and the transports.
TRANSPORT_ROOTS = ("grpc", "grpc_health", "grpc_reflection", "paho", "amqtt")
TRANSPORTS = "fanout.transports"
#: The record of a started fanout and its metrics name every part, transports included.
ASSEMBLY = {"fanout.parts", "fanout.metrics"}


def _name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


MODULES = {_name(path): path for path in sorted(FANOUT.rglob("*.py"))}


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _reach(module: str) -> set[str]:
    """Everything ``module`` imports, directly or through other fanout modules."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        for target in _imports(MODULES[todo.pop()]):
            if target in seen:
                continue
            seen.add(target)
            if target in MODULES:
                todo.append(target)
    return seen


CORE = sorted(m for m in MODULES if not m.startswith(TRANSPORTS) and m not in ASSEMBLY)


def test_the_tick_path_modules_are_found() -> None:
    steps = {"tick_fanout", "snapshot_cache", "groups", "frames", "lane", "client"}
    assert {f"fanout.{step}" for step in steps} <= set(CORE)


@pytest.mark.parametrize("module", CORE)
def test_a_core_module_reaches_no_transport(module: str) -> None:
    wrong = sorted(
        target
        for target in _reach(module)
        if target.split(".")[0] in TRANSPORT_ROOTS
        or target == TRANSPORTS
        or target.startswith(TRANSPORTS + ".")
    )
    assert not wrong, f"{module} reaches transport code: {', '.join(wrong)}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_module_has_a_docstring(module: str) -> None:
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    assert ast.get_docstring(tree), f"{module} has no module docstring"
