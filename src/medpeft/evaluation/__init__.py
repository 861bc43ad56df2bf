"""Evaluation: zero-shot classification, metrics, plots; segmentation and detection fine-tuning."""
