"""The floors of the package (DESIGN.md), read from the source with ``ast``: every ``import`` and
``from ... import`` of every module, top-level or inside a function, counts.

errors/io/runtime < backbones, ace_lora, a3tune, data < evaluation, info < training, transfer (never each
other) < demo, serve < commands, cli. Nothing imports a higher floor, no part imports the package root,
the method core never imports the synthetic data generator, and neither packages nor modules form
import circles.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import medpeft

SRC = Path(medpeft.__file__).parent

FLOORS: dict[str, int] = {
    "errors": 0,
    "io": 0,
    "runtime": 0,
    "hub": 0,
    "model_card": 1,
    "backbones": 1,
    "ace_lora": 1,
    "a3tune": 1,
    "data": 1,
    "evaluation": 2,
    "info": 2,
    "training": 3,
    "transfer": 3,
    "demo": 4,
    "serve": 4,
    "commands": 5,
    "cli": 5,
}
NEVER_EACH_OTHER = {("training", "transfer"), ("transfer", "training")}
METHOD_CORE = ("backbones", "ace_lora", "a3tune")


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def medpeft_imports(path: Path) -> set[str]:
    """The medpeft modules ``path`` imports (``from medpeft.x import y`` also counts ``medpeft.x.y`` when
    that is a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "medpeft" or node.module.startswith("medpeft."):
                found.add(node.module)
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    if module_path(sub) is not None:
                        found.add(sub)
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}: relative import (use absolute medpeft.* imports)")
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name == "medpeft" or a.name.startswith("medpeft."))
    return found


def module_path(name: str) -> Path | None:
    rel = Path(*name.split(".")[1:])
    for candidate in (SRC / rel / "__init__.py", (SRC / rel).with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def part(name: str) -> str:
    """The floor-bearing part of a module name: ``medpeft.evaluation.zero_shot`` -> ``evaluation``."""
    pieces = name.split(".")
    return pieces[1] if len(pieces) > 1 else "medpeft"


MODULES = {module_name(p): p for p in sorted(SRC.rglob("*.py"))}
GRAPH = {name: medpeft_imports(path) for name, path in MODULES.items()}


def test_every_part_has_a_floor():
    parts = {part(m) for m in MODULES} - {"medpeft"}
    assert parts, "no modules found"
    assert sorted(parts - set(FLOORS)) == []


@pytest.mark.parametrize("name", sorted(m for m in MODULES if m != "medpeft"))
def test_no_upward_import(name):
    mine = part(name)
    bad = []
    for target in GRAPH[name]:
        theirs = part(target)
        if theirs == "medpeft":
            bad.append(f"{target} (the package root: import the submodule)")
        elif theirs != mine and FLOORS[theirs] > FLOORS[mine]:
            bad.append(f"{target} (floor {FLOORS[theirs]} above {mine}'s {FLOORS[mine]})")
        elif (mine, theirs) in NEVER_EACH_OTHER:
            bad.append(f"{target} ({mine} and {theirs} never import each other)")
        elif mine in METHOD_CORE and target.startswith("medpeft.data.synthetic"):
            bad.append(f"{target} (the method core never imports the synthetic data generator)")
    assert bad == [], f"{name} imports " + "; ".join(sorted(bad))


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` (a path that returns to its start), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_module_circles():
    graph = {m: {t for t in deps if t in MODULES and t != m} for m, deps in GRAPH.items()}
    assert _cycle(graph) is None


def test_no_part_circles():
    graph: dict[str, set[str]] = {}
    for m, deps in GRAPH.items():
        graph.setdefault(part(m), set()).update(part(t) for t in deps if part(t) not in (part(m), "medpeft"))
    graph.pop("medpeft", None)
    assert _cycle(graph) is None


def test_the_checker_sees_a_circle_and_an_upward_import():
    """The checks above can fail: a hand-made circle is found, and the real graph has edges to check."""
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
    assert "medpeft.evaluation.zero_shot" in GRAPH["medpeft.commands.eval"]
    assert len(MODULES) > 100
