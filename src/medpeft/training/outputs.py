"""The run folder: what a training run writes where, and the rule that it never overwrites another run.

``OUT/final`` (adapter), ``OUT/best`` (best adapter by validation, with ``best.json``),
``OUT/checkpoints``, ``metrics.jsonl``/``metrics.csv``, ``resolved_config.yaml``/``.json`` (usable as
``--config``), ``versions.json``, ``train_summary.json`` and, while a run is alive, ``run.lock``.
The adapter folders also carry the resolved configuration and the versions, so each is
self-describing when copied elsewhere.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

from medpeft.errors import OutputExistsError
from medpeft.io import check_out_dir

FINAL_DIR = "final"
BEST_DIR = "best"
LOCK_FILE = "run.lock"
RESOLVED_YAML = "resolved_config.yaml"
RESOLVED_JSON = "resolved_config.json"
VERSIONS_JSON = "versions.json"
SUMMARY_JSON = "train_summary.json"
BEST_JSON = "best.json"


def _is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_output(out: Path, resume: bool) -> None:
    """A run never writes into another run's folder unless asked to resume it, nor into a folder
    a live training process on this machine is writing to."""
    check_out_dir(
        out,
        may_reuse=resume,
        advice="pass --resume (resume=True) to continue that run, or choose a new --out",
    )
    lock = out / LOCK_FILE
    if resume and lock.is_file():
        try:
            owner = json.loads(lock.read_text())
        except (OSError, json.JSONDecodeError):
            owner = {}
        pid, host = owner.get("pid"), owner.get("host")
        if host == socket.gethostname() and isinstance(pid, int) and pid != os.getpid() and _alive(pid):
            raise OutputExistsError(
                f"output folder {out} is in use by a running training process (pid {pid})"
            )


def take_lock(out: Path) -> None:
    write_json(out / LOCK_FILE, {"pid": os.getpid(), "host": socket.gethostname()})


def release_lock(out: Path) -> None:
    (out / LOCK_FILE).unlink(missing_ok=True)


def write_json(path: Path, obj: Any) -> None:
    """Write JSON through a temporary file and a rename (readers never see half a file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def write_run_files(folder: Path, resolved: dict[str, Any], env: dict[str, Any]) -> None:
    """The resolved configuration (YAML, usable as ``--config``, and JSON) and the versions."""
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{RESOLVED_YAML}.tmp"
    tmp.write_text(yaml.safe_dump(resolved, sort_keys=False))
    os.replace(tmp, folder / RESOLVED_YAML)
    write_json(folder / RESOLVED_JSON, resolved)
    write_json(folder / VERSIONS_JSON, env)
