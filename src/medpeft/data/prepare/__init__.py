"""``prepare``: turn a raw dataset layout into validated manifests (one module per dataset).

Everything is written into a staging folder beside ``out`` and moved into place only when the run
succeeds, so a failed run (a bad row, a corrupt image) leaves no half-written output behind and the
next attempt does not need ``--overwrite``.
"""

from __future__ import annotations

import importlib
import inspect
import os
import shutil
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from medpeft.data.datasets import REGISTRY, resolve_dataset
from medpeft.data.manifest import (
    SUMMARY,
    read_manifest,
    write_dataset_info,
    write_manifest,
    write_summary,
)
from medpeft.data.prepare.context import PrepareContext, Prepared
from medpeft.data.prepare.conversation import PreparedConversations
from medpeft.data.prepare.report import format_summary
from medpeft.data.prepare.splits import check_fraction, fraction_name, nested_fraction
from medpeft.errors import ConfigError, DataError
from medpeft.io import check_out_dir

__all__ = ["prepare", "format_summary"]

#: The user's own image-text CSV: prepared by ``generic``, not a registry dataset.
GENERIC = "generic"
#: LLaVA-style JSON (the A³Tune authors' released ``data/<DS>/{training,test}.json``): not a registry dataset.
LLAVA_JSON = "llava-json"
#: Inputs that are formats, not datasets: name -> preparer module.
FORMATS = {GENERIC: "generic", LLAVA_JSON: "llava_json"}


def preparer_module(name: str) -> str:
    """The module under ``medpeft.data.prepare`` that prepares the canonical dataset ``name``."""
    return FORMATS[name] if name in FORMATS else REGISTRY[name].preparer


def resolve_name(dataset: str) -> str:
    """Canonical dataset name (aliases allowed); ``generic`` for a user's own image-text CSV,
    ``llava-json`` for LLaVA-style conversation JSON."""
    key = dataset.strip().lower().replace("_", "-")
    if key in FORMATS:
        return key
    try:
        return resolve_dataset(dataset)
    except ConfigError as err:
        raise ConfigError(
            f"{err}; or 'generic' for your own image-text CSV, 'llava-json' for LLaVA-style conversation JSON"
        ) from None


def options_of(dataset: str) -> dict[str, Any]:
    """The dataset-specific keyword options of ``prepare(dataset, ...)`` with their defaults."""
    module = importlib.import_module(f"medpeft.data.prepare.{preparer_module(resolve_name(dataset))}")
    params = inspect.signature(module.build).parameters
    return {k: p.default for k, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}


def _is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


def _check_out(raw: Path, out: Path, overwrite: bool) -> None:
    r, o = raw.resolve(), out.resolve()
    if o == r or o in r.parents or r in o.parents:
        raise ConfigError(
            f"--out {out} and --raw {raw} must not be inside one another: use a separate folder"
        )
    check_out_dir(out, may_reuse=overwrite, advice="use --overwrite to replace it")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _publish(stage: Path, out: Path, outputs: Sequence[str]) -> None:
    """Move staged outputs into ``out``; remove what an earlier ``prepare`` there had written."""
    import json

    out.mkdir(parents=True, exist_ok=True)
    old_summary = out / SUMMARY
    if old_summary.is_file():
        try:
            previous = json.loads(old_summary.read_text()).get("outputs", [])
        except (json.JSONDecodeError, AttributeError):
            previous = []
        for name in previous:
            if isinstance(name, str) and name and "/" not in name and name not in ("..", "."):
                _remove(out / name)
    for name in outputs:
        _remove(out / name)
        os.replace(stage / name, out / name)
    shutil.rmtree(stage, ignore_errors=True)


def _label_of(df: pd.DataFrame, prepared: Prepared) -> list[int] | None:
    """Per-row class index for stratifying fractions (multiclass/binary), else None."""
    if prepared.info.task == "multilabel" or not prepared.info.classes:
        return None
    onehot = df[list(prepared.info.classes)].apply(pd.to_numeric, errors="coerce").fillna(0).to_numpy()
    return onehot.argmax(axis=1).tolist()


def _write_fractions(
    prepared: Prepared, fractions: Sequence[float], seed: int, stage: Path
) -> dict[str, int]:
    train = prepared.splits.get("train")
    if train is None:
        raise ConfigError(
            f"--fraction needs a training split, but {prepared.info.name} has only {', '.join(prepared.splits)}"
        )
    group_col = prepared.group_column if prepared.group_column in train.columns else "image"
    labels = _label_of(train, prepared)
    # one label per group (the first row's), so whole patients are sampled
    first = train.drop_duplicates(group_col)
    group_labels = None if labels is None else [labels[i] for i in first.index]
    written: dict[str, int] = {}
    for fraction in sorted(set(check_fraction(f) for f in fractions)):
        chosen = nested_fraction(first[group_col].tolist(), group_labels, fraction, seed=seed)
        subset = train[train[group_col].isin(chosen)]
        name = fraction_name(fraction)
        write_manifest(subset, stage / name)
        prepared.info.fractions[f"{fraction:g}"] = name
        written[name] = len(subset)
    return written


def _class_counts(df: pd.DataFrame, classes: Sequence[str]) -> dict[str, int]:
    counts = {}
    for c in classes:
        counts[c] = int((pd.to_numeric(df[c], errors="coerce") == 1).sum()) if c in df.columns else 0
    return counts


def prepare(
    dataset: str,
    raw: str | Path,
    out: str | Path,
    *,
    image_size: int | None = None,
    seed: int = 0,
    overwrite: bool = False,
    fractions: Sequence[float] = (),
    on_missing: str = "error",
    on_bad_image: str = "error",
    verify_images: bool = True,
    workers: int | None = None,
    progress: bool = True,
    **options: Any,
) -> dict[str, Any]:
    """Read ``dataset``'s raw layout under ``raw`` and write manifests into ``out``; returns the summary.

    ``image_size`` writes a resized cache (shorter side) under ``out/images``; ``fractions`` writes
    nested seeded subsets of the training split; ``on_missing``/``on_bad_image`` choose between an
    error (default) and skip-and-count. Dataset-specific ``options`` are listed by :func:`options_of`.
    """
    name = resolve_name(dataset)
    # Absolute from here on: manifests hold paths relative to ``out``, computed against ``raw``.
    raw, out = Path(raw).expanduser().absolute(), Path(out).expanduser().absolute()
    if not raw.exists():
        raise DataError(f"--raw {raw} does not exist")
    _check_out(raw, out, overwrite)
    module = importlib.import_module(f"medpeft.data.prepare.{preparer_module(name)}")
    accepted = options_of(name)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(
            f"unknown option(s) for {name}: {', '.join(unknown)}; accepted: {', '.join(accepted) or 'none'}"
        )
    for f in fractions:
        check_fraction(f)
    if image_size is not None and image_size < 8:
        raise ConfigError(f"--image-size must be at least 8 pixels, got {image_size}")

    stage = out.parent / f".{out.name}.partial-{os.getpid()}"
    _remove(stage)
    stage.mkdir(parents=True)
    try:
        ctx = PrepareContext(
            dataset=name,
            raw=raw,
            out_dir=out,
            stage_dir=stage,
            image_size=image_size,
            seed=seed,
            on_missing=on_missing,
            on_bad_image=on_bad_image,
            verify_images=verify_images,
            workers=workers,
            progress=progress,
        )
        prepared: Prepared | PreparedConversations = module.build(ctx, **options)
        if isinstance(prepared, PreparedConversations):
            summary = _write_conversation_folder(prepared, ctx, stage, fractions)
            summary.update(
                {
                    "raw": str(raw.resolve()),
                    "out": str(out.resolve()),
                    "image_size": image_size,
                    "seed": seed,
                    "options": {
                        "on_missing": on_missing,
                        "on_bad_image": on_bad_image,
                        "verify_images": verify_images,
                        **{
                            k: (str(v) if isinstance(v, Path) else v)
                            for k, v in {**accepted, **options}.items()
                        },
                    },
                }
            )
            _finish_summary(summary, stage, out)
            return summary
        if not any(len(df) for df in prepared.splits.values()):
            raise DataError(
                f"no {name} images left to write under {raw}; dropped: {dict(ctx.report.dropped) or 'nothing'}"
            )
        info = prepared.info
        info.image_size = image_size
        for split, df in prepared.splits.items():
            if len(df):
                write_manifest(df, stage / f"{split}.csv")
                info.splits[split] = f"{split}.csv"
            else:
                ctx.report.note(f"the {split} split is empty after filtering; {split}.csv was not written")
        fraction_counts = _write_fractions(prepared, fractions, seed, stage) if fractions else {}
        write_dataset_info(stage, info)
        for manifest in [*info.splits.values(), *info.fractions.values()]:
            read_manifest(stage / manifest, check_files=True, check_mask_sizes=info.has_mask)
        ctx.report.kept = {s: len(df) for s, df in prepared.splits.items() if len(df)}
        summary = ctx.report.to_dict()
        outputs = sorted(p.name for p in stage.iterdir()) + [SUMMARY]
        summary.update(
            {
                "raw": str(raw.resolve()),
                "out": str(out.resolve()),
                "image_size": image_size,
                "seed": seed,
                "options": {
                    "on_missing": on_missing,
                    "on_bad_image": on_bad_image,
                    "verify_images": verify_images,
                    "fractions": list(fractions),
                    **{k: (str(v) if isinstance(v, Path) else v) for k, v in {**accepted, **options}.items()},
                },
                "fractions": fraction_counts,
                "class_counts": {
                    s: _class_counts(df, info.classes) for s, df in prepared.splits.items() if len(df)
                },
                "task": info.task,
                "classes": info.classes,
                "outputs": outputs,
            }
        )
        _finish_summary(summary, stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return summary


def _finish_summary(summary: dict[str, Any], stage: Path, out: Path) -> None:
    """Stamp the version, write ``prepare_summary.json`` and publish the staged folder."""
    from medpeft.runtime import medpeft_version

    summary["outputs"] = sorted(p.name for p in stage.iterdir()) + [SUMMARY]
    summary["medpeft_version"] = medpeft_version()
    write_summary(stage, summary)
    _publish(stage, out, summary["outputs"])


def _write_conversation_folder(
    prepared: PreparedConversations, ctx: PrepareContext, stage: Path, fractions: Sequence[float]
) -> dict[str, Any]:
    """``<split>.jsonl`` per non-empty split and ``dataset.json``, each read back and checked."""
    from medpeft.data.conversation_info import ConversationInfo, write_conversation_info
    from medpeft.data.conversations import image_paths, read_conversations, write_conversations

    if fractions:
        raise ConfigError(
            f"--fraction applies to image-label manifests, not to {prepared.name}'s conversations"
        )
    if not any(prepared.splits.values()):
        raise DataError(
            f"no {prepared.name} samples left to write under {ctx.raw}; "
            f"dropped: {dict(ctx.report.dropped) or 'nothing'}"
        )
    info = ConversationInfo(
        name=prepared.name,
        kind=prepared.kind,
        weak_label_k=_weak_label_k(prepared.name, prepared.kind),
        has_lesion_mask=prepared.has_lesion_mask,
        image_size=ctx.image_size,
        source=prepared.source,
    )
    for split, samples in prepared.splits.items():
        if not samples:
            ctx.report.note(f"the {split} split is empty after filtering; {split}.jsonl was not written")
            continue
        write_conversations(stage / f"{split}.jsonl", samples)
        info.splits[split] = f"{split}.jsonl"
        info.counts[split] = dict(sorted(Counter(s.answer_type for s in samples).items()))
    write_conversation_info(stage, info)
    for name in info.splits.values():  # read back exactly as consumers will
        back = read_conversations(stage / name)
        files = [p if p.is_file() else ctx.out_dir / p.relative_to(stage) for p in image_paths(stage, back)]
        missing = [str(p) for p in files if not p.is_file()]
        if missing:
            raise DataError(f"{name}: {len(missing)} image file(s) missing after prepare, e.g. {missing[0]}")
    ctx.report.kept = {s: len(v) for s, v in prepared.splits.items() if v}
    summary = ctx.report.to_dict()
    summary.update(
        {"unit": "samples", "kind": prepared.kind, "answer_types": info.counts, "source": prepared.source}
    )
    return summary


def _weak_label_k(name: str, kind: str) -> int | None:
    """The registry's weak-label K; a dataset prepared for generation (mimic-cxr) or LLaVA JSON by kind."""
    from medpeft.data.datasets import WEAK_LABEL_K

    entry = REGISTRY.get(name)
    if entry is not None and entry.weak_label_k is not None:
        return entry.weak_label_k
    return WEAK_LABEL_K.get(kind)
