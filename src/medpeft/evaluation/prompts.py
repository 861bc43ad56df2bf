"""Class names and zero-shot prompt templates per dataset, and loading user templates.

Zero-shot numbers depend on the exact wording, so the defaults live in one place and follow the
BiomedCLIP / ACE-LoRA practice: findings named as radiologists write them ("pneumonia", "Pleural Effusion"),
"No Finding" as the negative class of the chest X-ray binary tasks, and a small ensemble of templates per
image family whose class embeddings are averaged by ``AceLoraModel.encode_prompts``.

``label_keys`` are the classes as the raw data spells them (CSV column, label value or folder name) and
``class_names`` the text that goes into the prompts; both are in the order of the model's outputs and of
``y_true`` indices.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from medpeft.data.datasets import REGISTRY, resolve_dataset
from medpeft.errors import ConfigError

CHEST_XRAY_TEMPLATES: tuple[str, ...] = (
    "a chest X-ray showing {}.",
    "{} presented in the chest radiograph.",
)
HISTOPATHOLOGY_TEMPLATES: tuple[str, ...] = (
    "a histopathology image showing {}.",
    "an H&E stained tissue slide of {}.",
    "{} presented in the histopathology image.",
)
# BiomedCLIP's own zero-shot template (its model card), as a selectable alternative.
BIOMEDCLIP_TEMPLATES: tuple[str, ...] = ("this is a photo of {}",)

TEMPLATE_SETS: dict[str, tuple[str, ...]] = {
    "chest-xray": CHEST_XRAY_TEMPLATES,
    "histopathology": HISTOPATHOLOGY_TEMPLATES,
    "biomedclip": BIOMEDCLIP_TEMPLATES,
}


@dataclass(frozen=True)
class DatasetPrompts:
    """What zero-shot evaluation of one dataset needs: the task, the classes and the default templates."""

    dataset: str
    task: str  # "multiclass" | "binary" | "multilabel" (as ``classification_metrics`` expects)
    label_keys: tuple[str, ...]
    class_names: tuple[str, ...]
    templates: tuple[str, ...]

    def prompts(self) -> list[list[str]]:
        """The default prompts, [C][T]."""
        return build_prompts(self.class_names, self.templates)


#: The zero-shot defaults of every registry dataset that has zero-shot classes (``data/datasets.py``).
DATASETS: dict[str, DatasetPrompts] = {
    name: DatasetPrompts(
        name,
        e.zero_shot.task,
        e.zero_shot.label_keys,
        e.zero_shot.class_names,
        TEMPLATE_SETS[e.zero_shot.template_set],
    )
    for name, e in REGISTRY.items()
    if e.zero_shot is not None
}


def dataset_prompts(dataset: str) -> DatasetPrompts:
    """The zero-shot defaults of ``dataset`` (aliases such as "nih" accepted); ``ConfigError`` lists the choices."""
    name = resolve_dataset(dataset)
    if name not in DATASETS:
        raise ConfigError(
            f"dataset {name!r} has no zero-shot classes (it is a training set); "
            f"zero-shot evaluation supports {', '.join(DATASETS)}"
        )
    return DATASETS[name]


def _check_template(template: str, where: str) -> str:
    if not isinstance(template, str):
        raise ConfigError(f"{where}: a template must be a string, got {type(template).__name__}")
    text = template.strip()
    if "{}" not in text:
        raise ConfigError(f"{where}: template {text!r} has no '{{}}' placeholder for the class name")
    return text


def load_templates(path: str | os.PathLike[str]) -> list[str] | dict[str, list[str]]:
    """Read user prompts: a text file of templates, or JSON.

    * Text (any extension but ``.json``): one template per line, each containing ``{}`` where the class name
      goes; blank lines and lines starting with ``#`` are ignored. Returns ``list[str]``.
    * JSON: either a list of templates (as above) or ``{class name: [prompt, ...]}`` with the full prompts of
      each class (a ``{}`` in them is replaced by the class name). Returns ``list[str]`` or
      ``dict[str, list[str]]``; both go to ``build_prompts``.

    Errors are ``ConfigError`` naming the file and line (or class).
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"prompt template file not found: {file}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read prompt template file {file}: {exc}") from exc

    if file.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"{file}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
            ) from exc
        if isinstance(data, list):
            if not data:
                raise ConfigError(f"{file}: the template list is empty")
            return [_check_template(t, f"{file}: entry {i}") for i, t in enumerate(data)]
        if isinstance(data, dict):
            if not data:
                raise ConfigError(f"{file}: no classes in the prompt mapping")
            prompts: dict[str, list[str]] = {}
            for name, items in data.items():
                if isinstance(items, str):
                    items = [items]
                if (
                    not isinstance(items, list)
                    or not items
                    or not all(isinstance(p, str) and p.strip() for p in items)
                ):
                    raise ConfigError(
                        f"{file}: class {name!r} must map to a non-empty list of prompt strings"
                    )
                prompts[name] = [p.strip() for p in items]
            return prompts
        raise ConfigError(f"{file}: JSON must be a list of templates or an object {{class: [prompts]}}")

    templates = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        templates.append(_check_template(stripped, f"{file}, line {number}"))
    if not templates:
        raise ConfigError(f"{file}: no templates (every line is blank or a # comment)")
    return templates


def build_prompts(
    class_names: Sequence[str], templates: Sequence[str] | Mapping[str, Sequence[str]]
) -> list[list[str]]:
    """Prompts [C][T]: each template filled with each class name, or each class's own prompts from a mapping.

    Every class needs the same number T of prompts, because the class embeddings are computed from one
    [C, T, L] token tensor.
    """
    if isinstance(class_names, str) or not class_names:
        raise ConfigError("class_names must be a non-empty list of strings")
    if isinstance(templates, Mapping):
        missing = [c for c in class_names if c not in templates]
        if missing:
            raise ConfigError(f"the prompt mapping has no prompts for {missing}; it has {sorted(templates)}")
        prompts = [[p.replace("{}", c) for p in templates[c]] for c in class_names]
        counts = {c: len(p) for c, p in zip(class_names, prompts, strict=True)}
        if len(set(counts.values())) != 1:
            raise ConfigError(f"every class needs the same number of prompts, got {counts}")
        if 0 in counts.values():
            raise ConfigError("every class needs at least one prompt")
        return prompts
    if isinstance(templates, str):
        templates = [templates]
    if not templates:
        raise ConfigError("no prompt templates given")
    checked = [_check_template(t, f"template {i}") for i, t in enumerate(templates)]
    return [[t.replace("{}", c) for t in checked] for c in class_names]
