"""Shared fixtures. ``../shared`` (beside the checkout) holds the parity fixtures; tests that need them skip
without them (users' clones), and fail instead under ``MEDPEFT_REQUIRE_PARITY=1`` (CI sets it)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = (REPO / ".." / "shared").resolve()
#: ``MEDPEFT_PARITY_DIR`` points elsewhere (e.g. a clone outside the workspace).
PARITY = Path(os.environ.get("MEDPEFT_PARITY_DIR") or SHARED / "parity").resolve()


def parity_required() -> bool:
    return os.environ.get("MEDPEFT_REQUIRE_PARITY", "0") not in ("", "0", "false", "False")


def _need_parity() -> Path:
    if not (PARITY / "ACE_LoRA.pt").is_file() or not (PARITY / "reference_seed0.pt").is_file():
        reason = (
            f"parity fixtures not found at {PARITY} (they live in ../shared/parity beside the checkout, "
            "or where MEDPEFT_PARITY_DIR points; users' clones do not have them)"
        )
        if parity_required():
            pytest.fail(f"MEDPEFT_REQUIRE_PARITY=1: {reason}", pytrace=False)
        pytest.skip(reason)
    return PARITY


@pytest.fixture(scope="session")
def parity_dir() -> Path:
    return _need_parity()


def load_fill_base():
    """Import ``fill_base`` from ../shared/parity/fill_base.py without copying it into the repo."""
    path = _need_parity() / "fill_base.py"
    spec = importlib.util.spec_from_file_location("medpeft_parity_fill_base", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.fill_base


@pytest.fixture(scope="session")
def reference(parity_dir) -> dict:
    return torch.load(parity_dir / "reference_seed0.pt", map_location="cpu", weights_only=True)


@pytest.fixture(scope="session")
def filled_arch_backbone(parity_dir):
    """biomedclip-arch with the deterministic stand-in base weights used by the reference outputs."""
    import medpeft

    bb = medpeft.load_backbone("biomedclip-arch")
    load_fill_base()(bb.clip, salt="")
    return bb


@pytest.fixture
def arch_copy(filled_arch_backbone):
    """A fresh deep copy (AceLoraModel injects LoRA into its backbone in place)."""
    import copy

    return copy.deepcopy(filled_arch_backbone)


@pytest.fixture(scope="session")
def released_model(filled_arch_backbone, parity_dir):
    """The released checkpoint on the filled architecture, in eval mode (the reference semantics)."""
    import copy

    import medpeft

    model = medpeft.AceLoraModel.from_pretrained(
        copy.deepcopy(filled_arch_backbone), parity_dir / "ACE_LoRA.pt"
    )
    return model.eval()


@pytest.fixture(scope="session")
def tiny_backbone():
    import medpeft

    return medpeft.load_backbone("tiny")
