"""LLaVA-style conversation JSON (the A³Tune authors' released ``data/<DS>/{training,test}.json``) -> manifest.

Raw layout: a folder with ``training.json`` (or ``train.json``), optionally ``validation.json`` /
``validate.json``, and ``test.json``, each a JSON list of ``{id, image, conversations: [{from: human,
value: "<image>\\n..."}, {from: gpt, value: ...}], ...}``; image paths are relative to ``images_dir``
(default: the same folder). Every item is validated by ``conversations.parse_sample`` (errors name the file
and item); a sample without ``answer_type`` is closed when its answer is yes/no, else open (``kind="report"``
marks every sample ``report``). Unknown fields are kept. Ids must be unique across the files.
"""

from __future__ import annotations

from pathlib import Path

from medpeft.data.conversations import read_conversations
from medpeft.data.prepare.context import PrepareContext
from medpeft.data.prepare.conversation import Item, PreparedConversations, finish
from medpeft.errors import ConfigError, DataError

FILES = {
    "train": ("training.json", "train.json"),
    "validate": ("validation.json", "validate.json", "val.json"),
    "test": ("test.json", "testing.json"),
}
KINDS = ("vqa", "report")


def build(
    ctx: PrepareContext,
    *,
    images_dir: Path | None = None,
    name: str = "llava-json",
    kind: str = "vqa",
    image_overlap: str = "drop",
) -> PreparedConversations:
    """Read the LLaVA JSON files under ``ctx.raw`` (see the module docstring)."""
    if kind not in KINDS:
        raise ConfigError(f"kind must be one of {KINDS}, got {kind!r}")
    if ctx.raw.is_file():
        raise DataError(f"--raw {ctx.raw} must be the folder holding training.json / test.json")
    images_root = Path(images_dir) if images_dir is not None else ctx.raw
    items: list[Item] = []
    first: dict[str, str] = {}
    for split, names in FILES.items():
        found = [ctx.raw / n for n in names if (ctx.raw / n).is_file()]
        if len(found) > 1:
            raise DataError(
                f"{ctx.raw}: both {found[0].name} and {found[1].name} found for the {split} split"
            )
        if not found:
            continue
        path = found[0]
        samples = read_conversations(path)
        ctx.report.read[f"{split} samples"] = len(samples)
        for i, sample in enumerate(samples):
            where = f"{path} item {i}"
            if sample.id in first:
                raise DataError(f"{where}: id {sample.id!r} is also in {first[sample.id]}")
            first[sample.id] = path.name
            src = Path(sample.image) if Path(sample.image).is_absolute() else images_root / sample.image
            if not src.is_file():
                ctx.missing("samples: image file missing", str(src), f"{where}: image file not found: {src}")
                continue
            sample.split, sample.dataset = split, sample.dataset or name
            if kind == "report":
                sample.answer_type = "report"
            key = Path(sample.image).with_suffix("").as_posix().lstrip("/").replace("..", "_")
            items.append(Item(sample, key=key, src=src))
    if not first:
        raise DataError(f"no {' / '.join(n for ns in FILES.values() for n in ns)} found in {ctx.raw}")
    return finish(ctx, items, name=name, kind=kind, source="LLaVA-style JSON", overlap=image_overlap)
