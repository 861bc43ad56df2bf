"""Run ``medpeft train`` in this process and SIGKILL it at a chosen checkpoint (not a test module).

    python killable_train.py after STEP THREADS -- <medpeft train arguments>
    python killable_train.py during STEP THREADS -- <medpeft train arguments>

``after``: killed right after the checkpoint of STEP is complete. ``during``: killed while writing the
checkpoint of STEP, leaving a truncated temporary file beside the previous checkpoints, as a real kill
(or power cut) in the middle of ``torch.save`` would. THREADS sets torch's intra-op threads, so the
numbers match those of the test process that compares the results bit for bit.
"""

from __future__ import annotations

import io
import os
import signal
import sys

import torch

import medpeft.training.checkpoint as checkpoint
from medpeft.cli import main


def _kill() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def install(mode: str, at_step: int) -> None:
    real_save = checkpoint.save_checkpoint
    real_atomic = checkpoint.torch_save

    def save_then_kill(folder, step, state, keep):
        path = real_save(folder, step, state, keep)
        if step == at_step:
            _kill()
        return path

    def partial_write(obj, path):
        if not str(path).endswith(f"step-{at_step:08d}.pt"):
            return real_atomic(obj, path)
        buf = io.BytesIO()
        torch.save(obj, buf)
        data = buf.getvalue()
        tmp = path.parent / f".{path.name}.killed.tmp"
        with open(tmp, "wb") as fh:
            fh.write(data[: len(data) // 2])
            fh.flush()
            os.fsync(fh.fileno())
        _kill()

    if mode == "after":
        checkpoint.save_checkpoint = save_then_kill
        import medpeft.training.loop as loop

        loop.save_checkpoint = save_then_kill
    elif mode == "during":
        checkpoint.torch_save = partial_write
    else:
        raise SystemExit(f"mode must be 'after' or 'during', not {mode!r}")


if __name__ == "__main__":
    mode, step, threads, sep, *rest = sys.argv[1:]
    assert sep == "--", "usage: killable_train.py MODE STEP THREADS -- ARGS"
    torch.set_num_threads(int(threads))
    install(mode, int(step))
    sys.exit(main(["train", *rest]))
