"""A³Tune's configuration: what is adapted (A³MoE on q/k, peft LoRA elsewhere), which attention is recorded,
and the loss weights. ``loss = lm_loss + align_weight·align_loss + balance_weight·balance_loss``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from medpeft.errors import ConfigError

LORA_TARGETS = ("v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class A3TuneConfig:
    """Defaults = the authors' SLAKE run (A3TUNE.md §C/§D/§E), except ``top_heads`` (see :meth:`preset`).

    ``moe=False`` puts plain LoRA (``lora_rank``/``lora_alpha``) on q_proj/k_proj too, so ``moe=False, align=False``
    is plain LoRA on every projection of the language model (:meth:`plain_lora`). ``layers``: the language
    layers whose attention is recorded and eligible for head selection (None = all). ``k_routing``: "prob"
    (K experts weighted by routing probability) or "official" (the authors' unweighted/overwrite version).
    ``balance_scaled``: E/k·Σₑ mean(Pₑ)·mean(chosenₑ) (uniform → 1) or the authors' unscaled sum.
    """

    top_heads: int = 128
    align_loss: str = "ratio"
    align_weight: float = 0.03
    balance_weight: float = 0.0
    q_experts: int = 8
    k_experts: int = 16
    k_top: int = 1
    moe_rank: int = 16
    moe_alpha: float = 8
    moe_dropout: float = 0.05
    lora_rank: int = 64
    lora_alpha: float = 16
    lora_dropout: float = 0.05
    moe: bool = True
    align: bool = True
    layers: tuple[int, ...] | None = None
    k_routing: str = "prob"
    balance_scaled: bool = True
    lora_targets: tuple[str, ...] = LORA_TARGETS
    seed: int = 0

    def __post_init__(self) -> None:
        if self.layers is not None:
            object.__setattr__(self, "layers", tuple(int(i) for i in self.layers))
        object.__setattr__(self, "lora_targets", tuple(self.lora_targets))
        checks = {
            "top_heads": self.top_heads >= 1,
            "align_loss": self.align_loss in ("ratio", "kl"),
            "align_weight": self.align_weight >= 0,
            "balance_weight": self.balance_weight >= 0,
            "q_experts": self.q_experts >= 1,
            "k_experts": self.k_experts >= 1,
            "k_top": 1 <= self.k_top <= self.k_experts,
            "moe_rank": self.moe_rank >= 1,
            "lora_rank": self.lora_rank >= 1,
            "moe_dropout": 0 <= self.moe_dropout < 1,
            "lora_dropout": 0 <= self.lora_dropout < 1,
            "k_routing": self.k_routing in ("prob", "official"),
            "lora_targets": all(t in LORA_TARGETS for t in self.lora_targets),
            "layers": self.layers is None or (len(self.layers) > 0 and min(self.layers) >= 0),
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ConfigError(
                f"invalid A3TuneConfig field(s): {', '.join(f'{n}={getattr(self, n)!r}' for n in bad)}"
            )
        if self.align_weight > 0 and not self.align:
            raise ConfigError("align_weight > 0 needs align=True (attention must be recorded to align it)")
        if self.balance_weight > 0 and not self.moe:
            raise ConfigError("balance_weight > 0 needs moe=True (the balance loss is over K-MoE routings)")

    @property
    def method(self) -> str:
        return "a3tune" if (self.moe or self.align) else "lora"

    @classmethod
    def plain_lora(cls, **overrides: Any) -> A3TuneConfig:
        """The plain-LoRA baseline: peft LoRA on q/k/v/o/gate/up/down of the language model, no MoE, no attention
        recording, loss = LM loss."""
        return cls(**{**dict(moe=False, align=False, align_weight=0.0, balance_weight=0.0), **overrides})

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> A3TuneConfig:
        """The authors' hyper-parameters (from their launch scripts; the paper body was unavailable).

        ``top_heads=32``: the scripts pass 128 but the loss overwrites it with the per-layer head count, so the
        runs selected H = 32 heads of the 7B models (A3TUNE.md §B, utils.py:232-266).

        - ``paper-vqa`` (SLAKE, moe_slake.sh): λ=0.03 ratio loss, balance 0, E_q=8, E_k=16, top-1 K routing,
          MoE r=16 α=8, LoRA r=64 α=16 dropout 0.05. (VQA-RAD used KL with λ=0.06, PathVQA λ=0.02.)
        - ``paper-report`` (IU-Xray reports, report_iu.sh): λ=0.08 ratio loss, balance 0.01, E_q=1, E_k=8,
          top-2 K routing, same ranks.

        ``k_routing`` stays "prob" (pass ``k_routing="official"`` for the authors' unweighted K-MoE).
        """
        common = dict(
            top_heads=32,
            align_loss="ratio",
            moe_rank=16,
            moe_alpha=8,
            lora_rank=64,
            lora_alpha=16,
            lora_dropout=0.05,
            moe=True,
            align=True,
        )
        presets = {
            "paper-vqa": dict(align_weight=0.03, balance_weight=0.0, q_experts=8, k_experts=16, k_top=1),
            "paper-report": dict(align_weight=0.08, balance_weight=0.01, q_experts=1, k_experts=8, k_top=2),
        }
        if name not in presets:
            raise ConfigError(f"unknown A³Tune preset {name!r}; presets: {', '.join(presets)}")
        return cls(**{**common, **presets[name], **overrides})

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["layers"] = list(self.layers) if self.layers is not None else None
        d["lora_targets"] = list(self.lora_targets)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> A3TuneConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown A3TuneConfig field(s): {', '.join(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    def replace(self, **changes: Any) -> A3TuneConfig:
        return replace(self, **changes)
