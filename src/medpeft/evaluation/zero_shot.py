"""Zero-shot classification of a prepared dataset: ``evaluate`` (one model, one dataset) and
``evaluate_many`` (several adapters × datasets, one combined table).

Why this shape: the paper's claims are zero-shot numbers, so one call must go from a ``prepare``d folder
(manifest CSV + ``dataset.json``) to every number and file a paper table needs, computed the same way
for the base model, LoRA-only and ACE-LoRA adapters. Images are scored in batches by
:func:`medpeft.evaluation.inference.score_images` (class embeddings computed once); metrics come from
:func:`medpeft.evaluation.metrics.classification_metrics` and plots from ``plots.py``.

Tasks and probabilities (see ``inference.py``): multi-class (chexpert-5x200, lc25000) and binary (rsna,
siim, mhist) use a softmax over the class prompts; multi-label (nih-cxr14) gives each label its own
probability from a softmax over the pair {"<label>", "no <label>"} prompts. Multi-label ground truth is
"1 = positive"; blank or -1 cells count as negative.

Files written to ``out_dir``: ``metrics.json``, ``predictions.csv`` (one row per image: ``image`` as in
the manifest, ``label``/``predicted`` or ``label:<class>``, ``prob:<class>``), ``roc.png``,
``confusion.png`` (not for multi-label tasks, whose per-label 2×2 matrices are in ``metrics.json``) and
``results.md``. Existing results are never overwritten unless ``overwrite=True``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medpeft.errors import ConfigError, DataError
from medpeft.evaluation.inference import ClassPrompts, classify_images
from medpeft.evaluation.options import InferenceOptions
from medpeft.io import check_out_dir
from medpeft.runtime import medpeft_version

METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.csv"
ROC_FILE = "roc.png"
CONFUSION_FILE = "confusion.png"
RESULTS_FILE = "results.md"
SUMMARY_FILE = "summary.json"
OUTPUT_FILES = (METRICS_FILE, PREDICTIONS_FILE, ROC_FILE, CONFUSION_FILE, RESULTS_FILE)

#: ``templates`` may be a file (see ``prompts.load_templates``), a list of "{}" templates, or full prompts per class.
Templates = str | os.PathLike | Sequence[str] | Mapping[str, Sequence[str]] | None
#: ``evaluate_many`` takes models or zero-argument callables that build one (so only one is alive at a time).
ModelSource = Any | Callable[[], Any]


# --------------------------------------------------------------------------- the evaluation set
@dataclass
class EvalSet:
    """A prepared split, resolved into what scoring needs: images, ground truth, class keys and prompts."""

    dataset: str
    split: str
    task: str
    manifest: Path
    frame: pd.DataFrame  # the manifest as written (``image`` relative), label columns as floats
    images: list[Path]
    y_true: np.ndarray  # [N] class indices (multiclass/binary) or [N, C] 0/1 (multilabel)
    class_keys: list[str]  # manifest label columns, in model-output order
    class_names: list[str]  # what the prompts call each class
    prompts: ClassPrompts


def resolve_templates(templates: Templates) -> list[str] | dict[str, list[str]] | None:
    """``None``, a named set of ``prompts.TEMPLATE_SETS`` ("chest-xray", "histopathology", "biomedclip"),
    a template file (``prompts.load_templates``), a list of "{}" templates or ``{class: [prompts]}``."""
    from medpeft.evaluation.prompts import TEMPLATE_SETS, load_templates

    if templates is None:
        return None
    if isinstance(templates, str) and templates in TEMPLATE_SETS and not Path(templates).exists():
        return list(TEMPLATE_SETS[templates])
    if isinstance(templates, (str, os.PathLike)):
        return load_templates(templates)
    if isinstance(templates, Mapping):
        return {str(k): list(v) for k, v in templates.items()}
    return list(templates)


def _class_prompts(
    task: str, class_keys: list[str], class_names: list[str], default_templates: Sequence[str], templates
) -> ClassPrompts:
    """Fill the templates for each class (and each "no <class>" for multi-label scoring)."""
    from medpeft.evaluation.prompts import build_prompts

    chosen = resolve_templates(templates)
    if chosen is None:
        chosen = list(default_templates)
    if isinstance(chosen, dict):
        # a mapping may be keyed by prompt names or by the manifest's label columns
        if not all(n in chosen for n in class_names) and all(k in chosen for k in class_keys):
            chosen = {
                **{n: chosen[k] for n, k in zip(class_names, class_keys, strict=True)},
                **{
                    f"no {n}": chosen[f"no {k}"]
                    for n, k in zip(class_names, class_keys, strict=True)
                    if f"no {k}" in chosen
                },
            }
    positive = build_prompts(class_names, chosen)
    negative = None
    if task == "multilabel":
        negated = [f"no {n}" for n in class_names]
        if isinstance(chosen, dict) and not all(n in chosen for n in negated):
            missing = [n for n in negated if n not in chosen]
            raise ConfigError(
                f"multi-label scoring compares each label with its negation; the prompt mapping has no "
                f"prompts for {missing[:3]}{' ...' if len(missing) > 3 else ''} (add 'no <class>' entries "
                "or use '{}' templates)"
            )
        negative = build_prompts(negated, chosen)
    return ClassPrompts(list(class_names), positive, negative)


def _prompt_defaults(name: str, info) -> tuple[list[str], list[str], tuple[str, ...]]:
    """(class keys in output order, prompt class names, default templates) for a prepared dataset."""
    from medpeft.evaluation import prompts

    keys = list(info.classes)
    if info.task == "binary" and info.positive_class is not None:
        if info.positive_class not in keys:
            raise DataError(f"dataset.json: positive_class {info.positive_class!r} is not one of {keys}")
        keys = [k for k in keys if k != info.positive_class] + [info.positive_class]
    if name not in prompts.DATASETS:
        # the user's own data (``prepare generic``): class names from dataset.json, BiomedCLIP's template
        names = [info.class_names[list(info.classes).index(k)] for k in keys]
        return keys, names, prompts.BIOMEDCLIP_TEMPLATES
    dp = prompts.DATASETS[name]
    if dp.task != info.task or len(dp.class_names) != len(keys):
        raise DataError(
            f"dataset.json describes a {info.task} task with classes {keys}, but the {name} prompts expect a "
            f"{dp.task} task with {len(dp.class_names)} classes; re-run 'medpeft prepare {name}'"
        )
    if set(dp.label_keys) == set(keys):
        by_key = dict(zip(dp.label_keys, dp.class_names, strict=True))
        names = [by_key[k] for k in keys]
    else:
        # binary datasets whose raw labels are 0/1 (rsna Target, siim): [negative, positive] in order
        names = list(dp.class_names)
    return keys, names, dp.templates


def _labels(frame: pd.DataFrame, keys: list[str], task: str, manifest: Path) -> np.ndarray:
    values = frame[keys].to_numpy(dtype=np.float64)
    positive = values == 1.0
    if task == "multilabel":
        return positive.astype(np.int64)
    counts = positive.sum(axis=1)
    bad = np.flatnonzero(counts != 1)
    if bad.size:
        row = int(bad[0])
        raise DataError(
            f"manifest {manifest} line {row + 2}: a {task} row needs exactly one of {keys} equal to 1, "
            f"found {int(counts[row])} ({bad.size} such rows)"
        )
    return positive.argmax(axis=1).astype(np.int64)


def load_eval_set(
    data_dir: str | os.PathLike,
    *,
    dataset: str | None = None,
    split: str = "test",
    templates: Templates = None,
    check_files: bool = True,
) -> EvalSet:
    """Read ``dataset.json`` and the split's manifest from a prepared folder and build the class prompts."""
    from medpeft.data.manifest import read_dataset_info, read_manifest

    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"data folder not found: {data_dir}")
    info = read_dataset_info(data_dir)
    if dataset is not None and dataset != info.name:
        from medpeft.evaluation.prompts import dataset_prompts

        wanted = dataset_prompts(dataset).dataset  # unknown names -> ConfigError listing the choices
        if wanted != info.name:
            raise ConfigError(f"{data_dir} holds the prepared dataset {info.name!r}, not {wanted!r}")
    name = info.name
    manifest = data_dir / info.splits.get(split, f"{split}.csv")
    if not manifest.is_file():
        available = ", ".join(sorted(info.splits)) or "none"
        raise DataError(
            f"{data_dir} has no {split!r} split (manifest {manifest.name} not found; splits: {available})"
        )
    frame = read_manifest(manifest, check_files=check_files, resolve_paths=False)
    keys, names, default_templates = _prompt_defaults(name, info)
    y = _labels(frame, keys, info.task, manifest)
    images = [p if p.is_absolute() else manifest.parent / p for p in map(Path, frame["image"])]
    class_prompts = _class_prompts(info.task, keys, names, default_templates, templates)
    return EvalSet(name, split, info.task, manifest, frame, images, y, keys, names, class_prompts)


# --------------------------------------------------------------------------- outputs
def check_results_dir(out_dir: Path, overwrite: bool, files: Sequence[str] = OUTPUT_FILES) -> None:
    """Fail before any work when ``out_dir`` already holds evaluation results (``OutputExistsError``)."""
    check_out_dir(
        out_dir,
        may_reuse=overwrite,
        results=files,
        advice="use --overwrite (overwrite=True) to replace them, or choose another output folder",
    )


def model_kind(model: Any) -> str:
    """'base', 'lora' or 'ace-lora', from the model's config (for tables and metrics.json)."""
    config = getattr(model, "config", None)
    if config is None:
        return "custom"
    if getattr(config, "hgnn", ()):
        return "ace-lora"
    return "lora" if getattr(config, "lora_encoders", ()) else "base"


def _predictions_frame(es: EvalSet, probs: np.ndarray, kept: list[int]) -> pd.DataFrame:
    rows = es.frame.iloc[kept]
    out = pd.DataFrame({"image": rows["image"].to_numpy()})
    for column in ("subject_id", "study_id", "image_id"):
        if column in rows.columns:
            out[column] = rows[column].to_numpy()
    y = es.y_true[kept]
    if es.task == "multilabel":
        for j, key in enumerate(es.class_keys):
            out[f"label:{key}"] = y[:, j]
    else:
        out["label"] = [es.class_keys[i] for i in y]
        out["predicted"] = [es.class_keys[i] for i in probs.argmax(axis=1)]
    for j, key in enumerate(es.class_keys):
        out[f"prob:{key}"] = probs[:, j]
    return out


def _write_text(path: Path, text: str) -> None:
    from medpeft.io import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _write_csv(path: Path, frame: pd.DataFrame) -> None:
    from medpeft.io import atomic_path

    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)  # full precision: the CSV reproduces metrics.json exactly


def results_table(results: Sequence[Mapping[str, Any]]) -> str:
    """The combined markdown table of several ``evaluate`` results (one row per model × dataset)."""
    from medpeft.evaluation.report import CLASSIFICATION_COLUMNS, markdown_table, metrics_row

    rows = [
        metrics_row(r["metrics"], dataset=f"{r['dataset']} ({r['split']})", adapter=r["model"]["name"])
        for r in results
    ]
    return markdown_table(rows, CLASSIFICATION_COLUMNS)


def _results_markdown(result: Mapping[str, Any]) -> str:
    m = result["metrics"]
    ci = m.get("ci", {})
    lines = [
        f"# Zero-shot {result['dataset']} ({result['split']}): {result['model']['name']}",
        "",
        results_table([result]),
        f"Task: {m['task']}; {m['n']} images"
        + (f" ({result['n_skipped']} unreadable images skipped)" if result["n_skipped"] else "")
        + f"; {ci.get('level', 0.95):.0%} percentile-bootstrap intervals over {ci.get('n_used', 0)} resamples.",
        f"Scoring: {result['scoring']}; logit scale {result['logit_scale']:.4g}.",
        "",
        "| Class | AUROC | F1 |",
        "| --- | --- | --- |",
    ]
    for name in m["class_names"]:
        auc = m["per_class_auroc"].get(name)
        f1 = m["per_class_f1"].get(name)
        lines.append(
            f"| {name} | {'n/a' if auc is None else f'{auc:.3f}'} | {'n/a' if f1 is None else f'{f1:.3f}'} |"
        )
    return "\n".join(lines) + "\n"


def _write_outputs(
    out_dir: Path, result: dict[str, Any], es: EvalSet, probs: np.ndarray, kept: list[int]
) -> None:
    from medpeft.evaluation.plots import save_confusion_matrix, save_roc_curves
    from medpeft.io import write_json

    out_dir.mkdir(parents=True, exist_ok=True)
    y = es.y_true[kept]
    title = f"{result['model']['name']} on {es.dataset} ({es.split})"
    files = {
        "metrics": METRICS_FILE,
        "predictions": PREDICTIONS_FILE,
        "roc": ROC_FILE,
        "results": RESULTS_FILE,
    }
    _write_csv(out_dir / PREDICTIONS_FILE, _predictions_frame(es, probs, kept))
    save_roc_curves(y, probs, es.task, es.class_keys, out_dir / ROC_FILE, title=title)
    if result["metrics"].get("confusion_matrix") is not None:
        save_confusion_matrix(
            result["metrics"]["confusion_matrix"], es.class_keys, out_dir / CONFUSION_FILE, title=title
        )
        files["confusion"] = CONFUSION_FILE
    result["files"] = files
    _write_text(out_dir / RESULTS_FILE, _results_markdown(result))
    write_json(out_dir / METRICS_FILE, result)  # last: its presence marks a complete result


# --------------------------------------------------------------------------- evaluate
def evaluate(
    model: Any,
    data_dir: str | os.PathLike,
    *,
    dataset: str | None = None,
    split: str = "test",
    templates: Templates = None,
    options: InferenceOptions | None = None,
    out_dir: str | os.PathLike | None = None,
    overwrite: bool = False,
    n_bootstrap: int = 1000,
    seed: int = 0,
    name: str | None = None,
    tokenizer: Any | None = None,
    preprocess: Callable | None = None,
    **option_overrides: Any,
) -> dict[str, Any]:
    """Zero-shot classification of one prepared split; returns (and writes to ``out_dir``) the results.

    ``data_dir`` is a ``medpeft prepare`` output (``dataset.json`` + ``<split>.csv``); ``dataset``, when
    given, must match it. ``templates``: ``None`` (the dataset's defaults from ``prompts.py``), a template
    file, a list of "{}" templates or ``{class: [prompts]}``. ``options`` (``InferenceOptions``, or keyword
    overrides such as ``device="cuda"``, ``precision="bf16"``) says how it runs. ``on_bad_image="skip"`` leaves unreadable images out and lists them in the result. ``name`` labels the
    model in tables (default: its kind, e.g. "ace-lora"). The returned dict is what ``metrics.json`` holds:
    ``metrics`` (``classification_metrics``), the prompts, the model, skipped images and run settings.
    """
    from medpeft.evaluation.metrics import classification_metrics

    options = InferenceOptions.make(options, **option_overrides)
    on_bad_image = options.on_bad_image
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        check_results_dir(out, overwrite)
    es = load_eval_set(
        data_dir, dataset=dataset, split=split, templates=templates, check_files=on_bad_image == "error"
    )
    head, scores = classify_images(
        model,
        es.prompts,
        es.images,
        tokenizer=tokenizer,
        preprocess=preprocess,
        options=options,
        desc=f"{es.dataset} {es.split}",
    )
    if not scores.kept:
        raise DataError(f"none of the {len(es.images)} images of {es.manifest} could be read")
    y = es.y_true[scores.kept]
    metrics = classification_metrics(
        y, scores.probs, es.task, es.class_keys, n_bootstrap=n_bootstrap, seed=seed
    )
    kind = model_kind(model)
    result: dict[str, Any] = {
        "dataset": es.dataset,
        "split": es.split,
        "manifest": str(es.manifest),
        "model": {
            "name": name or kind,
            "kind": kind,
            "backbone": getattr(getattr(model, "backbone", None), "name", None),
            "config": model.config.to_dict() if hasattr(getattr(model, "config", None), "to_dict") else None,
        },
        "n_images": len(es.images),
        "n_scored": len(scores.kept),
        "n_skipped": len(scores.skipped),
        "skipped": [{"image": str(es.frame["image"].iat[i]), "reason": msg} for i, msg in scores.skipped],
        "class_keys": es.class_keys,
        "class_names": es.class_names,
        "scoring": head.scoring,
        "prompts": head.prompts,
        "logit_scale": head.logit_scale,
        "settings": {
            "batch_size": options.batch_size,
            "workers": options.workers,
            "device": scores.device,
            "precision": scores.precision,
            "n_bootstrap": n_bootstrap,
            "seed": seed,
            "on_bad_image": on_bad_image,
        },
        "medpeft_version": medpeft_version(),
        "metrics": metrics,
    }
    if out is not None:
        _write_outputs(out, result, es, scores.probs, scores.kept)
        result["out_dir"] = str(out)
    return result


def _slug(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    return slug or "run"


def evaluate_many(
    models: Mapping[str, ModelSource],
    datasets: Mapping[str, str | os.PathLike],
    *,
    out_dir: str | os.PathLike | None = None,
    overwrite: bool = False,
    **options: Any,
) -> dict[str, Any]:
    """Every model on every dataset, with one combined markdown table.

    ``models`` maps a display name to a model or to a zero-argument callable that builds one (built when its
    turn comes and released afterwards: LoRA is injected into a backbone in place, so two adapters cannot
    share one). ``datasets`` maps a dataset name (as ``evaluate``'s ``dataset``) to its prepared folder.
    Each run writes to ``out_dir/<model>/<dataset>/``; ``out_dir/results.md`` and ``out_dir/summary.json``
    hold the combined table and every result. ``options`` go to :func:`evaluate`.
    Returns ``{"runs": [result, ...], "table": markdown}``.
    """
    from medpeft.io import write_json

    if not models:
        raise ConfigError("evaluate_many needs at least one model")
    if not datasets:
        raise ConfigError("evaluate_many needs at least one dataset")
    if "name" in options:
        raise ConfigError("evaluate_many names the models by the keys of 'models'")
    out = Path(out_dir) if out_dir is not None else None
    slugs = {m: _slug(m) for m in models}
    if len(set(slugs.values())) != len(slugs):
        raise ConfigError(f"model names must stay distinct as folder names: {list(models)}")
    if out is not None:
        check_results_dir(out, overwrite, files=(RESULTS_FILE, SUMMARY_FILE))
        for m in models:
            for d in datasets:
                check_results_dir(out / slugs[m] / _slug(d), overwrite)
    for d, folder in datasets.items():  # fail on a bad dataset before loading any model
        load_eval_set(
            folder,
            dataset=d,
            split=options.get("split", "test"),
            templates=options.get("templates"),
            check_files=False,
        )
    runs: list[dict[str, Any]] = []
    for model_name, source in models.items():
        model = source() if callable(source) and not hasattr(source, "encode_image") else source
        for d, folder in datasets.items():
            run_dir = out / slugs[model_name] / _slug(d) if out is not None else None
            runs.append(
                evaluate(
                    model, folder, dataset=d, out_dir=run_dir, overwrite=overwrite, name=model_name, **options
                )
            )
        del model
    table = results_table(runs)
    if out is not None:
        _write_text(out / RESULTS_FILE, "# Zero-shot results\n\n" + table)
        write_json(out / SUMMARY_FILE, {"runs": runs, "table": table})
    return {"runs": runs, "table": table}
