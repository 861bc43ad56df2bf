"""Masked crops and the 100·cos ranking, against hand computations (A3TUNE.md §A.3)."""

from __future__ import annotations

import numpy as np
import torch

from medpeft.a3tune.weak_labels import (
    CropScorer,
    make_mask,
    masked_crop,
    masked_crops,
    rank_crops,
    score_crops,
)


def test_crop_zeroes_outside_the_mask_and_has_the_box_shape():
    rng = np.random.default_rng(0)
    image = rng.integers(1, 256, size=(64, 80, 3), dtype=np.uint8)  # no zero pixel anywhere
    seg = np.zeros((64, 80), bool)
    seg[10:30, 20:50] = True
    seg[12:18, 25:30] = False  # a hole
    seg[40, 60] = True  # a stray pixel widens the box
    mask = make_mask(seg)
    assert mask.bbox == (20, 10, 60 - 20, 40 - 10)  # segment_anything XYWH: w = x_max - x_min
    crop = masked_crop(image, mask)
    x, y, w, h = mask.bbox
    assert crop.shape == (h, w, 3)
    inside = seg[y : y + h, x : x + w]
    assert np.array_equal(crop[inside], image[y : y + h, x : x + w][inside])
    assert not crop[~inside].any()
    assert [c.shape for c in masked_crops(image, [mask, mask])] == [(h, w, 3)] * 2


UNIT = {1: (1.0, 0.0), 2: (0.6, 0.8), 3: (0.0, 1.0), 4: (-1.0, 0.0), 5: (0.8, 0.6)}


def index_scorer() -> CropScorer:
    """Crop i is filled with value i; its embedding is the known unit vector UNIT[i]; the text is (0.8, 0.6)."""

    def preprocess(pil):
        return torch.tensor([float(np.asarray(pil).max())])

    return CropScorer(
        encode_image=lambda px: torch.tensor([UNIT[int(v)] for v in px[:, 0]]),
        encode_text=lambda ids: torch.tensor([[0.8, 0.6]]),
        preprocess=preprocess,
        tokenizer=lambda texts: torch.zeros(len(texts), 1, dtype=torch.long),
        batch_size=2,  # several batches
    )


def test_scores_and_ranking_equal_a_hand_computation():
    crops = [np.full((4, 5, 3), v, np.uint8) for v in (1, 2, 3, 4, 5)]
    scores = score_crops(index_scorer(), crops, "query")
    hand = [100 * (0.8 * a + 0.6 * b) for a, b in (UNIT[v] for v in (1, 2, 3, 4, 5))]  # 80, 96, 60, -80, 100
    np.testing.assert_allclose(scores, hand, rtol=0, atol=1e-4)
    assert rank_crops(scores, 3).tolist() == [4, 1, 0]
    assert rank_crops(scores, 10).tolist() == [4, 1, 0, 2, 3]


def test_ranking_is_stable_on_ties_and_equals_argsort():
    scores = np.array([3.0, 5.0, 3.0, 5.0, 1.0, 3.0])
    assert rank_crops(scores, 4).tolist() == [1, 3, 0, 2]
    rng = np.random.default_rng(1)
    s = rng.integers(0, 4, size=50).astype(float)
    assert rank_crops(s, 8).tolist() == np.argsort(-s, kind="stable")[:8].tolist()
    assert rank_crops(s, 0).tolist() == []


def test_bgr_flips_the_channels_before_preprocessing():
    seen = []

    def preprocess(pil):
        seen.append(np.asarray(pil)[0, 0].tolist())
        return torch.zeros(1)

    scorer = CropScorer(
        encode_image=lambda px: torch.ones(len(px), 2),
        encode_text=lambda ids: torch.ones(1, 2),
        preprocess=preprocess,
        tokenizer=lambda texts: torch.zeros(1, 1, dtype=torch.long),
    )
    crop = np.zeros((2, 2, 3), np.uint8)
    crop[..., 0], crop[..., 2] = 10, 200
    score_crops(scorer, [crop], "q")
    score_crops(scorer, [crop], "q", bgr=True)
    assert seen == [[10, 0, 200], [200, 0, 10]]
