"""The only atomic writers and safe loaders of medpeft.

Every file medpeft writes (adapters, checkpoints, label files, metrics, reports) goes through a temporary
file in the same folder that is fsynced and renamed onto the target, and the folder is fsynced after the
rename: a run killed at any moment leaves either the old file or the new one, never half of one. Every
checkpoint is read with ``weights_only=True`` (or as safetensors), so a file can never execute code.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from medpeft.errors import CheckpointError, OutputExistsError


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """Make a rename inside ``folder`` durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a unique temporary path beside ``path``; on success fsync it, rename it onto ``path`` and
    fsync the folder. Parent folders are created. On any exception the temporary file is removed and
    ``path`` is untouched."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(final.parent)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return write_bytes(path, text.encode("utf-8"))


def jsonable(obj: Any) -> Any:
    """Plain JSON types: numpy/torch scalars and arrays to numbers/lists, paths to str, NaN/inf to null."""
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "detach"):  # torch tensor
        return jsonable(obj.detach().cpu().tolist())
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):  # numpy array or scalar
        return jsonable(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None  # strict JSON has no NaN; an undefined metric is null
    return obj


def write_json(path: str | os.PathLike[str], obj: Any, *, indent: int = 2, sort_keys: bool = False) -> Path:
    """Write ``obj`` as strict JSON (NaN/inf become null; numpy/torch values plain numbers) atomically."""
    text = json.dumps(jsonable(obj), indent=indent, allow_nan=False, ensure_ascii=False, sort_keys=sort_keys)
    return write_text(path, text + "\n")


def read_json(path: str | os.PathLike[str], what: str = "JSON file") -> Any:
    """Read a JSON file; a missing or malformed one raises ``CheckpointError`` naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise CheckpointError(f"{path}: {what} not found") from err
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: not a readable {what} ({err})") from err


def torch_save(obj: Any, path: str | os.PathLike[str]) -> Path:
    """``torch.save`` atomically (never a half-written checkpoint)."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def safetensors_save(
    tensors: dict[str, Any], path: str | os.PathLike[str], metadata: dict[str, str] | None = None
) -> Path:
    """``safetensors.torch.save_file`` atomically, tensors made contiguous and moved to the CPU."""
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=metadata)
    return Path(path)


def safe_torch_load(path: str | os.PathLike[str], what: str = "checkpoint") -> Any:
    """``torch.load`` restricted to tensors and plain containers (``weights_only``), so a file can never
    execute code; a refused or unreadable file raises ``CheckpointError`` naming it (``what`` says what
    it should have been)."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path}: refused to load: the file contains pickled objects other than tensors and plain "
            f"containers, which could execute code (weights_only=True). Detail: {str(err).splitlines()[0]}"
        ) from err
    except Exception as err:  # noqa: BLE001 - corrupt/truncated files, re-raised with the path
        raise CheckpointError(f"{path}: not a readable {what} ({type(err).__name__}: {err})") from err


def safetensors_load(path: str | os.PathLike[str], what: str = "weights file") -> dict[str, Any]:
    """Read a safetensors file to CPU tensors; an unreadable one raises ``CheckpointError`` naming it."""
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except FileNotFoundError as err:
        raise CheckpointError(f"{path}: {what} not found") from err
    except Exception as err:  # noqa: BLE001 - safetensors raises its own error types
        raise CheckpointError(f"{path}: not a readable {what} ({type(err).__name__}: {err})") from err


def check_out_dir(
    out: str | os.PathLike[str],
    *,
    may_reuse: bool,
    results: Sequence[str] | None = None,
    advice: str = "pass --overwrite to replace them, or choose another --out",
) -> bool:
    """The one output-folder guard: results are never overwritten without asking.

    Refuses a path that exists and is not a folder, and a folder that already holds results (the names in
    ``results``, or anything at all when ``results`` is None) unless ``may_reuse`` (``--overwrite`` or
    ``--resume``). Returns True when results are there, so the caller resumes or clears what it owns.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out} exists and is not a folder")
    if not out.is_dir():
        return False
    if results is None:
        present = sorted(p.name for p in out.iterdir())
    else:
        present = [n for n in results if (out / n).exists()]
    if present and not may_reuse:
        shown = ", ".join(present[:5]) + (", ..." if len(present) > 5 else "")
        raise OutputExistsError(
            f"output folder {out} is not empty: it already holds results ({shown}); {advice}"
        )
    return bool(present)
