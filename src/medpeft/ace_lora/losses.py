"""Contrastive losses: CLIP InfoNCE and the label-guided variant, with optional cross-process gathering.

Label guidance removes false negatives: two reports with the same 14 CheXpert labels describe the
same findings, so pushing their images apart would be wrong. Labels travel with each sample (they
are gathered together with the embeddings), never joined by row position.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F


def same_label_mask(labels: torch.Tensor) -> torch.Tensor:
    """[B, B] bool: True for off-diagonal pairs whose label vectors are identical (to drop as negatives)."""
    if labels.dim() == 1:
        labels = labels[:, None]
    same = (labels[:, None, :] == labels[None, :, :]).all(dim=-1)
    return same & ~torch.eye(labels.shape[0], dtype=torch.bool, device=labels.device)


def contrastive_loss(
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    logit_scale: torch.Tensor,
    labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """Symmetric InfoNCE over a batch of matched pairs; with ``labels``, same-label pairs are masked out."""
    logits = logit_scale * image_embeds @ text_embeds.t()
    if labels is not None:
        logits = logits.masked_fill(same_label_mask(labels), float("-inf"))
    target = torch.arange(logits.shape[0], device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2


def gather_batch(*tensors: torch.Tensor | None) -> list[torch.Tensor | None]:
    """All-gather along dim 0 across processes, keeping gradients for the local slice.

    Every rank then computes the loss over the global batch, identical to a single process with
    the whole batch; DDP's gradient averaging then gives the single-process gradient.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return list(tensors)
    from torch.distributed.nn.functional import all_gather

    out: list[torch.Tensor | None] = []
    for t in tensors:
        if t is None:
            out.append(None)
        elif t.requires_grad:
            out.append(torch.cat(all_gather(t), dim=0))
        else:
            parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
            dist.all_gather(parts, t.contiguous())
            out.append(torch.cat(parts, dim=0))
    return out
