"""Backbones: CLIP-family encoders (BiomedCLIP through open_clip, tiny presets, timm image towers), their
tokenizers and token-level towers; A³Tune's LLaVA loaders live beside them."""
