"""Imports inside ``bridge/`` only run down the layers: no package imports one that builds on it, and no
modules import each other in a circle (type-checking imports included)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

BRIDGE = Path(__file__).resolve().parent.parent / "bridge"

# what each part of bridge/ may import from the others (top-level modules and packages)
ALLOWED = {
    "aio": set(),  # asyncio helpers every layer may use
    "frames": set(),
    "metrics": set(),
    "logs": set(),
    "a2e": set(),  # a standalone client: the bridge reaches its metrics through a hook
    "rtc": {"aio"},
    "settings": {"a2e"},
    "errors": {"a2e", "frames"},
    "rooms": {"a2e", "aio", "errors", "frames", "logs", "metrics", "rtc", "settings"},
    "store": {"errors", "rooms"},  # errors: StoreUnavailable when Redis cannot be reached
    "simulator": {"a2e", "frames", "rtc", "settings"},
    "webhooks": {"frames", "logs", "metrics", "rooms", "settings"},
    "cluster": {"aio", "errors", "frames", "logs", "metrics", "rooms", "settings", "store"},
    "http": {"a2e", "errors", "frames", "logs", "metrics", "rooms", "settings", "webhooks"},
}


def part_of(path: Path) -> str:
    rel = path.relative_to(BRIDGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def imported_parts(path: Path) -> set[str]:
    package = path.relative_to(BRIDGE.parent).with_suffix("").parts[:-1]
    parts = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[:len(package) - node.level + 1]) + (node.module.split(".") if node.module else [])
            else:
                base = (node.module or "").split(".")
            names = [[*base, alias.name] for alias in node.names] if base == ["bridge"] else [base]
        elif isinstance(node, ast.Import):
            names = [alias.name.split(".") for alias in node.names]
        else:
            continue
        parts.update(name[1] for name in names if name[0] == "bridge" and len(name) > 1)
    return parts


@pytest.mark.parametrize("part", sorted(ALLOWED))
def test_imports_run_down_only(part: str) -> None:
    files = [p for p in BRIDGE.rglob("*.py") if part_of(p) == part]
    assert files, part
    for path in files:
        upward = imported_parts(path) - ALLOWED[part] - {part}
        assert not upward, f"{path.relative_to(BRIDGE.parent)} imports {sorted(upward)}"


def module_name(path: Path) -> str:
    parts = path.relative_to(BRIDGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """The bridge modules ``path`` imports, as dotted names (``from . import x`` counts as module x)."""
    package = module_name(path).split(".") if path.name == "__init__.py" else module_name(path).split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            target = ".".join([*base, *(node.module.split(".") if node.module else [])])
            for alias in node.names:
                found.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in known else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name in known}


def test_no_import_circles() -> None:
    files = {module_name(p): p for p in BRIDGE.rglob("*.py")}
    graph = {name: imported_modules(path, set(files)) - {name} for name, path in files.items()}
    graph = {name: {m for m in deps if not name.startswith(m + ".")} for name, deps in graph.items()}  # not a parent package
    done: set[str] = set()

    def visit(name: str, trail: list[str]) -> None:
        if name in trail:
            raise AssertionError("import circle: " + " -> ".join([*trail[trail.index(name):], name]))
        if name in done:
            return
        for dep in sorted(graph[name]):
            visit(dep, [*trail, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])
