"""Fixtures of the serve tests: two tiny models (base and an adapter that changes the outputs) and
synthetic uploads (PNG, DICOM, and bad files). Gradio telemetry is off for every test here."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # before any test imports gradio

from serve_helpers import write_dicom, write_png  # noqa: E402


@pytest.fixture(scope="session")
def serve_models(tiny_backbone) -> dict:
    """``{"base": frozen tiny BiomedCLIP, "ace-lora": ACE-LoRA with non-zero LoRA B}``, in eval mode."""
    import torch

    from medpeft.ace_lora.config import AceLoraConfig
    from medpeft.ace_lora.model import AceLoraModel

    base = AceLoraModel(
        copy.deepcopy(tiny_backbone), AceLoraConfig(lora_encoders=(), hgnn=(), learn_logit_scale=False)
    )
    adapted = AceLoraModel(copy.deepcopy(tiny_backbone), AceLoraConfig())
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in adapted.named_parameters():
            if ".lora_B." in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    return {"base": base.eval(), "ace-lora": adapted.eval()}


@pytest.fixture(scope="session")
def uploads(tmp_path_factory) -> dict[str, Path]:
    """Good and bad files as a browser would upload them."""
    root = tmp_path_factory.mktemp("uploads")
    files = {
        "png": write_png(root / "chest.png", seed=1),
        "rgb": write_png(root / "slide.png", seed=2, mode="RGB"),
        "dicom": write_dicom(root / "scan.dcm", seed=3),
        "text": root / "notes.png",
        "empty": root / "empty.png",
        "no_pixels": write_dicom(root / "header_only.dcm", seed=4, pixels=False),
    }
    files["text"].write_text("this is a text file renamed to .png\n")
    files["empty"].write_bytes(b"")
    return files
