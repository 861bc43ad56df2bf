"""The demo's data: synthetic raw datasets written by ``synthesize`` and turned into manifests by ``prepare``.

Why through the raw layouts: the demo is meant to show the real path (JPEG trees, DICOMs, RLE masks,
report text and the readers that parse them), not an in-memory shortcut; a user can afterwards point
``medpeft train``/``medpeft eval`` at the same folders.
"""

from __future__ import annotations

from pathlib import Path

from medpeft.demo.settings import EVAL_DATASETS, TRAIN_DATASET, DemoSettings

RAW_DIR = "raw"
PREPARED_DIR = "prepared"


def synth_size(dataset: str, settings: DemoSettings) -> int:
    """``synthesize``'s ``n`` for ``dataset`` (images; per class for chexpert-5x200)."""
    return {
        TRAIN_DATASET: settings.n_mimic,
        "chexpert-5x200": settings.n_chexpert_per_class,
        "rsna": settings.n_rsna,
        "siim": settings.n_siim,
    }[dataset]


def make_dataset(dataset: str, root: Path, settings: DemoSettings, seed: int, progress: bool = True) -> Path:
    """Synthesize ``dataset`` under ``root/raw`` and prepare it into ``root/prepared``; returns the latter."""
    from medpeft.data.prepare import prepare
    from medpeft.data.synthetic import synthesize

    raw = root / RAW_DIR / dataset
    prepared = root / PREPARED_DIR / dataset
    n = synth_size(dataset, settings)
    synthesize(dataset, raw, n=n, seed=seed, image_size=settings.image_size, progress=progress)
    options = {"n_per_class": n} if dataset == "chexpert-5x200" else {}
    prepare(dataset, raw, prepared, image_size=settings.image_size, seed=seed, progress=progress, **options)
    return prepared


def make_all(root: Path, settings: DemoSettings, seed: int, progress: bool = True) -> dict[str, Path]:
    """The training set and the three held-out sets: ``{dataset: prepared folder}``."""
    return {d: make_dataset(d, root, settings, seed, progress) for d in (TRAIN_DATASET, *EVAL_DATASETS)}
