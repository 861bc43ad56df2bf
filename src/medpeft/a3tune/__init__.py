"""A³Tune (ACL 2025, arXiv 2505.18503): attention-alignment tuning of LLaVA-style models with A³MoE."""

from medpeft.a3tune.config import A3TuneConfig
from medpeft.a3tune.model import A3TuneModel, A3TuneOutput

__all__ = ["A3TuneConfig", "A3TuneModel", "A3TuneOutput"]
