"""Batched zero-shot scoring: the one code path behind ``evaluate``, ``predict`` and the benchmark.

Class (prompt-ensemble) embeddings are computed once per call; images stream through a DataLoader
(workers, pinned memory, optional bf16/fp16 autocast; fp32 by default) and every image is scored independently, so the
probabilities do not depend on the batch size or on the other images in a batch.

Scoring:

* ``"softmax"`` (multi-class and binary tasks, and ``predict``): ``p = softmax(s · x·Eᵀ)`` over the C class
  embeddings, the published ACE-LoRA/BiomedCLIP zero-shot rule.
* ``"pairwise"`` (multi-label tasks): each class has a positive prompt set and a negative one ("no {class}");
  ``p_c = softmax(s · [x·e⁺_c, x·e⁻_c])[0] = sigmoid(s · (x·e⁺_c − x·e⁻_c))``, the CheXzero rule, which gives
  an independent probability per label without a threshold on raw cosine similarities.

``model`` is anything with ``encode_image(pixels) -> [B, D]`` (L2-normalised), ``encode_prompts(ids
[C, T, L]) -> [C, D]`` and ``logit_scale`` (the scale itself): ``AceLoraModel`` in practice.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from medpeft.errors import ConfigError
from medpeft.evaluation.image_loader import ImageInput, as_items, describe, make_loader, readable_batches
from medpeft.evaluation.options import InferenceOptions
from medpeft.runtime import autocast, model_device

SCORING = ("softmax", "pairwise")


@contextlib.contextmanager
def merged_lora(model: nn.Module):
    """LoRA folded into the frozen weights for the duration of a call, then the exact original weights back.

    Why: unmerged, every adapted projection adds a down/up product, a concatenation and an addition over
    all tokens, which on the CPU costs about a third of the image tower's time; merged, inference runs the
    plain backbone. Rounding differs from the unmerged sum by ~1e-7 relative. The original weights are
    copied first (not recomputed by subtraction), so a model that goes on training is bit-for-bit unchanged.
    """
    modules = [m for m in (getattr(model, "lora", None) or {}).values() if not m.merged]
    saved = [m.base.weight.detach().clone() for m in modules]
    for m in modules:
        m.merge()
    try:
        yield
    finally:
        with torch.no_grad():
            for m, weight in zip(modules, saved, strict=True):
                m.base.weight.copy_(weight)
                m.merged = False


@contextlib.contextmanager
def inference_state(model: nn.Module, device: torch.device, merge: bool = True, compile: bool = False):
    """Eval mode, ``device``, LoRA merged (``merged_lora``) and no autograd for the duration of a call;
    the training flag and the weights are restored afterwards. ``compile`` compiles the model's towers
    in place (once; ``compile_towers``), for this call and later ones."""
    was_training = getattr(model, "training", False)
    if hasattr(model, "to") and model_device(model) != device:
        model.to(device)
    if compile and hasattr(model, "compile_towers"):
        model.compile_towers(device)
    if hasattr(model, "eval"):
        model.eval()
    try:
        with merged_lora(model) if merge else contextlib.nullcontext(), torch.inference_mode():
            yield
    finally:
        if was_training and hasattr(model, "train"):
            model.train(True)


def logit_scale_of(model: nn.Module) -> float:
    return float(torch.as_tensor(model.logit_scale).detach().float().cpu())


# --------------------------------------------------------------------------- class embeddings
@dataclass
class ClassPrompts:
    """The filled prompts of each class (``positive[c]``: T_c strings) and, for pairwise scoring,
    each class's negative prompts."""

    names: list[str]
    positive: list[list[str]]
    negative: list[list[str]] | None = None

    def __post_init__(self) -> None:
        if len(self.names) != len(self.positive):
            raise ConfigError(f"{len(self.names)} class names but {len(self.positive)} prompt lists")
        for name, prompts in zip(self.names, self.positive, strict=True):
            if not prompts:
                raise ConfigError(f"class {name!r} has no prompts")
        if self.negative is not None and len(self.negative) != len(self.names):
            raise ConfigError(f"{len(self.names)} classes but {len(self.negative)} negative prompt lists")

    @property
    def scoring(self) -> str:
        return "softmax" if self.negative is None else "pairwise"


@dataclass
class ClassHead:
    """Class embeddings + logit scale: image embeddings [B, D] -> probabilities [B, C]."""

    names: list[str]
    embeds: torch.Tensor  # [C, D] (softmax) or [2C, D]: positives then negatives (pairwise)
    logit_scale: float
    scoring: str = "softmax"
    prompts: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.scoring not in SCORING:
            raise ConfigError(f"scoring must be one of {SCORING}, got {self.scoring!r}")
        expected = len(self.names) * (2 if self.scoring == "pairwise" else 1)
        if self.embeds.shape[0] != expected:
            raise ConfigError(
                f"{len(self.names)} classes need {expected} embeddings, got {self.embeds.shape[0]}"
            )
        if self.scoring == "softmax" and len(self.names) < 2:
            raise ConfigError(
                f"zero-shot classification needs at least two classes (a softmax over one class is always 1), "
                f"got {self.names}"
            )

    def probs(self, image_embeds: torch.Tensor) -> torch.Tensor:
        """float64 probabilities whatever dtype the encoder ran in: near-certain predictions stay distinct
        (in float32 they round to 1.0 and tie, which changes the AUROC), at the cost of a [B, C] product."""
        logits = self.logit_scale * image_embeds.double() @ self.embeds.to(image_embeds.device).double().t()
        if self.scoring == "softmax":
            return logits.softmax(dim=-1)
        c = len(self.names)
        return torch.stack([logits[:, :c], logits[:, c:]], dim=-1).softmax(dim=-1)[..., 0]


def text_padding(model: nn.Module) -> str:
    return getattr(getattr(model, "config", None), "text_padding", "max_length")


def tokenize_prompts(tokenizer, prompts: Sequence[str], padding: str) -> torch.Tensor:
    return tokenizer(list(prompts), padding=padding)


def encode_class_prompts(
    model: nn.Module, tokenizer, prompts: ClassPrompts, options: InferenceOptions | None = None
) -> ClassHead:
    """Tokenise and encode every class's prompt ensemble once (``model.encode_prompts``: token features and
    affinities averaged over a class's templates, one hypergraph pass per class)."""
    options = InferenceOptions.make(options)
    dev = options.torch_device()
    dtype = options.autocast_dtype(dev)
    padding = text_padding(model)
    groups = list(prompts.positive) + list(prompts.negative or [])
    with inference_state(model, dev, options.merge_lora, options.compile), autocast(dev, dtype):
        if padding == "max_length" and len({len(texts) for texts in groups}) == 1:
            # one [C, T, L] call; classes do not interact, so this equals encoding them one by one
            ids = tokenize_prompts(tokenizer, [t for texts in groups for t in texts], padding)
            stacked = model.encode_prompts(ids.reshape(len(groups), len(groups[0]), -1).to(dev)).float()
        else:  # "longest": each class padded to its own longest prompt, as when encoded alone
            stacked = torch.cat(
                [
                    model.encode_prompts(tokenize_prompts(tokenizer, t, padding).to(dev)[None]).float()
                    for t in groups
                ]
            )
    listed = {name: list(p) for name, p in zip(prompts.names, prompts.positive, strict=True)}
    if prompts.negative is not None:
        listed.update(
            {f"no {name}": list(p) for name, p in zip(prompts.names, prompts.negative, strict=True)}
        )
    return ClassHead(list(prompts.names), stacked, logit_scale_of(model), prompts.scoring, listed)


def class_head_from_ids(
    model: nn.Module, names: Sequence[str], prompt_ids: torch.Tensor, scoring: str = "softmax"
) -> ClassHead:
    """A head from already tokenised prompts [C, T, L] (e.g. the parity fixture's ``prompt_ids``)."""
    dev = model_device(model)
    with inference_state(model, dev):
        embeds = model.encode_prompts(prompt_ids.to(dev)).float()
    return ClassHead(list(names), embeds, logit_scale_of(model), scoring)


# --------------------------------------------------------------------------- image scoring
@dataclass
class Scores:
    """Probabilities of the readable images, in input order, and what was skipped."""

    probs: np.ndarray  # [N_ok, C] float64
    kept: list[int]  # input indices of the rows of ``probs``
    skipped: list[tuple[int, str]]  # (input index, reason)
    device: str
    precision: str


def score_images(
    model: nn.Module,
    head: ClassHead,
    images: Sequence[ImageInput] | ImageInput,
    preprocess,
    options: InferenceOptions | None = None,
    *,
    desc: str = "images",
) -> Scores:
    """Class probabilities for each image, batched. Unreadable images raise ``DataError`` naming them
    (``on_bad_image="error"``) or are skipped and listed. ``merge_lora`` folds LoRA into the weights while
    scoring (see ``merged_lora``); tensors in ``images`` are taken as already preprocessed."""
    options = InferenceOptions.make(options)
    items = as_items(images)
    if not items:
        raise ConfigError("no images to score")
    if preprocess is None and not all(isinstance(item, torch.Tensor) for item in items):
        raise ConfigError("preprocess is required for images given as files or PIL images")
    dev = options.torch_device()
    dtype = options.autocast_dtype(dev)
    loader = make_loader(
        items,
        preprocess,
        batch_size=options.batch_size,
        workers=options.workers,
        pin_memory=dev.type == "cuda",
    )
    chunks: list[torch.Tensor] = []
    kept: list[int] = []
    skipped: list[tuple[int, str]] = []
    from tqdm.auto import tqdm

    with inference_state(model, dev, options.merge_lora, options.compile):
        batches = tqdm(loader, desc=desc, unit="batch", disable=not options.progress, leave=False)
        for batch in readable_batches(batches, options.on_bad_image, skipped):
            pixels = batch.pixel_values.to(dev, non_blocking=True)
            with autocast(dev, dtype):
                embeds = model.encode_image(pixels)
            chunks.append(head.probs(embeds).cpu())
            kept.extend(batch.indices)
    probs = torch.cat(chunks).numpy() if chunks else np.zeros((0, len(head.names)))
    skipped = [(i, msg if msg else f"{describe(items[i], i)}: unreadable") for i, msg in skipped]
    return Scores(probs, kept, skipped, str(dev), options.precision)


def classify_images(
    model: nn.Module,
    prompts: ClassPrompts,
    images: Sequence[ImageInput] | ImageInput,
    *,
    tokenizer=None,
    preprocess=None,
    options: InferenceOptions | None = None,
    desc: str = "images",
) -> tuple[ClassHead, Scores]:
    """Class embeddings and per-image probabilities under one LoRA merge for both encoders: the shared
    core of ``evaluate`` and ``predict``. ``tokenizer``/``preprocess`` default to ``model.backbone``'s."""
    backbone = getattr(model, "backbone", None)
    if tokenizer is None or preprocess is None:
        if backbone is None:
            raise ConfigError("pass tokenizer and preprocess for a model without a backbone")
        tokenizer = tokenizer if tokenizer is not None else backbone.tokenizer
        preprocess = preprocess if preprocess is not None else backbone.preprocess
    options = InferenceOptions.make(options)
    with merged_lora(model) if options.merge_lora else contextlib.nullcontext():
        head = encode_class_prompts(model, tokenizer, prompts, options)
        scores = score_images(model, head, images, preprocess, options, desc=desc)
    return head, scores
