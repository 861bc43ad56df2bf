"""PathVQA -> conversation manifest, from its public parquet release (never from its pickles).

Raw layout (Hugging Face ``flaviagiammarino/path-vqa``; ``--raw`` is the folder holding ``data/`` or the
``data/`` folder itself)::

    data/train-*.parquet, data/validation-*.parquet, data/test-*.parquet
        columns: image {bytes, path}, question, answer

The original release ships ``*.pkl`` files; unpickling runs arbitrary code, so they are refused with a
message that points at the parquet release. Parquet files are streamed in batches with pyarrow (the real
test file is large), each distinct image (by SHA-256 of its bytes) is decoded once with PIL and written as
``images/pathvqa/<sha256[:16]>.png`` (resized with ``--image-size``). Closed = the answer is yes/no,
otherwise open. PathVQA has no organ/modality fields (null). An image whose bytes appear in two splits is
a leak: ``image_overlap`` handles it as for the other VQA sets. Sample ids ``pathvqa-<split>-<row>``.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

from medpeft.data.conversations import make_sample
from medpeft.data.prepare.context import PrepareContext
from medpeft.data.prepare.conversation import Item, PreparedConversations, finish, text_field
from medpeft.errors import DataError

COLUMNS = ("image", "question", "answer")
PREFIXES = {"train": "train", "validation": "validate", "val": "validate", "test": "test"}
PICKLES = (".pkl", ".pickle")
_REFUSE = (
    "PathVQA's pickle files are never read (unpickling can run arbitrary code); download the parquet "
    "release (Hugging Face flaviagiammarino/path-vqa, data/{train,validation,test}-*.parquet) and pass its folder"
)


def parquet_files(raw: Path) -> dict[str, list[Path]]:
    """Split -> parquet files under ``raw``, by file-name prefix; refuses pickles (see the module docstring)."""
    if raw.is_file():
        if raw.suffix.lower() in PICKLES:
            raise DataError(f"{raw}: {_REFUSE}")
        raise DataError(f"--raw {raw} must be the folder holding the PathVQA parquet files")
    found: dict[str, list[Path]] = {}
    for path in sorted(raw.rglob("*.parquet")):
        prefix = path.name.split("-")[0].split(".")[0].lower()
        if prefix not in PREFIXES:
            raise DataError(
                f"{path}: cannot tell its split from the name (expected train-*, validation-* or test-*)"
            )
        found.setdefault(PREFIXES[prefix], []).append(path)
    if not found:
        pickles = sorted(p for p in raw.rglob("*") if p.suffix.lower() in PICKLES)
        if pickles:
            raise DataError(f"{pickles[0]}: {_REFUSE}")
        raise DataError(f"no PathVQA parquet files (train-*.parquet, ...) found under {raw}")
    return found


def _write_png(ctx: PrepareContext, data: bytes, rel: str, where: str) -> bool:
    """Decode ``data`` and write it as a PNG at ``rel`` in the stage; False when skipped as unreadable."""
    from PIL import Image, UnidentifiedImageError

    from medpeft.data.images import resize_shorter_side

    try:
        with Image.open(io.BytesIO(data)) as img:
            img = img.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as err:
        if ctx.on_bad_image == "error":
            raise DataError(
                f"{where}: image bytes are not a readable image ({err}) (use --on-bad-image skip to skip and count such images)"
            ) from err
        ctx.report.drop("unreadable image", where)
        return False
    if ctx.image_size is not None:
        img = resize_shorter_side(img, ctx.image_size)
    dest = ctx.stage_dir / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    img.save(dest, format="PNG")
    return True


def build(
    ctx: PrepareContext, *, image_overlap: str = "drop", batch_size: int = 256
) -> PreparedConversations:
    """Stream the parquet files under ``ctx.raw`` (see the module docstring)."""
    import pyarrow.parquet as pq

    files = parquet_files(ctx.raw)
    ctx.report.note("read the parquet release with pyarrow; pickle files (if any) were not opened")
    items: list[Item] = []
    images: dict[str, str | None] = {}  # sha256 -> written rel path (None: unreadable)
    for split in ("train", "validate", "test"):
        row = 0
        for path in files.get(split, []):
            try:
                table = pq.ParquetFile(path)
            except Exception as err:  # pyarrow raises its own error types for a truncated file
                raise DataError(f"{path}: not a readable parquet file ({err})") from err
            missing = [c for c in COLUMNS if c not in table.schema_arrow.names]
            if missing:
                raise DataError(f"{path} lacks column(s) {missing} (it has: {table.schema_arrow.names})")
            for batch in table.iter_batches(batch_size=batch_size, columns=list(COLUMNS)):
                for obj in batch.to_pylist():
                    where = f"{path} row {row}"
                    sample_id = f"pathvqa-{split}-{row}"
                    row += 1
                    ctx.report.read[f"{split} questions"] += 1
                    image = obj.get("image")
                    data = image.get("bytes") if isinstance(image, dict) else None
                    question, answer = text_field(obj, "question"), text_field(obj, "answer")
                    missing_fields = [
                        k
                        for k, v in (("image.bytes", data), ("question", question), ("answer", answer))
                        if not v
                    ]
                    if missing_fields:
                        ctx.missing(
                            "questions: field missing", where, f"{where}: missing field(s) {missing_fields}"
                        )
                        continue
                    digest = hashlib.sha256(data).hexdigest()
                    if digest not in images:
                        rel = f"images/pathvqa/{digest[:16]}.png"
                        images[digest] = rel if _write_png(ctx, data, rel, where) else None
                    if images[digest] is None:
                        ctx.report.drop("questions: image unreadable", sample_id)
                        continue
                    answer_type = "closed" if answer.lower() in ("yes", "no") else "open"
                    sample = make_sample(
                        sample_id, "", question, answer, answer_type, split=split, dataset="pathvqa",
                        extra={"source_path": image["path"]} if image.get("path") else {},
                    )  # fmt: skip
                    items.append(Item(sample, key=digest[:16], rel=images[digest]))
    return finish(ctx, items, name="pathvqa", kind="vqa", source="parquet release", overlap=image_overlap)
