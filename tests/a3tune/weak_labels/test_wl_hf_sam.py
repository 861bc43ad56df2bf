"""``hf-sam`` on a tiny random ``SamModel``: masks at the image size, tight boxes, transformers-equal filters,
the authors' crop layout, and the segment_anything semantics of every AMG helper."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medpeft.a3tune.weak_labels import AmgSettings, amg, mask_bbox
from medpeft.a3tune.weak_labels.hf_sam_proposer import HfSamProposer

OPEN = AmgSettings(pred_iou_thresh=0.0, stability_score_thresh=0.0, min_mask_region_area=0)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    rng = np.random.default_rng(0)
    img = (rng.random((96, 128, 3)) * 80).astype(np.uint8)
    img[20:60, 30:90] = 230
    return img


@pytest.fixture(scope="module")
def proposer() -> HfSamProposer:
    return HfSamProposer.from_pretrained("random-tiny", settings=OPEN, seed=0)


def test_masks_have_the_image_size_and_tight_boxes(proposer, image):
    masks = proposer.propose(image)
    assert masks, "the open settings must keep some masks"
    for m in masks:
        assert m.seg.shape == image.shape[:2] and m.seg.dtype == bool
        assert m.seg.any()
        assert m.bbox == mask_bbox(m.seg)
        assert m.area == int(m.seg.sum())


def test_authors_settings_run_one_crop_layer_with_point_downscale_2(image):
    calls = []

    class Spy(HfSamProposer):
        def crop_logits(self, crop, points):
            calls.append((crop.shape[:2], len(points)))
            return super().crop_logits(crop, points)

    model_proposer = HfSamProposer.from_pretrained("random-tiny")
    spy = Spy(model_proposer.model, model_proposer.processor, AmgSettings())
    out = spy.propose(image)
    assert [n for _, n in calls] == [64, 16, 16, 16, 16]  # 8² on the image, 4² on each of the 2x2 crops
    assert calls[0][0] == (96, 128) and all(h < 96 and w < 128 for (h, w), _ in calls[1:])
    assert all(m.area >= 1 for m in out)


def test_iou_and_stability_filter_equals_transformers_filter_masks(proposer, image):
    from transformers.models.sam.image_processing_sam import _compute_stability_score

    h, w = image.shape[:2]
    logits, iou = proposer.crop_logits(image, amg.point_grid(8) * np.array([[w, h]]))
    stab = _compute_stability_score(logits, 0.0, 1.0)
    assert torch.equal(amg.stability_score(logits, 0.0, 1.0), stab)
    # thresholds strictly between observed values, so '>' (transformers) and '>=' (segment_anything) agree
    iou_t = float(iou.median()) - 1e-9
    s_vals = torch.unique(stab[torch.isfinite(stab)])
    stab_t = float((s_vals[len(s_vals) // 4] + s_vals[len(s_vals) // 4 + 1]) / 2) if len(s_vals) > 1 else 0.0
    settings = AmgSettings(pred_iou_thresh=iou_t, stability_score_thresh=stab_t)
    mine = HfSamProposer(proposer.model, proposer.processor, settings)
    kept_logits, kept_iou, _, idx = mine.filter_logits(logits, iou)
    _, hf_scores, hf_boxes = proposer.processor.filter_masks(
        logits[None], iou[None], (h, w), [0, 0, w, h], pred_iou_thresh=iou_t, stability_score_thresh=stab_t,
        mask_threshold=0.0, stability_score_offset=1.0,
    )  # fmt: skip
    assert 0 < len(idx) < len(iou)
    assert torch.equal(kept_iou, hf_scores)  # same masks kept, in the same order
    binary = kept_logits > 0
    nonempty = binary.flatten(1).any(1)
    assert torch.equal(amg.boxes_xyxy(binary[nonempty]), hf_boxes[nonempty].long())


def test_amg_helpers_match_segment_anything():
    sam_amg = pytest.importorskip("segment_anything.utils.amg", reason="segment-anything not installed")
    for size in [(256, 256), (96, 128), (300, 200)]:
        assert amg.crop_boxes(size, 1, 512 / 1500) == sam_amg.generate_crop_boxes(size, 1, 512 / 1500)
    for mine, ref in zip(
        amg.layer_point_grids(8, 1, 2), sam_amg.build_all_layer_point_grids(8, 1, 2), strict=True
    ):
        np.testing.assert_array_equal(mine, ref)
    rng = np.random.default_rng(0)
    masks = torch.as_tensor(rng.random((6, 40, 50)) < 0.05)
    masks[:, 5:30, 10:40] = True
    assert torch.equal(amg.boxes_xyxy(masks), sam_amg.batched_mask_to_box(masks))
    boxes = torch.tensor([[0, 0, 10, 10], [30, 5, 60, 40], [100, 100, 140, 139]])
    for crop in ([0, 0, 140, 140], [20, 0, 100, 100]):
        assert torch.equal(
            amg.near_crop_edge(boxes, crop, [0, 0, 140, 140]),
            sam_amg.is_box_near_crop_edge(boxes, crop, [0, 0, 140, 140]),
        )


def test_small_region_cleanup_matches_segment_anything():
    pytest.importorskip("cv2", reason="opencv is needed by segment_anything's clean-up")
    sam_amg = pytest.importorskip("segment_anything.utils.amg", reason="segment-anything not installed")
    rng = np.random.default_rng(1)
    for trial in range(6):
        mask = rng.random((64, 64)) < 0.08
        mask[10:40, 10:40] = True
        mask[20:23, 20:23] = trial % 2 == 0  # a small hole, sometimes
        for mode in ("holes", "islands"):
            for area in (5, 50, 2000):
                mine, changed = amg.remove_small_regions(mask, area, mode)
                ref, ref_changed = sam_amg.remove_small_regions(mask, area, mode)
                assert changed == ref_changed and np.array_equal(mine, ref), (trial, mode, area)


def test_checkpoint_errors():
    from medpeft.a3tune.weak_labels.hf_sam_proposer import load_hf_sam
    from medpeft.errors import CheckpointError

    with pytest.raises(CheckpointError, match="unknown random SAM preset"):
        load_hf_sam("random-huge")


@pytest.mark.parametrize("shape", [(64, 64), (96, 128)])
def test_same_weights_give_segment_anythings_masks(shape):
    """The whole loop against ``SamAutomaticMaskGenerator`` on one set of weights (tiny SAM, decoder weights
    drawn N(0, 1) so masks depend on the prompt). At the encoder's own size (64²) no resize happens and the
    masks are identical; at 96x128 the two resize implementations (PIL on uint8 vs torchvision) differ a
    little, so masks agree to IoU >= 0.99."""
    pytest.importorskip("cv2", reason="segment_anything's clean-up needs opencv")
    from test_wl_sam import tiny_sam
    from wl_helpers import sam_to_hf_state

    from medpeft.a3tune.weak_labels.hf_sam_proposer import random_sam
    from medpeft.a3tune.weak_labels.sam_proposer import SamProposer

    sam = tiny_sam()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in sam.named_parameters():
            if not name.startswith("image_encoder"):
                p.copy_(torch.randn(p.shape, generator=gen))
    hf, processor = random_sam("random-tiny")
    missing, unexpected = hf.load_state_dict(sam_to_hf_state(sam.state_dict()), strict=False)
    assert not missing and not unexpected
    image = (np.random.default_rng(0).random((*shape, 3)) * 255).astype(np.uint8)
    exact = shape == (64, 64)
    for settings in (
        AmgSettings(stability_score_thresh=0.01, pred_iou_thresh=0.0, box_nms_thresh=0.95, crop_nms_thresh=0.95,
                    min_mask_region_area=20),  # one crop layer, downscale 2, clean-up
        AmgSettings(stability_score_thresh=0.01, pred_iou_thresh=0.0, crop_n_layers=0, min_mask_region_area=0),
    ):  # fmt: skip
        ref = SamProposer(sam, settings).propose(image)
        mine = HfSamProposer(hf, processor, settings).propose(image)
        assert len(ref) == len(mine) >= 1
        if not exact:
            mine = sorted(mine, key=lambda m: m.bbox)
            ref = sorted(ref, key=lambda m: m.bbox)
        for a, b in zip(ref, mine, strict=True):
            assert a.bbox == b.bbox
            iou = (a.seg & b.seg).sum() / (a.seg | b.seg).sum()
            assert iou == 1.0 if exact else iou >= 0.99
            assert abs(a.predicted_iou - b.predicted_iou) < (1e-4 if exact else 1e-2)
            assert abs(a.stability_score - b.stability_score) < (1e-6 if exact else 5e-3)
