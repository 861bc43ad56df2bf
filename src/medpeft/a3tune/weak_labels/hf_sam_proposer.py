"""``hf-sam`` proposer: transformers' ``SamModel`` driven by medpeft's own automatic-mask loop.

The loop reproduces segment_anything's ``SamAutomaticMaskGenerator`` with the authors' settings
(:class:`~.proposers.AmgSettings`): crop boxes (the image plus one layer of 2×2 overlapping crops), a point
grid per crop layer (8² points, 4² after the downscale of 2), ``points_per_batch`` prompts at a time with
three masks each, predicted-IoU (``>``) and stability (``>=``, as segment_anything; transformers'
``filter_masks`` uses ``>``) filters on logits upscaled to the crop size by ``SamImageProcessor.post_process_masks``,
removal of boxes on an inner crop edge, per-crop box NMS, NMS across crops that prefers smaller crops, and the
small-region clean-up (holes then islands under ``min_mask_region_area``) followed by NMS that prefers
untouched masks. Masks come back at the image's size. An empty mask is never a proposal.

Weights: a hub id (read from the HF cache first, so it works offline once cached), a local folder, or
``random-tiny`` / ``random-vit_b`` (random weights, seeded; for tests and benchmarks only).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

import medpeft.a3tune.weak_labels.amg as amg
from medpeft.a3tune.weak_labels.proposers import AmgSettings, Mask, check_image
from medpeft.errors import CheckpointError

RANDOM_PRESETS = ("random-tiny", "random-vit_b")


def random_sam(preset: str, seed: int = 0) -> tuple[Any, Any]:
    """A ``SamModel`` with random weights and its image processor: ``random-tiny`` (64-px input, tiny
    encoder) or ``random-vit_b`` (the ViT-B shapes of ``facebook/sam-vit-base``)."""
    from transformers import (
        SamConfig,
        SamImageProcessor,
        SamMaskDecoderConfig,
        SamModel,
        SamPromptEncoderConfig,
        SamVisionConfig,
    )

    if preset == "random-tiny":
        size = 64
        config = SamConfig(
            vision_config=SamVisionConfig(
                hidden_size=32, output_channels=16, num_hidden_layers=2, num_attention_heads=2,
                image_size=size, patch_size=16, window_size=2, global_attn_indexes=[1],
                num_pos_feats=8, mlp_dim=64,
            ),
            prompt_encoder_config=SamPromptEncoderConfig(
                hidden_size=16, image_size=size, patch_size=16, mask_input_channels=4
            ),
            mask_decoder_config=SamMaskDecoderConfig(
                hidden_size=16, mlp_dim=32, num_hidden_layers=2, num_attention_heads=2, iou_head_hidden_dim=16
            ),
        )  # fmt: skip
    elif preset == "random-vit_b":
        size = 1024
        config = SamConfig()  # transformers' defaults are the ViT-B shapes
    else:
        raise CheckpointError(f"unknown random SAM preset {preset!r}: use one of {', '.join(RANDOM_PRESETS)}")
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = SamModel(config)
    processor = SamImageProcessor(size={"longest_edge": size}, pad_size={"height": size, "width": size})
    return model, processor


def load_hf_sam(spec: str, seed: int = 0) -> tuple[Any, Any]:
    """``SamModel`` + ``SamImageProcessor`` from a folder, a hub id (cache first) or a random preset."""
    if spec.startswith("random-"):
        return random_sam(spec, seed)
    from transformers import SamImageProcessor, SamModel

    path = Path(spec).expanduser()
    if path.suffix in (".pth", ".pt", ".bin") and path.is_file():
        raise CheckpointError(
            f"{spec}: a segment_anything .pth checkpoint; use --proposer sam for it, or give hf-sam a "
            "transformers SAM folder or hub id (e.g. facebook/sam-vit-huge)"
        )
    errors = []
    for local_only in (True, False) if not path.is_dir() else (True,):
        try:
            model = SamModel.from_pretrained(
                str(path) if path.is_dir() else spec, local_files_only=local_only
            )
            processor = SamImageProcessor.from_pretrained(
                str(path) if path.is_dir() else spec, local_files_only=local_only
            )
            return model, processor
        except (OSError, ValueError) as err:
            errors.append(f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
    raise CheckpointError(f"cannot load a transformers SAM model from {spec!r} ({'; '.join(errors)})")


class HfSamProposer:
    """Automatic masks from a transformers ``SamModel`` with segment_anything's algorithm (see module doc)."""

    name = "hf-sam"

    def __init__(
        self,
        model: Any,
        processor: Any,
        settings: AmgSettings | None = None,
        device: str | torch.device | None = "cpu",
        source: str = "model",
    ) -> None:
        self.settings = settings or AmgSettings()
        self.device = torch.device(device or "cpu")
        self.model = model.to(self.device).eval()
        self.processor = processor
        self.source = source
        self.mask_threshold = 0.0
        self.grids = amg.layer_point_grids(
            self.settings.points_per_side,
            self.settings.crop_n_layers,
            self.settings.crop_n_points_downscale_factor,
        )

    @classmethod
    def from_pretrained(
        cls, spec: str, settings: AmgSettings | None = None, device: str | None = "cpu", seed: int = 0
    ) -> HfSamProposer:
        model, processor = load_hf_sam(spec, seed)
        return cls(model, processor, settings, device, source=spec)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "checkpoint": self.source, **self.settings.to_dict()}

    # ------------------------------------------------------------------------------------------ steps
    def filter_logits(
        self, logits: torch.Tensor, iou: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Predicted-IoU and stability filters on ``[N, H, W]`` logits; returns kept logits, IoU,
        stability and the indices kept (segment_anything ``_process_batch``)."""
        s = self.settings
        keep = torch.ones(len(iou), dtype=torch.bool, device=iou.device)
        if s.pred_iou_thresh > 0.0:
            keep &= iou > s.pred_iou_thresh
        stab = amg.stability_score(logits, self.mask_threshold, s.stability_score_offset)
        if s.stability_score_thresh > 0.0:
            keep &= stab >= s.stability_score_thresh
        idx = torch.nonzero(keep).flatten()
        return logits[idx], iou[idx], stab[idx], idx

    @torch.no_grad()
    def crop_logits(self, crop: np.ndarray, points: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """All mask logits ``[P*3, h, w]`` (at the crop's size) and predicted IoUs for ``points`` (crop pixels)."""
        enc = self.processor(images=crop, return_tensors="pt")
        original = [int(v) for v in enc["original_sizes"][0]]
        reshaped = [int(v) for v in enc["reshaped_input_sizes"][0]]
        emb = self.model.get_image_embeddings(enc["pixel_values"].to(self.device))
        scale = np.array([reshaped[1] / original[1], reshaped[0] / original[0]])
        all_logits, all_iou = [], []
        for start in range(0, len(points), self.settings.points_per_batch):
            pts = torch.as_tensor(
                points[start : start + self.settings.points_per_batch] * scale, dtype=torch.float
            )
            pts = pts[None, :, None, :].to(self.device)
            labels = torch.ones(pts.shape[:3], dtype=torch.int64, device=self.device)
            out = self.model(
                image_embeddings=emb, input_points=pts, input_labels=labels, multimask_output=True
            )
            logits = self.processor.post_process_masks(
                [out.pred_masks[0].float()], [original], [reshaped], binarize=False
            )[0]
            all_logits.append(logits.flatten(0, 1))
            all_iou.append(out.iou_scores[0].flatten().float())
        return torch.cat(all_logits), torch.cat(all_iou)

    def process_crop(self, image: np.ndarray, box: list[int], layer: int) -> dict[str, torch.Tensor]:
        from torchvision.ops import batched_nms

        h, w = image.shape[:2]
        x0, y0, x1, y1 = box
        crop = np.array(image[y0:y1, x0:x1])  # a writable copy (torch warns on read-only arrays)
        points = self.grids[layer] * np.array([[crop.shape[1], crop.shape[0]]])
        logits, iou = self.crop_logits(crop, points)
        logits, iou, stab, _ = self.filter_logits(logits, iou)
        masks = logits > self.mask_threshold
        nonempty = masks.flatten(1).any(1)
        masks, iou, stab = masks[nonempty], iou[nonempty], stab[nonempty]
        boxes = amg.boxes_xyxy(masks)
        keep = ~amg.near_crop_edge(boxes, box, [0, 0, w, h])
        masks, iou, stab, boxes = masks[keep], iou[keep], stab[keep], boxes[keep]
        keep = batched_nms(
            boxes.float(), iou, torch.zeros(len(boxes)), iou_threshold=self.settings.box_nms_thresh
        )
        masks, iou, stab, boxes = masks[keep], iou[keep], stab[keep], boxes[keep]
        masks = torch.nn.functional.pad(masks, (x0, w - x1, y0, h - y1), value=False)
        boxes = boxes + torch.tensor([[x0, y0, x0, y0]])
        crops = torch.tensor([box] * len(boxes), dtype=torch.float)
        return {
            "masks": masks.cpu(),
            "iou": iou.cpu(),
            "stab": stab.cpu(),
            "boxes": boxes.cpu(),
            "crops": crops,
        }

    def propose(self, image: np.ndarray) -> list[Mask]:
        from torchvision.ops import batched_nms, box_area

        image = check_image(image)
        s = self.settings
        boxes_list, layers = amg.crop_boxes(image.shape[:2], s.crop_n_layers, s.crop_overlap_ratio)
        parts = [self.process_crop(image, box, layer) for box, layer in zip(boxes_list, layers, strict=True)]
        data = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
        if len(boxes_list) > 1 and len(data["boxes"]):
            keep = batched_nms(
                data["boxes"].float(),
                1 / box_area(data["crops"]),
                torch.zeros(len(data["boxes"])),
                iou_threshold=s.crop_nms_thresh,
            )
            data = {k: v[keep] for k, v in data.items()}
        masks = [m.numpy() for m in data["masks"]]
        boxes = data["boxes"]
        if s.min_mask_region_area > 0 and masks:
            masks, boxes, keep = self.clean_small_regions(masks, boxes)
            data = {k: v[keep] for k, v in data.items()}
        out = []
        for seg, box, iou, stab in zip(
            masks, boxes.tolist(), data["iou"].tolist(), data["stab"].tolist(), strict=True
        ):
            x0, y0, x1, y1 = (int(v) for v in box)
            out.append(Mask(seg, (x0, y0, x1 - x0, y1 - y0), int(seg.sum()), float(iou), float(stab)))
        return out

    def clean_small_regions(
        self, masks: list[np.ndarray], boxes: torch.Tensor
    ) -> tuple[list[np.ndarray], torch.Tensor, torch.Tensor]:
        """Holes then islands under ``min_mask_region_area``; NMS (threshold max of both) prefers unchanged
        masks; kept changed masks get their new box. Returns the kept masks, their boxes and indices."""
        from torchvision.ops import batched_nms

        s = self.settings
        new, scores = [], []
        for mask in masks:
            mask, changed_holes = amg.remove_small_regions(mask, s.min_mask_region_area, "holes")
            mask, changed_islands = amg.remove_small_regions(mask, s.min_mask_region_area, "islands")
            new.append(mask)
            scores.append(float(not (changed_holes or changed_islands)))
        stacked = torch.as_tensor(np.stack(new))
        new_boxes = torch.zeros(len(new), 4, dtype=torch.int64)
        nonempty = stacked.flatten(1).any(1)
        new_boxes[nonempty] = amg.boxes_xyxy(stacked[nonempty])
        keep = batched_nms(
            new_boxes.float(),
            torch.as_tensor(scores),
            torch.zeros(len(new)),
            iou_threshold=max(s.box_nms_thresh, s.crop_nms_thresh),
        )
        keep = keep[nonempty[keep]]
        kept_masks = []
        kept_boxes = boxes.clone()
        for i in keep.tolist():
            if scores[i] == 0.0:
                kept_masks.append(new[i])
                kept_boxes[i] = new_boxes[i]
            else:
                kept_masks.append(masks[i])
        return kept_masks, kept_boxes[keep], keep
