"""The training machinery: ACE-LoRA's loop (``loop.train``, public as ``medpeft.train``) and the pieces a
training loop reuses (checkpoints, resume, logs, guards, progress, run configuration)."""
