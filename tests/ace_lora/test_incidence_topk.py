"""The top-k scatter in ``incidence_matrix`` equals the boolean keep-mask it replaced, bit for bit, in
values and gradients (the published semantics: keep each row's top-k, -inf elsewhere, softmax)."""

from __future__ import annotations

import torch

from medpeft.ace_lora.hypergraph import incidence_matrix


def _masked_reference(scores: torch.Tensor, top_k: int) -> torch.Tensor:
    keep = torch.zeros_like(scores, dtype=torch.bool).scatter_(-1, scores.topk(top_k, dim=-1).indices, True)
    return scores.masked_fill(~keep, float("-inf")).softmax(dim=-1)


def _scattered(scores: torch.Tensor, top_k: int) -> torch.Tensor:
    top = scores.topk(top_k, dim=-1)
    return torch.full_like(scores, float("-inf")).scatter(-1, top.indices, top.values).softmax(dim=-1)


def test_scatter_equals_keep_mask_bit_for_bit():
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(3, 17, 17, generator=g)
    scores[:, 2:, 0] = float("-inf")  # excluded entries, as in the incidence
    for k in (1, 5, 17):
        a = scores.clone().requires_grad_(True)
        b = scores.clone().requires_grad_(True)
        ra, rb = _masked_reference(a, k), _scattered(b, k)
        assert torch.equal(ra, rb), k
        w = torch.randn(ra.shape, generator=g)
        (ra * w).sum().backward()
        (rb * w).sum().backward()
        assert torch.equal(a.grad, b.grad), k


def test_incidence_rows_keep_exactly_top_k():
    g = torch.Generator().manual_seed(1)
    tokens = torch.randn(2, 12, 8, generator=g)
    affinity = torch.randn(2, 11, generator=g)
    a = incidence_matrix(tokens, affinity, top_k=5)
    assert a.shape == (2, 12, 12)
    off_diag = a.masked_fill(torch.eye(12, dtype=torch.bool), 0.0)
    # rows 1..: top-5 among tokens 1.. (not self, not [CLS]); the diagonal is then set to 1
    assert ((off_diag[:, 1:, 1:] > 0).sum(-1) == 5).all()
    assert torch.allclose(off_diag[:, 1:, 1:].sum(-1), torch.ones(2, 11))
    assert torch.equal(a[:, 1:, 0], a[:, 0, 1:])  # column 0 mirrors row 0
