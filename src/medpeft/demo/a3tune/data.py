"""The demo's data: synthetic SLAKE-layout chest X-ray VQA written by ``synthesize``, prepared by ``prepare``.

Through the raw layout (as ``medpeft synth slake`` + ``medpeft prepare slake``), so the conversation manifests
carry each image's true ``lesion_mask``. Two independent draws: one to train the generalist, one to adapt
and evaluate (its ``train`` and ``test`` splits never share an image).
"""

from __future__ import annotations

from pathlib import Path

RAW_DIR = "raw"
PREPARED_DIR = "prepared"
DATASET = "slake"


def make_vqa(root: Path, name: str, n_images: int, image_size: int, seed: int, progress: bool) -> Path:
    """Synthesize ``n_images`` SLAKE-layout images under ``root/raw/name`` and prepare them; returns the folder."""
    from medpeft.data.prepare import prepare
    from medpeft.data.synthetic import synthesize

    raw = root / RAW_DIR / name
    prepared = root / PREPARED_DIR / name
    synthesize(DATASET, raw, n=n_images, seed=seed, image_size=image_size, progress=progress)
    prepare(DATASET, raw, prepared, seed=seed, progress=progress)
    return prepared
