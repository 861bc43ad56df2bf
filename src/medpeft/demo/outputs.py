"""The demo's result files: ``metrics.json`` (numbers only, reproducible) and ``report.md`` (for people).

``metrics.json`` holds no paths and no timings, so two runs with the same seed write identical files;
the wall time goes into ``report.md`` only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from medpeft.evaluation.report import markdown_table, metrics_row
from medpeft.io import write_json

FORMAT = "medpeft-demo/1"
#: Model key -> what it is, for metrics.json and the report.
MODEL_DESCRIPTIONS: dict[str, str] = {
    "base": "the generalist tiny CLIP, zero-shot, no adaptation",
    "lora": "LoRA on q/k/v of both encoders, label-guided InfoNCE, no hypergraph (LoRA only)",
    "ace-lora": "LoRA + ACE-HGNN on both encoders, label-guided InfoNCE (ACE-LoRA)",
}
_KEPT_METRICS = (
    "task",
    "n",
    "class_counts",
    "accuracy",
    "auroc",
    "f1",
    "balanced_accuracy",
    "per_class_auroc",
    "confusion_matrix",
    "ci",
)


def summarize_result(result: Mapping[str, Any]) -> dict[str, Any]:
    """The path-free part of an ``evaluate`` result: accuracy, AUROC, counts, per-class AUROC, CIs."""
    metrics = result["metrics"]
    out = {key: metrics[key] for key in _KEPT_METRICS if key in metrics}
    out["n_images"] = result["n_images"]
    out["n_skipped"] = result["n_skipped"]
    out["class_names"] = list(result["class_names"])
    return out


def margins(results: Mapping[str, Mapping[str, Mapping[str, Any]]], baseline: str = "base") -> dict[str, Any]:
    """``{model: {dataset: {"auroc": Δ, "accuracy": Δ}}}``: each adapted model minus the baseline."""
    out: dict[str, Any] = {}
    for model, per_dataset in results.items():
        if model == baseline:
            continue
        out[model] = {
            dataset: {
                key: round(float(m[key]) - float(results[baseline][dataset][key]), 6)
                for key in ("auroc", "accuracy")
            }
            for dataset, m in per_dataset.items()
        }
    return out


def build_metrics(
    *,
    seed: int,
    quick: bool,
    settings: Mapping[str, Any],
    results: Mapping[str, Mapping[str, Mapping[str, Any]]],
    models: Mapping[str, Mapping[str, Any]],
    training: Mapping[str, Any],
) -> dict[str, Any]:
    """The content of ``metrics.json``."""
    return {
        "format": FORMAT,
        "synthetic": True,
        "seed": seed,
        "quick": quick,
        "settings": dict(settings),
        "models": {name: dict(info) for name, info in models.items()},
        "training": dict(training),
        "results": {m: {d: dict(v) for d, v in per.items()} for m, per in results.items()},
        "margins": margins(results),
    }


def write_metrics(metrics: Mapping[str, Any], path: Path) -> Path:
    return write_json(path, metrics)


def _fmt(value: float, signed: bool = False) -> str:
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def results_table(metrics: Mapping[str, Any], datasets: Sequence[str]) -> str:
    """One row per dataset × model with AUROC, accuracy and counts (bootstrap intervals when computed)."""
    rows = []
    for dataset in datasets:
        for model, per in metrics["results"].items():
            m = per[dataset]
            row = metrics_row(m, dataset=dataset, model=model)
            counts = m.get("class_counts", {})
            row["counts"] = ", ".join(f"{k}: {v}" for k, v in counts.items())
            rows.append(row)
    columns = (
        ("dataset", "Dataset"),
        ("model", "Model"),
        ("n", "N"),
        ("auroc", "AUROC"),
        ("accuracy", "Accuracy"),
        ("counts", "Images per class"),
    )
    return markdown_table(rows, columns)


def gain_summary(metrics: Mapping[str, Any], datasets: Sequence[str]) -> list[str]:
    """One line per adapted model saying where it beat the base model's AUROC and by how much: the
    report states what this run measured, not what the method is expected to do."""
    lines = []
    for model, per in metrics["margins"].items():
        # rounded as printed, so that "+0.000" is never listed as a gain
        deltas = {d: round(float(per[d]["auroc"]), 3) for d in datasets}
        better = [f"{d} ({_fmt(v, signed=True)})" for d, v in deltas.items() if v > 0]
        worse = [f"{d} ({_fmt(v, signed=True)})" for d, v in deltas.items() if v <= 0]
        text = f"- **{model}** beats the base model's AUROC on " + (", ".join(better) if better else "no set")
        lines.append(text + (f"; not on {', '.join(worse)}." if worse else "."))
    lines += [
        "",
        "How large these gains are depends on the seed (the generalist's own scores vary most): compare",
        "`medpeft demo --seed S` for a few seeds before reading much into one run.",
    ]
    return lines


def margin_table(metrics: Mapping[str, Any], datasets: Sequence[str]) -> str:
    """AUROC and accuracy gains of each adapted model over the base model."""
    lines = ["| Dataset | " + " | ".join(f"{m} ΔAUROC | {m} Δacc." for m in metrics["margins"]) + " |"]
    lines.append("|" + " --- |" * (1 + 2 * len(metrics["margins"])))
    for dataset in datasets:
        cells = []
        for per in metrics["margins"].values():
            cells += [_fmt(per[dataset]["auroc"], True), _fmt(per[dataset]["accuracy"], True)]
        lines.append(f"| {dataset} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_report(
    metrics: Mapping[str, Any],
    path: Path,
    *,
    datasets: Sequence[str],
    wall_seconds: float,
    figures: Sequence[str],
) -> Path:
    """``report.md``: the numbers, what they mean, and where the figures are."""
    from medpeft.io import atomic_path

    models = metrics["models"]
    training = metrics["training"]
    lines = [
        "# medpeft demo: ACE-LoRA on synthetic data",
        "",
        "**Everything here is synthetic.** The images are drawn by `medpeft synth` (chest-radiograph-like",
        "pictures in which each finding is a local pattern) and the model is a tiny CLIP pre-trained for a",
        "minute or two on coarse captions. The numbers show that the pipeline works and what adaptation does; they",
        "say nothing about real radiographs or about BiomedCLIP.",
        "",
        f"Seed {metrics['seed']}{' (quick run: too short to show anything)' if metrics['quick'] else ''}; "
        f"wall time {wall_seconds:.0f} s.",
        "",
        "## What was run",
        "",
        f"1. A *generalist* tiny CLIP was trained on {training['generalist']['n_images']} synthetic radiographs and",
        "   histology tiles whose captions say what kind of image it is and describe what looks abnormal",
        '   in lay words ("an abnormal chest x-ray: a white lung base, no dense patch"), naming the finding',
        "   for only a fraction of mentions and never in a report's phrasing. It stands in for BiomedCLIP:",
        "   it knows the modality and has met the words loosely, not the language of radiology reports.",
        f"2. It was adapted on synthetic MIMIC-CXR ({training['mimic-cxr']['n_train']} frontal image-report pairs)",
        "   with `medpeft.train`, twice:",
    ]
    for name in ("lora", "ace-lora"):
        if name in models:
            info = models[name]
            lines.append(
                f"   - **{name}**: {info['description']}; {info['num_trainable']:,} trainable numbers."
            )
    lines += [
        "3. All three models were evaluated zero-shot with `medpeft.evaluate` (default prompts of",
        "   `medpeft.evaluation.prompts`) on synthetic CheXpert 5×200, RSNA Pneumonia and SIIM-ACR, none of",
        "   which was used for training.",
        "",
        "## Results",
        "",
        results_table(metrics, datasets),
        "AUROC is macro one-vs-rest for CheXpert 5×200 (5 classes) and of the positive class for RSNA",
        "(pneumonia) and SIIM (pneumothorax); accuracy is top-1 (5×200) or at probability 0.5 (binary).",
        "Intervals, when shown, are 95 % percentile-bootstrap intervals over images.",
        "",
        "### Gain over the base model",
        "",
        margin_table(metrics, datasets),
        "## What it means",
        "",
        "The base model has met the names of findings in only some of its captions, so how well a prompt",
        '("a chest X-ray showing pneumonia.") fits an image depends on the prompt\'s wording; on the binary',
        'sets its AUROC can sit well below 0.5 when its "pneumonia" and "No Finding" prompts point the wrong',
        "way. Adaptation on image-report pairs (a few thousand trainable numbers on the frozen backbone) is",
        "meant to tie the reports' words to the local patterns in the images and carry that zero-shot to",
        "datasets it never saw; the lines below say where it did in this run. ACE-LoRA's hypergraph lets the",
        "global embedding draw on the patches its attention points at; the heat maps below show those patches.",
        "",
        *gain_summary(metrics, datasets),
        "",
        "## Files",
        "",
        "- `metrics.json`: every number above (plus per-class AUROC, confusion matrices, counts, settings).",
        "- `eval/<model>/<dataset>/`: each evaluation's own `metrics.json`, `predictions.csv`, `roc.png`"
        " (ROC curves) and `results.md`.",
        "- `models/generalist/`: the pre-trained generalist (a backbone folder: `medpeft.load_backbone` reads it);",
        "  `models/lora/final`, `models/ace-lora/final`: the adapters (`AceLoraModel.from_pretrained`).",
        "- `data/raw/<dataset>`, `data/prepared/<dataset>`: the synthetic data in the real raw layouts and the",
        "  manifests `medpeft prepare` made from them.",
    ]
    if figures:
        lines += ["", "## Heat maps", ""]
        lines += [f"![{Path(f).stem}]({f})" for f in figures]
    text = "\n".join(lines) + "\n"
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path
