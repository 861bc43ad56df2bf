"""``serve/`` sits on the project's floors: it imports errors/io/runtime, backbones, ace_lora, a3tune, data and
evaluation (never training, transfer, demo, commands or the package root), reads no command line, and
loads without Gradio until ``build_app`` is asked for."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

SERVE = Path(__file__).resolve().parents[2] / "src" / "medpeft" / "serve"
ALLOWED = ("errors", "io", "runtime", "backbones", "ace_lora", "a3tune", "data", "evaluation", "serve")
#: The only files that call into evaluation (and a3tune): one per tab.
INFERENCE = ("inference.py", "a3tune_inference.py")


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_serve_imports_only_lower_floors():
    files = sorted(SERVE.glob("*.py"))
    assert {f.name for f in files} >= {"app.py", "inference.py", "uploads.py", "results.py", "limits.py",
                                       "a3tune_inference.py", "ask.py"}  # fmt: skip
    for file in files:
        for name in imported_modules(file):
            if name == "medpeft" or name.startswith("medpeft."):
                assert name.split(".")[1:2] and name.split(".")[1] in ALLOWED, f"{file.name} imports {name}"
            assert name not in ("argparse",), f"{file.name} reads the command line"
        assert "sys.argv" not in file.read_text()


def test_evaluation_is_called_from_inference_only():
    called = set()
    for file in SERVE.glob("*.py"):
        uses = {n for n in imported_modules(file) if n.startswith(("medpeft.evaluation", "medpeft.a3tune"))}
        if uses:
            called.add(file.name)
    assert called == set(INFERENCE)


def test_library_parts_load_without_gradio():
    code = (
        "import sys; import medpeft.serve, medpeft.serve.analysis, medpeft.serve.results, "
        "medpeft.serve.uploads, medpeft.serve.ask; print('gradio' in sys.modules)"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(SERVE.parents[1]), os.environ.get("PYTHONPATH")])),
    }
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == "False"
