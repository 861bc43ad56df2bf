"""A³MoE (A3TUNE.md §D): LoRA-expert mixtures replacing each language layer's ``q_proj`` and ``k_proj``.

Both keep the frozen projection as ``base`` and add x·Aₑᵀ·Bₑᵀ·(α/r) per expert (A kaiming-uniform, B = 0, so at
init the output equals ``base(x)`` exactly). Shapes come from the base projection (GQA-safe). The experts are
stored stacked (``lora_A [E, r, in]``, ``lora_B [E, out, r]``) so a mixture is two matmuls, not a loop; one
dropout mask is shared by the experts (the authors draw one per expert; identical in eval mode).

They read the per-forward :class:`~medpeft.a3tune.context.A3Context` from ``self.ctx``, which the model sets
from the attention module's ``a3_ctx`` keyword just before the projections run (q_proj/k_proj are called
without keywords by transformers).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from medpeft.errors import ConfigError

K_ROUTINGS = ("prob", "official")


class _Experts(nn.Module):
    """Shared parts: frozen base projection, stacked LoRA experts, router, context slot."""

    def __init__(
        self, base: nn.Linear, num_experts: int, rank: int, alpha: float, dropout: float, layer_idx: int
    ):
        super().__init__()
        if num_experts < 1 or rank < 1:
            raise ConfigError(f"MoE needs >= 1 expert and rank >= 1, got experts={num_experts}, rank={rank}")
        self.base = base
        self.base.requires_grad_(False)
        self.layer_idx = layer_idx
        self.num_experts = num_experts
        self.rank = rank
        self.scaling = alpha / rank
        w = base.weight
        # Adapters of a half-precision base are kept in float32 (as peft does), their input cast to it.
        dtype = torch.float32 if w.dtype in (torch.float16, torch.bfloat16) else w.dtype
        self.lora_A = nn.Parameter(
            torch.empty(num_experts, rank, base.in_features, device=w.device, dtype=dtype)
        )
        self.lora_B = nn.Parameter(
            torch.zeros(num_experts, base.out_features, rank, device=w.device, dtype=dtype)
        )
        for e in range(num_experts):
            nn.init.kaiming_uniform_(self.lora_A.data[e], a=math.sqrt(5))
        self.router = nn.Linear(base.in_features, num_experts, bias=True, device=w.device, dtype=dtype)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.ctx = None

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    @property
    def weight(self) -> torch.Tensor:  # some library code reads ``proj.weight.dtype``
        return self.base.weight

    def mixture(self, x: torch.Tensor, gates: torch.Tensor) -> torch.Tensor:
        """Σₑ gatesₑ · dropout(x)·Aₑᵀ·Bₑᵀ·scaling; ``gates`` broadcast against x's leading dims + [E]."""
        e, r = self.num_experts, self.rank
        h = self.dropout(x.to(self.lora_A.dtype)) @ self.lora_A.reshape(e * r, -1).T
        h = h * gates.to(h.dtype).repeat_interleave(r, dim=-1)
        out = (h @ self.lora_B.permute(1, 0, 2).reshape(self.out_features, e * r).T) * self.scaling
        return out.to(x.dtype)

    def context(self):
        if self.ctx is None:
            raise ConfigError(
                f"{type(self).__name__} (layer {self.layer_idx}) called without an A³Tune context: call the model "
                "through A3TuneModel (forward/generate), not its language model directly"
            )
        return self.ctx


class QMoELinear(_Experts):
    """Query MoE: a soft, sequence-level mixture on every token, routed by softmax(router(mean of this layer's
    q_proj input over the sample's question tokens)); the routing is cached for cached decoding steps."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        ctx = self.context()
        if ctx.decode:
            if self.layer_idx not in ctx.routing:
                raise ConfigError(
                    f"no cached Q-MoE routing for layer {self.layer_idx} (decoding without prefill)"
                )
            gates = ctx.routing[self.layer_idx]
        else:
            q = ctx.question_mask.to(x.dtype)[..., None]
            pooled = (x * q).sum(1) / q.sum(1)
            gates = torch.softmax(self.router(pooled.to(self.router.weight.dtype)).float(), dim=-1)
            if ctx.recording:
                ctx.routing[self.layer_idx] = gates.detach()
        return y + self.mixture(x, gates[:, None, :])


class KMoELinear(_Experts):
    """Key MoE: a token-level router on image tokens only, top-k experts per image token; text rows and decoding
    steps use the frozen projection alone.

    ``routing="prob"``: the chosen experts' outputs are weighted by their routing probability, so the router
    learns from the task loss. ``"official"``: the authors' code — unweighted, and for top-k > 1 only the
    highest-index chosen expert survives (their loop overwrites); the router then learns only through the
    balance loss.
    """

    def __init__(
        self,
        base: nn.Linear,
        num_experts: int,
        rank: int,
        alpha: float,
        dropout: float,
        layer_idx: int,
        top_k: int = 1,
        routing: str = "prob",
    ):
        super().__init__(base, num_experts, rank, alpha, dropout, layer_idx)
        if not 1 <= top_k <= num_experts:
            raise ConfigError(f"k_top must be in [1, {num_experts}], got {top_k}")
        if routing not in K_ROUTINGS:
            raise ConfigError(f"k_routing must be one of {K_ROUTINGS}, got {routing!r}")
        self.top_k = top_k
        self.routing = routing

    def weights(self, probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(expert weights [N, E], chosen one-hot [N, E]) from routing probabilities [N, E]."""
        top = probs.topk(self.top_k, dim=-1).indices
        chosen = torch.zeros_like(probs).scatter(1, top, 1.0)
        if self.routing == "prob":
            return probs * chosen, chosen
        last = top.max(dim=-1, keepdim=True).values  # the highest expert index among the chosen
        return torch.zeros_like(probs).scatter(1, last, 1.0), chosen

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        ctx = self.context()
        image = ctx.image_mask
        if ctx.decode or image.shape != x.shape[:2] or not bool(image.any()):
            return y
        xi = x[image]
        probs = torch.softmax(self.router(xi.to(self.router.weight.dtype)).float(), dim=-1)
        w, chosen = self.weights(probs)
        delta = torch.zeros_like(y)
        delta[image] = self.mixture(xi, w).to(y.dtype)
        if ctx.recording:
            sample = torch.nonzero(image)[:, 0]
            ctx.k_routing[self.layer_idx] = (probs, chosen, sample)
        return y + delta


def balance_loss(
    k_routing: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    batch_size: int,
    num_experts: int,
    top_k: int,
    scaled: bool = True,
) -> torch.Tensor:
    """Load-balance loss of the K-MoE routings: per layer and sample Σₑ mean_t(Pₑ)·mean_t(chosenₑ), times E/k when
    ``scaled`` (uniform routing → 1, collapse onto one expert → E/k), averaged over layers and samples.

    The authors' version (A3TUNE.md §C) is unscaled (uniform → k/E) and pools the tokens of all layers before
    the means (and reshapes with a hard-coded E = 4); ``scaled=False`` gives the unscaled per-layer value.
    """
    if not k_routing:
        raise ConfigError("no K-MoE routing was recorded")
    total = None
    for probs, chosen, sample in k_routing.values():
        count = torch.zeros(batch_size, device=probs.device).index_add_(
            0, sample, torch.ones_like(sample, dtype=torch.float)
        )
        p_mean = torch.zeros(batch_size, num_experts, device=probs.device).index_add(0, sample, probs)
        c_mean = torch.zeros(batch_size, num_experts, device=probs.device).index_add_(
            0, sample, chosen.detach()
        )
        denom = count.clamp_min(1)[:, None]
        per_sample = ((p_mean / denom) * (c_mean / denom)).sum(-1)
        total = per_sample if total is None else total + per_sample
    value = (total / len(k_routing)).mean()
    return value * (num_experts / top_k) if scaled else value
