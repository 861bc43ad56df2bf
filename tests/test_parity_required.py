"""``MEDPEFT_REQUIRE_PARITY=1`` turns a missing parity fixture into a failure (CI), not a skip (users)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run_parity_test(tmp_path: Path, require: str) -> subprocess.CompletedProcess:
    probe = tmp_path / "test_probe.py"
    probe.write_text(
        textwrap.dedent("""
        def test_needs_fixtures(parity_dir):
            assert parity_dir.is_dir()
    """)
    )
    (tmp_path / "conftest.py").write_text((REPO / "tests" / "conftest.py").read_text())
    env = {
        **__import__("os").environ,
        "MEDPEFT_PARITY_DIR": str(tmp_path / "no-such-folder"),
        "MEDPEFT_REQUIRE_PARITY": require,
    }
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            str(probe),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )


def test_missing_fixtures_skip_for_users(tmp_path):
    result = _run_parity_test(tmp_path, "0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 skipped" in result.stdout


def test_missing_fixtures_fail_under_require(tmp_path):
    result = _run_parity_test(tmp_path, "1")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "MEDPEFT_REQUIRE_PARITY=1: parity fixtures not found" in result.stdout
