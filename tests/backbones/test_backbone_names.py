"""One parser for ``--backbone``: presets, hf-hub names, folders and timm names mean the same everywhere."""

from __future__ import annotations

import pytest

from medpeft.backbones.clip import load_backbone
from medpeft.backbones.names import BIOMEDCLIP_HUB_ID, BackboneName, parse_backbone_name
from medpeft.errors import CheckpointError, ConfigError


@pytest.mark.parametrize(
    "spec,expected",
    [
        ("biomedclip", BackboneName("preset", "biomedclip")),
        (BIOMEDCLIP_HUB_ID, BackboneName("preset", "biomedclip")),
        (f"hf-hub:{BIOMEDCLIP_HUB_ID}", BackboneName("preset", "biomedclip")),
        ("biomedclip-arch", BackboneName("preset", "biomedclip-arch")),
        ("tiny", BackboneName("preset", "tiny")),
        ("hf-hub:org/repo", BackboneName("hub", "org/repo")),
        ("timm:vit_small_patch16_224", BackboneName("timm", "vit_small_patch16_224")),
    ],
)
def test_names(spec, expected):
    assert parse_backbone_name(spec) == expected


def test_folder_and_errors(tmp_path):
    assert parse_backbone_name(tmp_path) == BackboneName("folder", str(tmp_path))
    with pytest.raises(CheckpointError, match="no-such/folder: no such backbone folder"):
        parse_backbone_name("no-such/folder")
    with pytest.raises(ConfigError, match="unknown backbone 'bioclip'"):
        parse_backbone_name("bioclip")
    with pytest.raises(ConfigError, match="timm:NAME needs a timm model name"):
        parse_backbone_name("timm:")


def test_timm_names_are_refused_by_the_clip_loader_with_the_reason():
    with pytest.raises(ConfigError, match="image-only backbone .*medpeft finetune"):
        load_backbone("timm:vit_small_patch16_224")
