"""The weak-label library stays on its floor: errors/io/runtime, backbones, ace_lora, data.images, itself."""

from __future__ import annotations

import ast
from pathlib import Path

import medpeft.a3tune.weak_labels as package

ALLOWED = (
    "medpeft.errors",
    "medpeft.io",
    "medpeft.runtime",
    "medpeft.backbones",
    "medpeft.ace_lora",
    "medpeft.data.images",
    "medpeft.data.datasets",  # the registry: query datasets and K
    "medpeft.a3tune.weak_labels",
)


def test_library_imports_only_from_lower_floors():
    folder = Path(package.__file__).parent
    seen = set()
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                if name == "medpeft" or name.startswith("medpeft."):
                    seen.add(name)
                    assert name.startswith(ALLOWED), f"{path.name} imports {name}"
                assert name != "argparse", f"{path.name}: only commands/weak_labels.py reads the command line"
    assert "medpeft.data.images" in seen and "medpeft.io" in seen
