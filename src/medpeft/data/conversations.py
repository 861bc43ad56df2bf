"""The conversation manifest: one format for every A³Tune dataset (VQA and report generation).

A prepared folder holds ``dataset.json`` and one ``<split>.jsonl`` per split (``train``, ``validate``,
``test``), one sample per line::

    {"id": "slake-123", "image": "images/xmlab102.png",
     "conversations": [{"from": "human", "value": "<image>\\nIs the lung healthy?"},
                       {"from": "gpt", "value": "No"}],
     "answer_type": "closed", "organ": "lung", "modality": "CT", "split": "train", "dataset": "slake"}

``image`` is relative to the folder (several images: ``images``, a list; the first is the model's input).
The human turn carries LLaVA's ``<image>`` placeholder and the question (or, for reports, the
instruction); the assistant turn is the answer or report. ``answer_type`` is ``closed`` (yes/no and
other closed-set answers), ``open`` or ``report``. ``organ``/``modality`` are null where a dataset has none.
Optional: ``lesion_mask`` (a mask PNG of the true lesion, synthetic data only) for attention diagnostics.
The LLaVA-style JSON list the authors release (``data/<DS>/{training,test}.json``) reads the same way.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from medpeft.errors import DataError

IMAGE_TOKEN = "<image>"
ANSWER_TYPES = ("closed", "open", "report")
SPLITS = ("train", "validate", "test")
REQUIRED = ("id", "image", "conversations", "answer_type")


@dataclass
class ConversationSample:
    """One manifest line (see the module docstring)."""

    id: str
    image: str
    conversations: list[dict[str, str]]
    answer_type: str
    split: str = "train"
    dataset: str | None = None
    organ: str | None = None
    modality: str | None = None
    images: list[str] | None = None
    lesion_mask: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def question(self) -> str:
        """The first human turn without the image placeholder."""
        text = self.conversations[0]["value"]
        return text.replace(IMAGE_TOKEN, "").strip()

    @property
    def answer(self) -> str:
        """The first assistant turn."""
        return self.conversations[1]["value"]

    def to_json(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k != "extra" and v is not None}
        data.update(self.extra)
        return data


def make_sample(
    id: str,
    image: str,
    question: str,
    answer: str,
    answer_type: str,
    **fields: Any,
) -> ConversationSample:
    """A sample from a question and an answer (the human turn gets LLaVA's ``<image>\\n`` prefix)."""
    turns = [{"from": "human", "value": f"{IMAGE_TOKEN}\n{question}"}, {"from": "gpt", "value": answer}]
    return ConversationSample(id=str(id), image=image, conversations=turns, answer_type=answer_type, **fields)


def parse_sample(obj: Any, where: str) -> ConversationSample:
    """Validate one manifest object; ``DataError`` names ``where`` (file and line) and the field."""
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    if "answer_type" not in obj:  # the authors' released JSON has no answer type: closed = yes/no
        obj = {**obj, "answer_type": _infer_answer_type(obj)}
    missing = [k for k in REQUIRED if k not in obj or obj[k] in (None, "")]
    if missing:
        raise DataError(f"{where}: missing field(s) {missing}")
    turns = obj["conversations"]
    if (
        not isinstance(turns, list)
        or len(turns) < 2
        or not all(isinstance(t, dict) and isinstance(t.get("value"), str) for t in turns)
    ):
        raise DataError(f"{where}: field 'conversations' must be a list of >= 2 {{from, value}} turns")
    if turns[0].get("from") != "human" or turns[1].get("from") not in ("gpt", "assistant"):
        raise DataError(f"{where}: field 'conversations' must start with a human turn and an assistant turn")
    if IMAGE_TOKEN not in turns[0]["value"]:
        raise DataError(f"{where}: the human turn has no {IMAGE_TOKEN} placeholder")
    if obj["answer_type"] not in ANSWER_TYPES:
        raise DataError(
            f"{where}: field 'answer_type' is {obj['answer_type']!r}, expected one of {ANSWER_TYPES}"
        )
    known = {f for f in ConversationSample.__dataclass_fields__ if f != "extra"}
    fields = {k: v for k, v in obj.items() if k in known}
    fields["id"] = str(fields["id"])
    extra = {k: v for k, v in obj.items() if k not in known}
    return ConversationSample(**fields, extra=extra)


def _infer_answer_type(obj: dict[str, Any]) -> str:
    turns = obj.get("conversations") or []
    answer = turns[1].get("value", "") if len(turns) > 1 and isinstance(turns[1], dict) else ""
    return "closed" if str(answer).strip().lower() in ("yes", "no") else "open"


def read_conversations(path: str | os.PathLike[str], split: str | None = None) -> list[ConversationSample]:
    """Samples of a prepared folder's split (``<split>.jsonl``), a ``.jsonl`` file, or a LLaVA-style JSON
    list (the authors' released files). Every line is validated; ids must be unique."""
    path = Path(path)
    if path.is_dir():
        if split is None:
            raise DataError(f"{path}: a folder needs a split (one of {SPLITS})")
        path = path / f"{split}.jsonl"
    if not path.is_file():
        raise DataError(f"{path}: conversation manifest not found")
    samples: list[ConversationSample] = []
    if path.suffix == ".json":
        try:
            items = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise DataError(f"{path}: invalid JSON ({err})") from err
        if not isinstance(items, list):
            raise DataError(f"{path}: expected a JSON list of samples")
        samples = [parse_sample(o, f"{path} item {i}") for i, o in enumerate(items)]
    else:
        with open(path, encoding="utf-8") as fh:
            for n, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as err:
                    raise DataError(f"{path} line {n}: invalid JSON ({err.msg})") from err
                samples.append(parse_sample(obj, f"{path} line {n}"))
    seen: set[str] = set()
    for s in samples:
        if s.id in seen:
            raise DataError(f"{path}: sample id {s.id!r} appears twice")
        seen.add(s.id)
    return samples


def write_conversations(path: str | os.PathLike[str], samples: Iterable[ConversationSample]) -> Path:
    """Write a ``.jsonl`` manifest atomically (one sample per line, keys in a fixed order)."""
    from medpeft.io import write_text

    lines = [json.dumps(s.to_json(), ensure_ascii=False) for s in samples]
    return write_text(path, "\n".join(lines) + ("\n" if lines else ""))


def image_paths(folder: str | os.PathLike[str], samples: Sequence[ConversationSample]) -> list[Path]:
    """The absolute image path of each sample (relative paths are relative to ``folder``)."""
    root = Path(folder)
    return [Path(s.image) if Path(s.image).is_absolute() else root / s.image for s in samples]
