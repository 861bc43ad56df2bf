"""SLAKE 1.0 -> conversation manifest (English subset, the release's own train/validate/test split).

Raw layout (the public ``Slake1.0`` release; ``--raw`` is ``Slake1.0`` or the folder holding it)::

    Slake1.0/{train,validate,test}.json   lists of {img_id, img_name "xmlab102/source.jpg", question, answer,
                                          q_lang "en"|"zh", location, modality, answer_type "CLOSED"|"OPEN",
                                          content_type, triple, qid, base_type}
    Slake1.0/imgs/xmlab<N>/source.jpg     (+ mask.png, detection.json: not read)

Only ``q_lang == "en"`` questions are kept (the Chinese ones are counted as filtered). ``answer_type`` maps to
closed/open; ``organ`` is ``location`` and ``modality`` is ``modality``, both as the release spells them.
Sample ids are ``slake-<qid>``. Assumption: ``qid`` is unique across the three files (checked).
"""

from __future__ import annotations

from pathlib import Path

from medpeft.data.conversations import make_sample
from medpeft.data.prepare.context import PrepareContext
from medpeft.data.prepare.conversation import (
    Item,
    PreparedConversations,
    finish,
    map_answer_type,
    read_json_list,
    text_field,
)
from medpeft.errors import DataError

ROOT = "Slake1.0"
FILES = {"train": "train.json", "validate": "validate.json", "test": "test.json"}


def find_root(raw: Path) -> Path:
    """``raw/Slake1.0`` if present, else ``raw`` itself (the user pointed at Slake1.0)."""
    return raw / ROOT if (raw / ROOT).is_dir() else raw


def build(ctx: PrepareContext, *, image_overlap: str = "drop") -> PreparedConversations:
    """Read the SLAKE layout under ``ctx.raw`` (see the module docstring)."""
    root = find_root(ctx.raw)
    items: list[Item] = []
    seen: dict[str, str] = {}
    for split, filename in FILES.items():
        path = root / filename
        questions = read_json_list(path, f"SLAKE {split} file")
        ctx.report.read[f"{split} questions"] = len(questions)
        for i, obj in enumerate(questions):
            where = f"{path} item {i}"
            if not isinstance(obj, dict):
                raise DataError(f"{where}: expected a JSON object, got {type(obj).__name__}")
            lang = text_field(obj, "q_lang")
            if lang != "en":
                ctx.report.drop("questions: not English (q_lang != 'en')", f"{filename} item {i} ({lang})")
                continue
            qid = text_field(obj, "qid")
            if qid is None:
                raise DataError(f"{where}: missing field 'qid'")
            if qid in seen:
                raise DataError(f"{where}: qid {qid} appears twice (first at {seen[qid]})")
            seen[qid] = where
            answer_type = map_answer_type(obj.get("answer_type"), where)
            img_name = text_field(obj, "img_name")
            question, answer = text_field(obj, "question"), text_field(obj, "answer")
            missing = [
                k
                for k, v in (("img_name", img_name), ("question", question), ("answer", answer))
                if v is None
            ]
            if missing:
                ctx.missing(
                    "questions: field missing", f"{filename} item {i}", f"{where}: missing field(s) {missing}"
                )
                continue
            src = root / "imgs" / img_name
            if not src.is_file():
                ctx.missing(
                    "questions: image file missing", str(src), f"{where}: image file not found: {src}"
                )
                continue
            sample = make_sample(
                f"slake-{qid}",
                "",
                question,
                answer,
                answer_type,
                split=split,
                dataset="slake",
                organ=text_field(obj, "location"),
                modality=text_field(obj, "modality"),
                extra={"qid": qid, "img_name": img_name, "content_type": text_field(obj, "content_type")},
            )
            key = Path(img_name).with_suffix("").as_posix()
            truth_key = Path(src).relative_to(ctx.raw).as_posix()
            items.append(Item(sample, key=key, src=src, truth_key=truth_key))
    return finish(ctx, items, name="slake", kind="vqa", source="Slake1.0 json", overlap=image_overlap)
