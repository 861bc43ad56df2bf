"""Run ``medpeft a3tune train`` in this process and SIGKILL it at a chosen checkpoint (not a test module)::

    python a3_killable_train.py after STEP THREADS -- <medpeft a3tune train arguments>
    python a3_killable_train.py during STEP THREADS -- <medpeft a3tune train arguments>

``after``: killed right after the checkpoint of STEP is complete. ``during``: killed while writing it, leaving a
truncated temporary file beside the previous checkpoints, as a kill in the middle of ``torch.save`` would.
THREADS sets torch's intra-op threads so the numbers match the test process's bit for bit.
"""

from __future__ import annotations

import io
import os
import signal
import sys

import torch

import medpeft.training.checkpoint as checkpoint

sys.path.insert(0, os.path.dirname(__file__))
from a3_cli import run  # noqa: E402


def _kill() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def install(mode: str, at_step: int) -> None:
    real_save, real_write = checkpoint.save_checkpoint, checkpoint.torch_save

    def save_then_kill(folder, step, state, keep):
        path = real_save(folder, step, state, keep)
        if step == at_step:
            _kill()
        return path

    def partial_write(obj, path):
        if not str(path).endswith(f"step-{at_step:08d}.pt"):
            return real_write(obj, path)
        buf = io.BytesIO()
        torch.save(obj, buf)
        data = buf.getvalue()
        with open(path.parent / f".{path.name}.killed.tmp", "wb") as fh:
            fh.write(data[: len(data) // 2])
            fh.flush()
            os.fsync(fh.fileno())
        _kill()

    if mode == "after":
        checkpoint.save_checkpoint = save_then_kill
    elif mode == "during":
        checkpoint.torch_save = partial_write
    else:
        raise SystemExit(f"mode must be 'after' or 'during', not {mode!r}")


if __name__ == "__main__":
    mode, step, threads, sep, *rest = sys.argv[1:]
    assert sep == "--", "usage: a3_killable_train.py MODE STEP THREADS -- ARGS"
    torch.set_num_threads(int(threads))
    install(mode, int(step))
    sys.exit(run(["a3tune", "train", *rest]))
