"""Masks → image-token grid: full and quadrant masks, and the authors' chain bit for bit (A3TUNE.md §A.4)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision import transforms as T

from medpeft.a3tune.weak_labels import to_token_grid


def authors_chain(mask: np.ndarray, grid: int, n_px: int = 224) -> torch.Tensor:
    chain = T.Compose(
        [
            T.ToPILImage(),
            T.Resize(n_px, interpolation=T.InterpolationMode.NEAREST),
            T.CenterCrop(n_px),
            T.Resize(grid, interpolation=T.InterpolationMode.NEAREST),
            T.ToTensor(),
        ]
    )
    return chain(torch.tensor(mask, dtype=torch.float32))[0]


@pytest.mark.parametrize("grid", [16, 24, 14])
def test_official_equals_the_torchvision_chain_bit_for_bit(grid):
    rng = np.random.default_rng(grid)
    masks = rng.random((4, 256, 256)) < np.array([0.02, 0.3, 0.5, 0.9])[:, None, None]
    out = to_token_grid(masks.astype(np.uint8), grid, mode="official")
    ref = torch.stack([authors_chain(m, grid) for m in masks])
    assert out.dtype == torch.float32 and out.shape == (4, grid, grid)
    assert torch.equal(out, ref)


def test_official_on_a_non_square_mask_follows_resize_then_centre_crop():
    rng = np.random.default_rng(3)
    masks = rng.random((2, 200, 300)) < 0.4
    assert torch.equal(
        to_token_grid(masks, 16, mode="official"), torch.stack([authors_chain(m, 16) for m in masks])
    )


@pytest.mark.parametrize("mode", ["official", "aligned"])
@pytest.mark.parametrize("grid", [16, 24])
def test_full_mask_is_all_ones_and_a_quadrant_is_its_block(mode, grid):
    full = np.ones((1, 256, 256), np.uint8)
    assert torch.equal(to_token_grid(full, grid, mode=mode), torch.ones(1, grid, grid))
    for qy in (0, 1):
        for qx in (0, 1):
            m = np.zeros((1, 256, 256), np.uint8)
            m[0, qy * 128 : (qy + 1) * 128, qx * 128 : (qx + 1) * 128] = 1
            want = torch.zeros(1, grid, grid)
            h = grid // 2
            want[0, qy * h : (qy + 1) * h, qx * h : (qx + 1) * h] = 1
            assert torch.equal(to_token_grid(m, grid, mode=mode), want), (qy, qx)


def test_aligned_geometry_of_a_wide_image():
    # masks of a 2:1 image (squashed to 256²); the left half of the image is masked
    m = np.zeros((1, 256, 256), np.uint8)
    m[0, :, :128] = 1
    size = (512, 256)
    crop = to_token_grid(m, 16, image_size=size, geometry="crop")  # centre crop keeps the middle half
    assert torch.equal(crop[0, :, :8], torch.ones(16, 8)) and torch.equal(crop[0, :, 8:], torch.zeros(16, 8))
    pad = to_token_grid(m, 16, image_size=size, geometry="pad")  # rows 4..11 hold the image
    want = torch.zeros(16, 16)
    want[4:12, :8] = 1
    assert torch.equal(pad[0], want)
    squash = to_token_grid(m, 16, image_size=size, geometry="resize")[0]
    assert torch.equal(squash[:, :8], torch.ones(16, 8)) and torch.equal(squash[:, 8:], torch.zeros(16, 8))


def test_coverage_fraction_threshold_and_processor_geometry():
    from transformers import CLIPImageProcessor

    m = np.zeros((1, 224, 224), np.uint8)
    m[0, :7, :14] = 1  # half of the first 14x14 patch
    out = to_token_grid(m, 16, n_px=224)
    assert out[0, 0, 0] == 0.5 and out.sum() == 0.5
    assert to_token_grid(m, 16, n_px=224, threshold=0.5)[0, 0, 0] == 1.0
    proc = CLIPImageProcessor(size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336})
    full = np.ones((2, 256, 256), np.uint8)
    assert torch.equal(to_token_grid(full, 24, processor=proc, image_size=(400, 300)), torch.ones(2, 24, 24))


@pytest.mark.parametrize("pad", [False, True])
def test_aligned_grid_lands_where_the_processor_puts_the_pixels(pad):
    """A white rectangle on a 400x300 image: its mask, made on the squashed 256² copy, mapped by ``aligned``
    onto the 24x24 grid, covers the same patches as the rectangle's pixels in the processor's real output
    (CLIP resize + centre crop, or LLaVA pad-to-square), to within one pixel row per patch."""
    from PIL import Image
    from transformers import CLIPImageProcessor, LlavaImageProcessor

    w, h = 400, 300
    img = np.zeros((h, w, 3), np.uint8)
    img[60:180, 100:220] = 255
    mask = np.asarray(Image.fromarray(img[..., 0]).resize((256, 256), Image.Resampling.NEAREST)) > 0
    kwargs = {"size": {"shortest_edge": 336}, "crop_size": {"height": 336, "width": 336}}
    proc = LlavaImageProcessor(do_pad=True, **kwargs) if pad else CLIPImageProcessor(**kwargs)
    px = proc(images=Image.fromarray(img), return_tensors="pt")["pixel_values"][0, 0]
    white = (px > (px.min() + px.max()) / 2).float()
    coverage = torch.nn.functional.avg_pool2d(white[None, None], 14)[0, 0]
    grid = to_token_grid(mask[None], 24, processor=proc, image_size=(w, h))[0]
    assert (coverage - grid).abs().max() <= 1 / 14 + 1e-6
    assert torch.equal(coverage >= 0.5, grid >= 0.5)
    assert (grid >= 0.5).sum() == (49 if pad else 90)
