"""``evaluate_generation()``: answers of one or several A³Tune adapters on a conversation split, scored.

For each adapter (``"none"`` = the base model, run through a zero-initialised plain-LoRA wrapper whose outputs
equal the base's exactly, so its attention can be recorded too): batched left-padded generation, the metrics
of :mod:`generation_metrics` with seeded bootstrap CIs, and the attention diagnostic of
:mod:`attention_diagnostic` against the manifest's true ``lesion_mask`` where a sample has one, else its weak
masks. Everything is computed before anything is written; then ``predictions.csv`` (one row per adapter ×
sample), ``metrics.json`` and ``results.md`` (one table row per adapter) are written atomically, plus
``overlays/<adapter>/<id>.png`` for the first ``overlays`` samples.
"""

from __future__ import annotations

import io
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medpeft.a3tune.collate import A3Collator
from medpeft.a3tune.config import A3TuneConfig
from medpeft.a3tune.examples import ConversationExamples
from medpeft.a3tune.model import A3TuneModel
from medpeft.a3tune.weak_labels.token_grid import to_token_grid
from medpeft.backbones.llava import load_llava
from medpeft.data.images import load_image
from medpeft.errors import ConfigError, DataError
from medpeft.evaluation.attention_diagnostic import attention_diagnostic
from medpeft.evaluation.generation import GenerationSettings, batches, generate_batch
from medpeft.evaluation.generation_metrics import VQA_METRICS, bootstrap_ci, summarize

log = logging.getLogger("medpeft.a3tune.eval")

RESULT_FILES = ("predictions.csv", "metrics.json", "results.md")
OVERLAY_DIR = "overlays"
#: Heads the diagnostic selects for the base model ('none'), as the paper-vqa preset (A3TUNE.md §B).
BASE_TOP_HEADS = 32
TABLE_COLUMNS = (
    ("adapter", "Adapter"),
    ("n", "N"),
    ("closed_accuracy", "Closed acc. (%)"),
    ("open_recall", "Open recall (%)"),
    ("exact_match", "Exact match (%)"),
    ("f1", "Token F1 (%)"),
    ("bleu4", "BLEU-4"),
    ("rouge_l", "ROUGE-L"),
    ("attention_in_mask", "Attn in mask"),
)


@dataclass
class _Overlay:
    name: str
    image: np.ndarray
    heat: np.ndarray
    title: str


def adapter_labels(adapters: list[str]) -> list[str]:
    """Short unique labels: 'base' for none, the run folder's name for ``RUN/final`` or ``RUN/best``, else the
    folder name (``_2``… on repeats)."""
    labels: list[str] = []
    for a in adapters:
        path = Path(a)
        if a.lower() == "none":
            label = "base"
        elif path.name in ("final", "best") and path.parent.name:
            label = path.parent.name
        else:
            label = path.name or str(a)
        unique, k = label, 2
        while unique in labels:
            unique, k = f"{label}_{k}", k + 1
        labels.append(unique)
    return labels


def _true_masks(examples: ConversationExamples, processor: Any) -> dict[int, torch.Tensor]:
    """Token-grid masks from the manifest's ``lesion_mask`` PNGs (index -> [1, g, g])."""
    out = {}
    for i, sample in enumerate(examples.samples):
        if not sample.lesion_mask:
            continue
        path = examples.folder / sample.lesion_mask
        mask = np.asarray(load_image(path).convert("L")) > 127
        out[i] = to_token_grid(mask[None].astype(np.uint8), grid=examples.grid, mode="aligned", processor=processor,
                               image_size=(mask.shape[1], mask.shape[0]))  # fmt: skip
    return out


def load_generation_model(base_name: str, adapter: str, device: torch.device,
                          check_base_name: bool = True) -> tuple[Any, Any]:  # fmt: skip
    """(base, A3TuneModel in eval mode) for ``adapter``: 'none' = the base through a zero-initialised plain-LoRA
    wrapper (outputs equal the base's; its attention can be recorded), else a folder or a Hub adapter."""
    base = load_llava(base_name, device=device)
    if adapter.lower() == "none":
        model = A3TuneModel(base, A3TuneConfig.plain_lora(top_heads=BASE_TOP_HEADS))
    else:
        from medpeft.hub import resolve_adapter

        folder = resolve_adapter(adapter)  # a local folder, or a Hub adapter (ORG/NAME, hf-hub:ORG/NAME@REV)
        if not folder.is_dir():
            raise DataError(f"adapter {adapter!r}: not a folder (an A³Tune adapter folder, e.g. RUN/final)")
        model = A3TuneModel.from_pretrained(base, folder, check_base_name=check_base_name)
    return base, model.eval()


def evaluate_generation(
    base_name: str,
    adapters: list[str],
    data_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    split: str = "test",
    weak_labels: str | os.PathLike[str] | None = None,
    batch_size: int = 8,
    settings: GenerationSettings | None = None,
    device: str = "auto",
    overlays: int = 0,
    n_boot: int = 1000,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
    check_base_name: bool = True,
) -> dict[str, Any]:
    """Score ``adapters`` (folders or 'none') on ``data_dir``'s ``split``; returns the metrics.json content."""
    from tqdm.auto import tqdm

    from medpeft.io import check_out_dir
    from medpeft.runtime import resolve_device, versions

    settings = settings or GenerationSettings()
    if not adapters:
        adapters = ["none"]
    if overlays < 0:
        raise ConfigError(f"overlays must be >= 0, got {overlays}")
    out = Path(out_dir)
    check_out_dir(out, may_reuse=overwrite, results=(*RESULT_FILES, OVERLAY_DIR))
    dev = resolve_device(device)
    labels = adapter_labels(adapters)
    rows: list[dict[str, Any]] = []
    summaries: dict[str, Any] = {}
    pictures: dict[str, list[_Overlay]] = {}
    match = None
    for adapter, label in zip(adapters, labels, strict=True):
        base, model = load_generation_model(base_name, adapter, dev, check_base_name)
        examples = ConversationExamples(data_dir, split, weak_labels=weak_labels, grid=base.grid,
                                        image_processor=base.image_processor, answers=False)  # fmt: skip
        match = examples.match
        true = _true_masks(examples, base.image_processor)
        collator = A3Collator(base.tokenizer, base.image_processor, base.image_token_id, base.grid,
                              padding_side="left")  # fmt: skip
        preds: list[str] = [""] * len(examples)
        ratio = [float("nan")] * len(examples)
        source = ["none"] * len(examples)
        pictures[label] = []
        bar = tqdm(total=len(examples), desc=f"generate {label}", unit="sample", disable=not progress)
        for idx, batch in batches(examples, collator, batch_size):
            texts, _ = generate_batch(model, batch, settings, base.tokenizer, dev)
            masks = []
            for row, i in enumerate(idx):
                preds[i] = texts[row]
                if i in true:
                    masks.append(true[i])
                    source[i] = "lesion"
                else:
                    masks.append(batch["weak_masks"][row])
                    source[i] = "weak" if masks[-1] is not None else "none"
            diag = attention_diagnostic(model, batch, masks, dev)
            for row, i in enumerate(idx):
                ratio[i] = diag.in_mask[row]
                if i < overlays:
                    from medpeft.evaluation.heatmap import display_image

                    proc = base.image_processor
                    image = display_image(batch["pixel_values"][row], proc.image_mean, proc.image_std)
                    title = f"{examples.samples[i].question} → {texts[row]}"
                    pictures[label].append(_Overlay(examples.samples[i].id, image, diag.heat[row], title))
            bar.update(len(idx))
        bar.close()
        samples = examples.samples
        per_sample, summary = summarize(preds, [s.answer for s in samples], [s.answer_type for s in samples],
                                        n_boot=n_boot, seed=seed)  # fmt: skip
        finite = [r for r in ratio if not math.isnan(r)]
        summary["attention_in_mask"] = float(np.mean(finite)) if finite else None
        summary["attention_in_mask_n"] = len(finite)
        summary["attention_in_mask_ci"] = bootstrap_ci(finite, n_boot=n_boot, seed=seed)
        summary["adapter"] = label
        summary["adapter_path"] = adapter
        summary["method"] = getattr(model.config, "method", None) if adapter.lower() != "none" else "base"
        summaries[label] = summary
        for i, s in enumerate(samples):
            row = {"adapter": label, "id": s.id, "answer_type": s.answer_type, "question": s.question,
                   "answer": s.answer, "prediction": preds[i]}  # fmt: skip
            row.update({m: per_sample[i].get(m) for m in (*VQA_METRICS, "rouge_l")})
            row["attention_in_mask"] = None if math.isnan(ratio[i]) else ratio[i]
            row["mask_source"] = source[i]
            rows.append(row)
        del model, base

    result = {
        "split": split,
        "data": str(data_dir),
        "base": base_name,
        "adapters": summaries,
        "settings": {
            "num_beams": settings.num_beams,
            "max_new_tokens": settings.max_new_tokens,
            "precision": settings.precision,
            "batch_size": batch_size,
            "bootstrap": n_boot,
            "seed": seed,
        },  # fmt: skip
        "weak_labels": None if match is None else match.to_dict(),
        "versions": versions(dev),
    }
    _write_results(out, rows, result, pictures)
    return result


def _write_results(out: Path, rows: list[dict[str, Any]], result: dict[str, Any],
                   pictures: dict[str, list[_Overlay]]) -> None:  # fmt: skip
    import pandas as pd

    from medpeft.evaluation.plots import save_overlay
    from medpeft.evaluation.report import markdown_table
    from medpeft.io import write_json, write_text

    out.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    pd.DataFrame(rows).to_csv(buf, index=False)
    write_text(out / "predictions.csv", buf.getvalue())
    write_json(out / "metrics.json", result)
    table_rows = list(result["adapters"].values())
    text = (
        f"# A³Tune generation: {result['data']} ({result['split']}), base {result['base']}\n\n"
        + markdown_table(table_rows, TABLE_COLUMNS, digits=3)
        + "\nClosed accuracy and open recall: the authors' definitions (normalised answers); brackets: 95% "
        "bootstrap intervals. Attn in mask: mean share of the selected heads' image attention inside the "
        "lesion (or weak) mask.\n"
    )
    if result["weak_labels"] is not None:
        w = result["weak_labels"]
        text += (
            f"\nWeak labels: {w['with_masks']} of {w['samples']} samples have masks; "
            f"{w['samples_without_weak_labels']} have none; {w['weak_label_ids_not_in_split']} weak-label id(s) "
            "are not in this split (ignored).\n"
        )
    write_text(out / "results.md", text)
    for label, items in pictures.items():
        for item in items:
            folder = out / OVERLAY_DIR / label
            folder.mkdir(parents=True, exist_ok=True)
            save_overlay(item.image, item.heat, folder / f"{item.name}.png", title=item.title)
