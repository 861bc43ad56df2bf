"""Run ``medpeft a3tune train`` in this process and SIGKILL it right after the checkpoint of STEP is complete
(not a test module)::

    python a3_killable_train.py STEP THREADS -- <medpeft a3tune train arguments>
"""

from __future__ import annotations

import os
import signal
import sys

import torch

import medpeft.training.checkpoint as checkpoint

sys.path.insert(0, os.path.dirname(__file__))
from a3_cli import run  # noqa: E402


def install(at_step: int) -> None:
    real_save = checkpoint.save_checkpoint

    def save_then_kill(folder, step, state, keep):
        path = real_save(folder, step, state, keep)
        if step == at_step:
            sys.stdout.flush()
            sys.stderr.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return path

    checkpoint.save_checkpoint = save_then_kill


if __name__ == "__main__":
    step, threads, sep, *rest = sys.argv[1:]
    assert sep == "--", "usage: a3_killable_train.py STEP THREADS -- ARGS"
    torch.set_num_threads(int(threads))
    install(int(step))
    sys.exit(run(["a3tune", "train", *rest]))
