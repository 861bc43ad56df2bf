"""Training: the accelerate loop, trustworthy checkpoints, seeded data order, guards and logs.

``medpeft.train`` re-exports the public entry points (``train``, ``TrainConfig``, ``load_run_config``).
"""
