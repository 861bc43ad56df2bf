"""Contrastive losses and the label mask."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from medpeft.ace_lora.losses import contrastive_loss, gather_batch, same_label_mask


def test_same_label_mask():
    labels = torch.tensor([[1, 0], [1, 0], [0, 1], [0, 0]])
    mask = same_label_mask(labels)
    expected = torch.zeros(4, 4, dtype=torch.bool)
    expected[0, 1] = expected[1, 0] = True
    assert torch.equal(mask, expected)
    assert not same_label_mask(torch.tensor([3, 3])).diagonal().any()


def test_plain_loss_matches_manual():
    torch.manual_seed(0)
    img, txt = F.normalize(torch.randn(5, 8), dim=-1), F.normalize(torch.randn(5, 8), dim=-1)
    scale = torch.tensor(10.0)
    logits = scale * img @ txt.t()
    manual = -(logits.log_softmax(1).diagonal().mean() + logits.t().log_softmax(1).diagonal().mean()) / 2
    torch.testing.assert_close(contrastive_loss(img, txt, scale), manual)


def test_label_guided_removes_false_negatives():
    torch.manual_seed(0)
    img, txt = F.normalize(torch.randn(4, 8), dim=-1), F.normalize(torch.randn(4, 8), dim=-1)
    labels = torch.tensor([[1, 0], [1, 0], [0, 1], [0, 0]])
    scale = torch.tensor(5.0)
    logits = scale * img @ txt.t()
    masked = logits.clone()
    masked[0, 1] = masked[1, 0] = float("-inf")
    target = torch.arange(4)
    manual = (F.cross_entropy(masked, target) + F.cross_entropy(masked.t(), target)) / 2
    torch.testing.assert_close(contrastive_loss(img, txt, scale, labels), manual)
    # Distinct labels everywhere -> identical to the plain loss.
    distinct = torch.eye(4)
    torch.testing.assert_close(contrastive_loss(img, txt, scale, distinct), contrastive_loss(img, txt, scale))


def test_gather_is_identity_without_distributed():
    x = torch.randn(3, 2)
    out = gather_batch(x, None)
    assert out[0] is x and out[1] is None
