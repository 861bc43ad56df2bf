"""The per-forward A³Tune context: which tokens are image columns, query rows and question tokens of each
sample, plus the stores the attention recorder and the MoE layers write into during that one forward.

It travels to the attention function and the q/k MoE layers as the keyword argument ``a3_ctx`` (transformers
threads extra forward kwargs down to every attention call), so nothing global is shared between forwards or
threads, and a gradient-checkpointing recompute sees the very same context as the original forward.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from medpeft.errors import DataError

IGNORE_INDEX = -100


@dataclass
class A3Context:
    """Token roles of one forward (all ``[B, S]`` over this forward's input tokens) and its stores.

    ``rows``/``cols``: per-sample positions of the query rows (every non-padding token after the sample's last
    image token) and of the image tokens, left-aligned and padded to the batch maximum, with validity masks.
    ``decode``: a cached decoding step (no image tokens in the input; the Q routing comes from ``routing``).
    ``recording``: True during the forward itself, False afterwards, so that a gradient-checkpointing recompute
    (which runs the same operations) does not overwrite the stores.
    """

    image_mask: torch.Tensor
    row_mask: torch.Tensor
    question_mask: torch.Tensor
    row_index: torch.Tensor
    row_valid: torch.Tensor
    col_index: torch.Tensor
    col_valid: torch.Tensor
    record_layers: frozenset[int] = frozenset()
    decode: bool = False
    recording: bool = True
    routing: dict[int, torch.Tensor] = field(default_factory=dict)
    attn: dict[int, torch.Tensor] = field(default_factory=dict)
    ratios: dict[int, torch.Tensor] = field(default_factory=dict)
    k_routing: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = field(default_factory=dict)

    @property
    def seq_len(self) -> int:
        return int(self.image_mask.shape[1])

    def records(self, layer_idx: int | None, q_len: int) -> bool:
        """Whether the attention of ``layer_idx`` is recorded in this call (prefill of a recorded layer only).
        Depends only on fixed fields, so a checkpoint recompute makes the same choice as the forward."""
        return (not self.decode) and layer_idx in self.record_layers and q_len == self.seq_len


def _left_aligned(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions where ``mask`` is True, per row, in increasing order, padded: (index [B, N], valid [B, N])."""
    counts = mask.sum(1)
    width = max(int(counts.max().item()) if mask.numel() else 0, 1)
    order = torch.sort((~mask).to(torch.int8), dim=1, stable=True).indices[:, :width]
    valid = torch.arange(width, device=mask.device)[None, :] < counts[:, None]
    return torch.where(valid, order, torch.zeros_like(order)), valid


def build_context(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    image_token_id: int,
    *,
    labels: torch.Tensor | None = None,
    question_mask: torch.Tensor | None = None,
    record_layers: frozenset[int] = frozenset(),
) -> A3Context:
    """The context of a prefill/training forward.

    Question tokens (the Q-MoE router's input) are the query rows whose label is ignored (-100), i.e. the
    prompt after the image; without labels (generation) all query rows; ``question_mask`` overrides both.
    """
    if input_ids.ndim != 2:
        raise DataError(f"input_ids must be [batch, seq], got shape {tuple(input_ids.shape)}")
    valid = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
    image = (input_ids == image_token_id) & valid
    positions = torch.arange(input_ids.shape[1], device=input_ids.device)[None, :]
    has_image = image.any(1)
    for b in torch.nonzero(~has_image).flatten().tolist():
        raise DataError(
            f"sample {b} has no image tokens (no input_ids == image_token_id {image_token_id}); A³Tune needs "
            "one image per sample"
        )
    last_image = torch.where(image, positions, torch.full_like(positions, -1)).max(1).values
    rows = valid & (positions > last_image[:, None])
    for b in torch.nonzero(~rows.any(1)).flatten().tolist():
        raise DataError(f"sample {b} has no tokens after its last image token (no question/answer to align)")
    if question_mask is not None:
        if question_mask.shape != input_ids.shape:
            raise DataError(
                f"question_mask has shape {tuple(question_mask.shape)}, input_ids {tuple(input_ids.shape)}"
            )
        question = question_mask.bool() & valid
    elif labels is not None:
        if labels.shape != input_ids.shape:
            raise DataError(f"labels have shape {tuple(labels.shape)}, input_ids {tuple(input_ids.shape)}")
        question = rows & (labels == IGNORE_INDEX)
    else:
        question = rows
    for b in torch.nonzero(~question.any(1)).flatten().tolist():
        raise DataError(
            f"sample {b} has no question tokens (prompt tokens after the image with label -100) for the Q-MoE router"
        )
    row_index, row_valid = _left_aligned(rows)
    col_index, col_valid = _left_aligned(image)
    return A3Context(
        image_mask=image,
        row_mask=rows,
        question_mask=question,
        row_index=row_index,
        row_valid=row_valid,
        col_index=col_index,
        col_valid=col_valid,
        record_layers=frozenset(record_layers),
    )


def decode_context(input_ids: torch.Tensor, routing: dict[int, torch.Tensor]) -> A3Context:
    """The context of a cached decoding step: no image tokens, Q routing reused from the prefill."""
    none = torch.zeros_like(input_ids, dtype=torch.bool)
    empty = torch.zeros(input_ids.shape[0], 1, dtype=torch.long, device=input_ids.device)
    return A3Context(
        image_mask=none,
        row_mask=none,
        question_mask=none,
        row_index=empty,
        row_valid=empty.bool(),
        col_index=empty,
        col_valid=empty.bool(),
        decode=True,
        recording=False,
        routing=routing,
    )
