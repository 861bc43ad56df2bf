"""``sam``: segment_anything's generator on a tiny random ``Sam`` built from the package's own classes;
safe checkpoint loading and architecture detection; the install hint when the package is missing."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from medpeft.a3tune.weak_labels import AmgSettings, make_proposer, mask_bbox
from medpeft.errors import CheckpointError, ConfigError


def tiny_sam():
    modeling = pytest.importorskip(
        "segment_anything.modeling", reason="segment-anything not installed (pip install 'medpeft[sam]')"
    )
    torch.manual_seed(0)
    encoder = modeling.ImageEncoderViT(
        img_size=64, patch_size=16, embed_dim=32, depth=2, num_heads=2, mlp_ratio=2.0, out_chans=16,
        qkv_bias=True, use_rel_pos=True, window_size=2, global_attn_indexes=(1,),
    )  # fmt: skip
    prompt = modeling.PromptEncoder(
        embed_dim=16, image_embedding_size=(4, 4), input_image_size=(64, 64), mask_in_chans=4
    )
    decoder = modeling.MaskDecoder(
        num_multimask_outputs=3,
        transformer=modeling.TwoWayTransformer(depth=2, embedding_dim=16, mlp_dim=32, num_heads=2),
        transformer_dim=16,
        iou_head_depth=3,
        iou_head_hidden_dim=16,
    )
    return modeling.Sam(encoder, prompt, decoder, [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]).eval()


def test_generator_masks_have_the_image_size_and_tight_boxes():
    pytest.importorskip("cv2", reason="segment_anything's min-area clean-up needs opencv")
    from medpeft.a3tune.weak_labels.sam_proposer import SamProposer

    rng = np.random.default_rng(0)
    image = (rng.random((96, 128, 3)) * 80).astype(np.uint8)
    image[20:60, 30:90] = 230
    proposer = SamProposer(tiny_sam(), AmgSettings(pred_iou_thresh=0.0, stability_score_thresh=0.0))
    assert proposer.generator.crop_n_layers == 1 and proposer.generator.points_per_batch == 128
    assert [len(g) for g in proposer.generator.point_grids] == [64, 16]
    masks = proposer.propose(image)
    assert masks
    for m in masks:
        assert m.seg.shape == (96, 128) and m.seg.dtype == bool
        assert m.bbox == mask_bbox(m.seg)
        assert m.area == int(m.seg.sum())


def test_arch_is_detected_from_shapes():
    pytest.importorskip("segment_anything", reason="segment-anything not installed")
    from medpeft.a3tune.weak_labels.sam_proposer import PATCH_EMBED_KEY, detect_arch

    for width, arch in ((1280, "vit_h"), (1024, "vit_l"), (768, "vit_b")):
        assert detect_arch({PATCH_EMBED_KEY: torch.zeros(width, 3, 1, 1)}) == arch
    with pytest.raises(CheckpointError, match="width 512"):
        detect_arch({PATCH_EMBED_KEY: torch.zeros(512, 3, 1, 1)})
    with pytest.raises(CheckpointError, match="not a SAM checkpoint"):
        detect_arch({"other": torch.zeros(1)})


class Payload:
    """Not a tensor: a weights_only load must refuse it."""


def test_checkpoint_is_loaded_safely(tmp_path):
    pytest.importorskip("segment_anything", reason="segment-anything not installed")
    bad = tmp_path / "evil.pth"
    torch.save({"image_encoder.patch_embed.proj.weight": torch.zeros(768, 3, 1, 1), "x": Payload()}, bad)
    with pytest.raises(CheckpointError, match="refused to load"):
        make_proposer("sam", str(bad))
    other = tmp_path / "other.pth"
    torch.save({"weight": torch.zeros(2)}, other)
    with pytest.raises(CheckpointError, match="not a SAM checkpoint"):
        make_proposer("sam", str(other))
    with pytest.raises(CheckpointError, match="not found"):
        make_proposer("sam", str(tmp_path / "missing.pth"))
    with pytest.raises(ConfigError, match="--checkpoint"):
        make_proposer("sam", None)


def test_missing_package_names_the_extra(monkeypatch):
    from medpeft.a3tune.weak_labels.sam_proposer import require_segment_anything

    monkeypatch.setitem(sys.modules, "segment_anything", None)  # makes `import segment_anything` fail
    with pytest.raises(ConfigError, match=r"pip install 'medpeft\[sam\]'"):
        require_segment_anything()


def test_no_surviving_mask_is_an_empty_list_not_a_crash():
    pytest.importorskip("cv2", reason="segment_anything's min-area clean-up needs opencv")
    from medpeft.a3tune.weak_labels.sam_proposer import SamProposer

    image = np.full((64, 64, 3), 128, np.uint8)
    # segment_anything 1.0 itself raises IndexError here (cross-crop NMS on no boxes)
    assert SamProposer(tiny_sam(), AmgSettings(pred_iou_thresh=0.999)).propose(image) == []


def vit_b_width_sam():
    """A one-block SAM whose patch embedding has ViT-B's width (768), so the checkpoint reads as vit_b."""
    modeling = pytest.importorskip("segment_anything.modeling", reason="segment-anything not installed")
    torch.manual_seed(0)
    encoder = modeling.ImageEncoderViT(
        img_size=64, patch_size=16, embed_dim=768, depth=1, num_heads=12, mlp_ratio=1.0, out_chans=16,
        use_rel_pos=False, global_attn_indexes=(),
    )  # fmt: skip
    prompt = modeling.PromptEncoder(
        embed_dim=16, image_embedding_size=(4, 4), input_image_size=(64, 64), mask_in_chans=4
    )
    decoder = modeling.MaskDecoder(
        transformer=modeling.TwoWayTransformer(depth=1, embedding_dim=16, mlp_dim=32, num_heads=2),
        transformer_dim=16,
        iou_head_hidden_dim=16,
    )
    return modeling.Sam(encoder, prompt, decoder, [123.675, 116.28, 103.53], [58.395, 57.12, 57.375])


def test_checkpoint_round_trip_through_the_registry(tmp_path, monkeypatch):
    """``from_checkpoint``: weights_only load, arch read off the shapes, strict load, then proposals. The
    registry's vit_b builder is swapped for the one-block model above so the test need not build 90 M
    parameters; everything else is segment_anything's own code."""
    pytest.importorskip("cv2", reason="segment_anything's min-area clean-up needs opencv")
    import segment_anything

    reference = vit_b_width_sam()
    path = tmp_path / "sam_tiny_vit_b.pth"
    torch.save(reference.state_dict(), path)
    built = []

    def builder(checkpoint=None):
        assert checkpoint is None  # medpeft loads the weights itself, safely
        built.append(vit_b_width_sam())
        for p in built[-1].parameters():
            torch.nn.init.zeros_(p)  # must be overwritten by the checkpoint
        return built[-1]

    monkeypatch.setitem(segment_anything.sam_model_registry, "vit_b", builder)
    proposer = make_proposer(
        "sam", str(path), settings=AmgSettings(pred_iou_thresh=0.0, stability_score_thresh=0.0)
    )
    assert proposer.describe()["checkpoint"] == "sam_tiny_vit_b.pth (vit_b)"
    for (name, a), b in zip(reference.state_dict().items(), built[0].state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    image = np.random.default_rng(0).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    assert all(m.seg.shape == (64, 64) for m in proposer.propose(image))
