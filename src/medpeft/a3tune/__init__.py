"""A³Tune (ACL 2025, arXiv 2505.18503): attention-alignment tuning of LLaVA-style models with A³MoE."""
