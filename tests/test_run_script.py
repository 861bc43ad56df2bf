"""``./run demo`` and ``./run test`` from a clean clone (``git clone`` of this checkout's HEAD into a temporary
folder). The slow test runs the README's two commands there; it reuses the torch of the interpreter running
the tests through the script's documented ``MEDPEFT_BASE_SITE`` switch instead of downloading it again, and
otherwise goes the path a fresh machine goes (new .venv, pip install of the pinned torch and of medpeft with
its extras). The fast tests check the messages that need no set-up."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _clone(dest: Path) -> Path:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs git and a git checkout (the test clones HEAD)")
    subprocess.run(["git", "clone", "-q", str(REPO), str(dest)], check=True, timeout=120)
    return dest


def _env(extra: dict | None = None) -> dict:
    """The environment of a user's shell: none of the test run's MEDPEFT_*, PYTHONPATH or venv variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEDPEFT_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(extra or {})
    return env


def _run(clone: Path, *args: str, env: dict | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(clone / "run"), *args], cwd=clone, env=_env(env), capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def clone(tmp_path) -> Path:
    return _clone(tmp_path / "medpeft")


def test_too_old_python_is_refused_clearly(clone, tmp_path):
    fake = tmp_path / "python3.9"
    fake.write_text('#!/bin/sh\necho "3 9"\n')
    fake.chmod(0o755)
    out = _run(clone, "test", env={"MEDPEFT_PYTHON": str(fake)})
    assert out.returncode == 1
    assert f"run: error: medpeft needs Python >= 3.10, but Python '{fake}' is 3.9." in out.stderr
    assert "MEDPEFT_PYTHON=" in out.stderr and not (clone / ".venv").exists()
    missing = _run(clone, "demo", env={"MEDPEFT_PYTHON": str(tmp_path / "nope")})
    assert missing.returncode == 1 and "not found or does not run" in missing.stderr


def test_help_and_unknown_commands(clone):
    out = _run(clone, "help")
    assert out.returncode == 0 and "./run demo" in out.stdout and "./run test" in out.stdout
    bad = _run(clone, "bogus")
    assert bad.returncode == 1 and "unknown command 'bogus'" in bad.stderr
    wrong = _run(clone, "test", env={"MEDPEFT_TORCH": "gpu", "MEDPEFT_PYTHON": sys.executable})
    assert (
        wrong.returncode == 1 and "MEDPEFT_TORCH must be auto, cpu, cuda or skip, not 'gpu'" in wrong.stderr
    )


@pytest.mark.slow
def test_two_commands_from_a_clean_clone(clone):
    env = {"MEDPEFT_BASE_SITE": sysconfig.get_paths()["purelib"], "MEDPEFT_PYTHON": sys.executable}
    first = _run(clone, "test", "tests/test_io.py", "-q", "-p", "no:cacheprovider", env=env)
    assert first.returncode == 0, first.stderr[-3000:] + first.stdout[-2000:]
    said = first.stderr
    for step in (
        "run: creating .venv",
        "run: installing torch 2.14.1 and torchvision",
        "installing medpeft (editable)",
    ):
        assert step in said
    assert "5 passed" in first.stdout
    where = subprocess.run(
        [str(clone / ".venv/bin/python"), "-c", "import medpeft; print(medpeft.__file__)"],
        cwd=clone,
        env=_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(where.stdout.strip()) == clone / "src" / "medpeft" / "__init__.py"  # the clone, not elsewhere

    again = _run(clone, "test", "tests/test_io.py", "-q", "-p", "no:cacheprovider", env=env)
    assert again.returncode == 0 and "5 passed" in again.stdout
    assert "is up to date for 'test'" in again.stderr and "installing" not in again.stderr

    demo = _run(clone, "demo", "--quick", env=env)
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "is up to date for 'demo'" in demo.stderr and "installing" not in demo.stderr
    assert "running: medpeft demo --out medpeft-demo --quick" in demo.stderr
    assert (clone / "medpeft-demo" / "report.md").is_file() and (
        clone / "medpeft-demo" / "metrics.json"
    ).is_file()

    # a changed pyproject.toml is a changed environment: the next call installs again
    with open(clone / "pyproject.toml", "a") as f:
        f.write("\n# changed\n")
    changed = _run(clone, "test", "tests/test_io.py", "-q", "-p", "no:cacheprovider", env=env)
    assert changed.returncode == 0 and "installing medpeft (editable)" in changed.stderr
    assert "creating .venv" not in changed.stderr
