"""The authors' filters on table-driven edge cases (A3TUNE.md §A.2)."""

from __future__ import annotations

import numpy as np
import pytest

from medpeft.a3tune.weak_labels import FilterSettings, Mask, filter_masks, keep_mask


def box_mask(x: int, y: int, w: int, h: int, area: int | None = None) -> Mask:
    return Mask(np.zeros((256, 256), bool), (x, y, w, h), area if area is not None else w * h)


@pytest.mark.parametrize(
    ("box", "area", "kept", "why"),
    [
        ((0, 50, 30, 30), None, False, "x == 0 touches the left edge"),
        ((50, 0, 30, 30), None, False, "y == 0 touches the top edge"),
        ((1, 1, 30, 30), None, True, "x = y = 1 is off the edge"),
        ((50, 50, 12, 30), None, False, "w == 12 is too thin"),
        ((50, 50, 13, 30), None, True, "w == 13 is kept"),
        ((50, 50, 30, 12), None, False, "h == 12 is too thin"),
        ((50, 50, 30, 13), None, True, "h == 13 is kept"),
        ((223, 50, 30, 30), None, True, "x + w == 253 is kept"),
        ((224, 50, 30, 30), None, False, "x + w == 254 is past the right margin"),
        ((50, 223, 30, 30), None, True, "y + h == 253 is kept"),
        ((50, 224, 30, 30), None, False, "y + h == 254 is past the bottom margin"),
        ((20, 20, 200, 200), 39999, True, "area 39999 is kept"),
        ((20, 20, 200, 200), 40000, False, "area 40000 is dropped"),
    ],
)
def test_authors_filters(box, area, kept, why):
    assert keep_mask(box_mask(*box, area=area)) is kept, why


def test_each_filter_can_be_switched_off_and_order_is_kept():
    masks = [
        box_mask(0, 5, 30, 30),  # left edge
        box_mask(5, 5, 5, 30),  # thin
        box_mask(240, 50, 30, 30),  # past the right margin
        box_mask(9, 9, 200, 200, area=40000),  # too large
        box_mask(9, 9, 40, 40),  # passes
    ]
    assert filter_masks(masks) == [masks[4]]
    off = FilterSettings(max_area=None, drop_top_left=False, min_side=None, edge=None)
    assert filter_masks(masks, off) == masks
    assert filter_masks(masks, FilterSettings(drop_top_left=False)) == [masks[0], masks[4]]
    assert filter_masks(masks, FilterSettings(min_side=None)) == [masks[1], masks[4]]
    assert filter_masks(masks, FilterSettings(edge=None)) == [masks[2], masks[4]]
    assert filter_masks(masks, FilterSettings(max_area=None)) == [masks[3], masks[4]]
    assert filter_masks(masks, FilterSettings(max_area=1600)) == []
