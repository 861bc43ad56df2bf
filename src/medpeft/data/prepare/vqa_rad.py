"""VQA-RAD -> conversation manifest (the standard split: ``phrase_type`` ``test_*`` is the test set).

Raw layout (the public OSF release)::

    VQA_RAD Dataset Public.json   list of {qid, image_name, image_organ, answer, answer_type CLOSED|OPEN,
                                  question_type, question, phrase_type freeform|para|test_freeform|test_para, ...}
    VQA_RAD Image Folder/<image_name>

Train = every question whose ``phrase_type`` does not start with ``test_`` (freeform, para, and any other
value, counted); there is no validation split.
The standard split asks training questions about test images; ``image_overlap="drop"`` (default) drops
those training questions (counted), ``"keep"`` keeps the published split. ``organ`` is ``image_organ`` as
spelled (e.g. CHEST, HEAD, ABD); VQA-RAD has no modality field (null). Answers that are numbers are kept
as text. Sample ids are ``vqa-rad-<qid>``; assumption: ``qid`` is unique (checked).
"""

from __future__ import annotations

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

JSON_FILE = "VQA_RAD Dataset Public.json"
IMAGES = "VQA_RAD Image Folder"


def build(ctx: PrepareContext, *, image_overlap: str = "drop") -> PreparedConversations:
    """Read the VQA-RAD layout under ``ctx.raw`` (see the module docstring)."""
    path = ctx.raw / JSON_FILE
    questions = read_json_list(path, "VQA-RAD question file")
    ctx.report.read["questions"] = len(questions)
    items: list[Item] = []
    seen: dict[str, str] = {}
    for i, obj in enumerate(questions):
        where = f"{path} item {i}"
        if not isinstance(obj, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(obj).__name__}")
        qid = text_field(obj, "qid")
        if qid is None:
            raise DataError(f"{where}: missing field 'qid'")
        if qid in seen:
            raise DataError(f"{where}: qid {qid} appears twice (first at {seen[qid]})")
        seen[qid] = where
        phrase = text_field(obj, "phrase_type")
        if phrase is None:
            raise DataError(f"{where}: missing field 'phrase_type' (it decides the split: test_* = test)")
        ctx.report.read[f"phrase_type {phrase}"] += 1
        answer_type = map_answer_type(obj.get("answer_type"), where)
        name, question, answer = (
            text_field(obj, "image_name"),
            text_field(obj, "question"),
            text_field(obj, "answer"),
        )
        missing = [
            k for k, v in (("image_name", name), ("question", question), ("answer", answer)) if v is None
        ]
        if missing:
            ctx.missing("questions: field missing", f"item {i}", f"{where}: missing field(s) {missing}")
            continue
        src = ctx.raw / IMAGES / name
        if not src.is_file():
            ctx.missing("questions: image file missing", str(src), f"{where}: image file not found: {src}")
            continue
        sample = make_sample(
            f"vqa-rad-{qid}",
            "",
            question,
            answer,
            answer_type,
            split="test" if phrase.startswith("test_") else "train",
            dataset="vqa-rad",
            organ=text_field(obj, "image_organ"),
            extra={"qid": qid, "question_type": text_field(obj, "question_type"), "phrase_type": phrase},
        )
        items.append(Item(sample, key=name.rsplit(".", 1)[0], src=src, truth_key=f"{IMAGES}/{name}"))
    return finish(
        ctx, items, name="vqa-rad", kind="vqa", source="VQA_RAD Dataset Public.json", overlap=image_overlap
    )
