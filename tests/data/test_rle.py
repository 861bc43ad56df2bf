"""SIIM-ACR relative run-length encoding: format, round trips and clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from medpeft.data.rle import is_empty_rle, merge_rles, rle_decode, rle_encode
from medpeft.errors import DataError


def reference_rle2mask(rle: str, width: int, height: int) -> np.ndarray:
    """The competition's own ``mask_functions.rle2mask`` (followed by ``.T`` as its kernels did)."""
    mask = np.zeros(width * height)
    array = np.asarray([int(x) for x in rle.split()])
    starts, lengths = array[0::2], array[1::2]
    current = 0
    for index, start in enumerate(starts):
        current += start
        mask[current : current + lengths[index]] = 255
        current += lengths[index]
    return mask.reshape(width, height).T > 0


def test_known_example_is_column_major_and_relative():
    mask = np.zeros((5, 4), dtype=bool)
    mask[1:3, 1] = True  # column 1, rows 1-2 -> flat (column-major) pixels 6, 7
    mask[4, 3] = True  # column 3, row 4 -> flat pixel 19, i.e. 11 after the end (8) of the first run
    assert rle_encode(mask) == "6 2 11 1"
    assert np.array_equal(rle_decode("6 2 11 1", 5, 4), mask)


@pytest.mark.parametrize("shape", [(7, 5), (32, 32), (16, 40)])
def test_round_trip_random_masks_and_agree_with_the_competition_decoder(shape):
    rng = np.random.default_rng(sum(shape))
    for density in (0.02, 0.3, 0.9):
        mask = rng.random(shape) < density
        rle = rle_encode(mask)
        assert np.array_equal(rle_decode(rle, *shape), mask)
        assert np.array_equal(reference_rle2mask(rle, shape[1], shape[0]), mask)


def test_runs_touching_the_image_ends_round_trip():
    mask = np.zeros((6, 6), dtype=bool)
    mask[0, 0] = True
    mask[:, -1] = True  # the last run ends exactly at the last pixel
    assert np.array_equal(rle_decode(rle_encode(mask), 6, 6), mask)
    full = np.ones((3, 4), dtype=bool)
    assert rle_encode(full) == "0 12"


@pytest.mark.parametrize("empty", ["-1", " -1", "", None, float("nan")])
def test_empty_markers(empty):
    assert is_empty_rle(empty)
    assert not merge_rles([empty], 4, 4).any()


def test_empty_mask_encodes_as_minus_one_and_decodes_empty():
    assert rle_encode(np.zeros((4, 4), dtype=bool)) == "-1"
    assert not rle_decode(" -1", 4, 4).any()


def test_merge_is_the_union_of_rows():
    a = np.zeros((8, 8), dtype=bool)
    b = np.zeros((8, 8), dtype=bool)
    a[1:3, 1:3] = True
    b[5:7, 4:8] = True
    merged = merge_rles([" " + rle_encode(a), rle_encode(b), " -1"], 8, 8)
    assert np.array_equal(merged, a | b)


@pytest.mark.parametrize(
    ("rle", "message"),
    [
        ("3 4 5", "odd number"),
        ("3 -4", "negative"),
        ("3 x", "non-integer"),
        ("1.5 2", "non-integer"),
        ("10 7", "past the end"),
        ("0 10 0 7", "past the end"),
    ],
)
def test_malformed_strings_raise_data_error(rle, message):
    with pytest.raises(DataError, match=message):
        rle_decode(rle, 4, 4)


def test_encode_rejects_non_2d():
    with pytest.raises(DataError, match="2-D"):
        rle_encode(np.zeros((2, 2, 2), dtype=bool))
