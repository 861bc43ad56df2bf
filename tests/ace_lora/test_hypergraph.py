"""ACE-HGNN on inputs small enough to compute by hand."""

from __future__ import annotations

import math

import pytest
import torch

from medpeft.ace_lora.hypergraph import AceHGNN, Bottleneck, incidence_matrix
from medpeft.errors import ConfigError


def _tokens() -> torch.Tensor:
    # token 0 = [CLS]; tokens 1..3 unit vectors: 1 and 2 close, 3 orthogonal to 1.
    x = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [0.8, 0.6], [0.0, 1.0]]])
    return x


def test_incidence_matrix_by_hand():
    x = _tokens()
    w = torch.tensor([[0.5, 2.0, 1.0]])  # [CLS] affinity to tokens 1, 2, 3
    a = incidence_matrix(x, w, top_k=2)
    # Row 0 candidates: S00 = 0 (kept), 0.5, 2.0, 1.0 -> top-2 = tokens 2 and 3.
    e2, e1 = math.exp(2.0), math.exp(1.0)
    row0 = torch.tensor([1.0, 0.0, e2 / (e2 + e1), e1 / (e2 + e1)])  # diagonal forced to 1
    # Row 1: cos(1,2)=0.8, cos(1,3)=0 (self and [CLS] excluded) -> top-2 = {2, 3}
    r1 = torch.tensor([0.0, 1.0, math.exp(0.8) / (math.exp(0.8) + 1), 1 / (math.exp(0.8) + 1)])
    # Row 2: cos(2,1)=0.8, cos(2,3)=0.6 ; Row 3: cos(3,1)=0, cos(3,2)=0.6
    r2 = torch.tensor(
        [
            0.0,
            math.exp(0.8) / (math.exp(0.8) + math.exp(0.6)),
            1.0,
            math.exp(0.6) / (math.exp(0.8) + math.exp(0.6)),
        ]
    )
    r3 = torch.tensor([0.0, 1 / (1 + math.exp(0.6)), math.exp(0.6) / (1 + math.exp(0.6)), 1.0])
    expected = torch.stack([row0, r1, r2, r3])
    expected[1:, 0] = row0[1:]  # column 0 mirrors row 0
    torch.testing.assert_close(a[0], expected, atol=1e-6, rtol=0)


def test_row0_keeps_its_zero_score_against_negative_affinities():
    x = _tokens()
    w = torch.tensor([[-1.0, -2.0, -3.0]])
    a = incidence_matrix(x, w, top_k=2)
    # Top-2 of [0, -1, -2, -3] is {0 (self), token 1}: only token 1 enters row 0 off the diagonal.
    p1 = math.exp(-1.0) / (1 + math.exp(-1.0))
    torch.testing.assert_close(a[0, 0], torch.tensor([1.0, p1, 0.0, 0.0]), atol=1e-6, rtol=0)


def test_message_passing_matches_formula():
    torch.manual_seed(0)
    hgnn = AceHGNN(dim=2, width=3, top_k=2)
    x, w = _tokens(), torch.tensor([[0.5, 2.0, 1.0]])
    a = incidence_matrix(x, w, 2)
    e = hgnn.edge.up(torch.nn.functional.leaky_relu(hgnn.edge.down(a @ x), 0.2))
    v = hgnn.node.up(torch.nn.functional.leaky_relu(hgnn.node.down(a.transpose(1, 2) @ e), 0.2))
    torch.testing.assert_close(hgnn(x, w), v)
    emb = hgnn.embed(x, w)
    torch.testing.assert_close(emb, v[:, 0] / v[:, 0].norm(dim=-1, keepdim=True))


def test_mask_padding_keeps_padding_out_of_row0():
    x = torch.randn(1, 6, 4)
    w = torch.tensor([[0.1, 0.2, 5.0, 6.0, 7.0]])  # padding tokens (3..5) have the highest affinity
    valid = torch.tensor([[True, True, True, False, False, False]])
    a = incidence_matrix(x, w, top_k=2, valid=valid)
    assert a[0, 0, 3:].abs().max() == 0  # no padding token in the [CLS] hyperedge
    assert (a[0, 0, 1:3] > 0).all()
    unmasked = incidence_matrix(x, w, top_k=2)
    assert (unmasked[0, 0, 4:] > 0).all()  # the paper's default lets padding in


def test_bottleneck_shapes_and_names():
    b = Bottleneck(512, 128)
    assert sorted(n for n, _ in b.named_parameters()) == ["down.bias", "down.weight", "up.bias", "up.weight"]
    assert b(torch.zeros(2, 7, 512)).shape == (2, 7, 512)


def test_bad_arguments():
    x = torch.randn(2, 4, 3)
    with pytest.raises(ConfigError, match="affinity must have shape"):
        incidence_matrix(x, torch.randn(2, 4), top_k=2)
    with pytest.raises(ConfigError, match="top_k must be at least 1"):
        incidence_matrix(x, torch.randn(2, 3), top_k=0)


def test_short_sequences_keep_every_candidate():
    """N=3 tokens with k=5 (a short prompt padded per batch): same as k = N, every candidate kept."""
    torch.manual_seed(0)
    x, w = torch.randn(2, 3, 4), torch.randn(2, 2)
    a = incidence_matrix(x, w, top_k=5)
    assert torch.equal(a, incidence_matrix(x, w, top_k=3))
    assert torch.isfinite(a).all()
    # row 0: softmax over its own zero score and both affinities; rows 1-2: the one other local token
    expected_row0 = torch.cat([torch.zeros(2, 1), w], dim=1).softmax(-1)
    assert torch.allclose(a[:, 0, 1:], expected_row0[:, 1:])
    assert torch.allclose(a[:, 1, 2], torch.ones(2)) and torch.allclose(a[:, 2, 1], torch.ones(2))
