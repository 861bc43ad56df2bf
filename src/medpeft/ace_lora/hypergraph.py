"""ACE-HGNN: an attention-guided hypergraph over one encoder's tokens.

Each token's hyperedge joins its top-k most similar tokens; the [CLS] token's hyperedge is chosen
by the encoder's own [CLS] attention (the global-to-local affinity). Two-stage message passing
(nodes → hyperedges → nodes) through small bottlenecks refines the global embedding with the
local evidence the attention points at.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from medpeft.errors import ConfigError


class Bottleneck(nn.Module):
    """``up(leaky_relu(down(x), 0.2))``: the edge/node transform (official names ``down``/``up``)."""

    def __init__(self, dim: int, width: int) -> None:
        super().__init__()
        self.down = nn.Linear(dim, width)
        self.up = nn.Linear(width, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(F.leaky_relu(self.down(x), 0.2))


def incidence_matrix(
    tokens: torch.Tensor,
    affinity: torch.Tensor,
    top_k: int,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Soft incidence A [B, N, N] from tokens [B, N, D] and the [CLS] affinity [B, N-1].

    Row 0 scores tokens by affinity, rows 1..N-1 by cosine similarity among tokens 1..N-1
    (self and [CLS] excluded); each row keeps its top-k and is softmax-normalised. Then the
    diagonal is set to 1 and column 0 mirrors row 0. A row with fewer than ``top_k`` candidates
    keeps them all. ``valid`` ([B, N] bool, optional) keeps
    padding tokens out of every hyperedge (the paper does not; ``mask_padding``).
    """
    b, n, _ = tokens.shape
    if affinity.shape != (b, n - 1):
        raise ConfigError(f"affinity must have shape {(b, n - 1)}, got {tuple(affinity.shape)}")
    if top_k < 1:
        raise ConfigError(f"top_k must be at least 1, got {top_k}")
    # A sequence shorter than k (short prompts padded per batch) keeps all its candidates.
    top_k = min(top_k, n)
    local = F.normalize(tokens[:, 1:], dim=-1)
    scores = tokens.new_zeros(b, n, n)
    scores[:, 1:, 1:] = local @ local.transpose(-1, -2)
    scores[:, 0, 1:] = affinity
    eye = torch.eye(n, dtype=torch.bool, device=tokens.device)
    excluded = eye.clone()
    excluded[0, 0] = False  # row 0 keeps its own (zero) score as a candidate, as the released model does
    excluded[1:, 0] = True
    excluded = excluded.expand(b, n, n)
    if valid is not None:
        pad_cols = ~valid[:, None, :].clone()
        pad_cols[..., 0] = False
        excluded = excluded | pad_cols
    scores = scores.masked_fill(excluded, float("-inf"))
    # the top-k values scattered into a row of -inf: the same softmax input as masking everything else,
    # with one [B, N, N] pass fewer (no boolean keep-mask to build, invert and apply)
    top = scores.topk(top_k, dim=-1)
    a = torch.full_like(scores, float("-inf")).scatter(-1, top.indices, top.values).softmax(dim=-1)
    a = torch.nan_to_num(a, nan=0.0)  # a row with no candidate at all stays empty
    a = a.masked_fill(eye, 1.0)
    return _mirror_column0(a)


def _mirror_column0(a: torch.Tensor) -> torch.Tensor:
    """Set ``A[:, 1:, 0] = A[:, 0, 1:]`` without an in-place write (keeps autograd simple)."""
    col0 = torch.cat([a[:, :1, :1], a[:, 0, 1:].unsqueeze(-1)], dim=1)  # [B, N, 1]
    return torch.cat([col0, a[:, :, 1:]], dim=-1)


class AceHGNN(nn.Module):
    """One encoder's hypergraph module: E = edge(A·X), V = node(Aᵀ·E); output V (no residual)."""

    def __init__(self, dim: int, width: int = 128, top_k: int = 5) -> None:
        super().__init__()
        self.top_k = top_k
        self.edge = Bottleneck(dim, width)
        self.node = Bottleneck(dim, width)

    def forward(
        self, tokens: torch.Tensor, affinity: torch.Tensor, valid: torch.Tensor | None = None
    ) -> torch.Tensor:
        a = incidence_matrix(tokens, affinity, self.top_k, valid)
        edges = self.edge(a @ tokens)
        return self.node(a.transpose(1, 2) @ edges)

    def embed(
        self, tokens: torch.Tensor, affinity: torch.Tensor, valid: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The refined global embedding: L2-normalised token 0 of the output (through ``__call__``, so a
        module compiled in place with ``nn.Module.compile`` runs compiled)."""
        return F.normalize(self(tokens, affinity, valid)[:, 0], dim=-1)
