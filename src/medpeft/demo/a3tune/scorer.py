"""The weak-label scorer of the A³Tune demo: ``medpeft demo``'s tiny CLIP, the demo's stand-in for BiomedCLIP.

Trained with ``medpeft demo``'s own recipe and settings (``demo.generalist.pretrain_from_settings`` with
``DemoSettings``' corpus, optimisation and vision tower): with the same seed and ``n_images`` it is, weight for
weight, the generalist ``medpeft demo --seed S`` pre-trains. Its own synthetic draw (the generalist's stream)
never contains the VQA images it later scores. Saved as a backbone folder, which ``medpeft weak-labels
--scorer FOLDER`` (``load_scorer``) reads like a downloaded BiomedCLIP.
"""

from __future__ import annotations

from pathlib import Path


def train_scorer(out: Path, *, n_images: int, epochs: int, seed: int, progress: bool) -> Path:
    """Pre-train ``medpeft demo``'s tiny CLIP on ``n_images`` captioned images for ``epochs``; returns ``out``."""
    import dataclasses

    from medpeft.demo.generalist import pretrain_from_settings
    from medpeft.demo.settings import DemoSettings

    settings = dataclasses.replace(DemoSettings(), n_generalist=n_images, generalist_epochs=epochs)
    return pretrain_from_settings(out, settings, seed=seed, progress=progress)
