"""``dataset.json`` of a conversation folder: what a prepared A³Tune dataset holds, for its readers.

The image-label folders' ``dataset.json`` (``manifest.DatasetInfo``) describes classes to score; a
conversation folder has none, so its ``dataset.json`` says instead which splits exist, how many samples of
each answer type they hold, whether synthetic lesion masks are attached, and the weak-label K. ``format``
tells the two apart (``read_conversation_info`` refuses an image-label folder with a clear message).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from medpeft.errors import DataError

CONVERSATION_FORMAT = "medpeft-conversations/1"
INFO_FILE = "dataset.json"


@dataclass
class ConversationInfo:
    """The ``dataset.json`` of a conversation folder (see the module docstring)."""

    name: str
    kind: str  # "vqa" | "report"
    splits: dict[str, str] = field(default_factory=dict)  # split -> "<split>.jsonl"
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> answer_type -> samples
    weak_label_k: int | None = None
    has_lesion_mask: bool = False
    image_size: int | None = None
    source: str = ""  # which raw layout was read (e.g. "Slake1.0 json", "authors' LLaVA json")
    format: str = CONVERSATION_FORMAT


def write_conversation_info(folder: str | os.PathLike[str], info: ConversationInfo) -> Path:
    """Write ``dataset.json`` atomically into ``folder``."""
    from medpeft.io import write_json

    return write_json(Path(folder) / INFO_FILE, asdict(info))


def read_conversation_info(folder: str | os.PathLike[str]) -> ConversationInfo:
    """Read a conversation folder's ``dataset.json``; ``DataError`` names the file and what is wrong."""
    path = Path(folder) / INFO_FILE
    if not path.is_file():
        raise DataError(f"{path} not found: prepare the dataset with 'medpeft prepare' first")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: invalid JSON ({err})") from err
    if not isinstance(raw, dict) or raw.get("format") != CONVERSATION_FORMAT:
        raise DataError(
            f"{path} does not describe a conversation dataset (format {raw.get('format') if isinstance(raw, dict) else None!r}, "
            f"expected {CONVERSATION_FORMAT!r}); is this an image-label folder?"
        )
    try:
        return ConversationInfo(**raw)
    except TypeError as err:
        raise DataError(f"{path}: not a valid conversation dataset description ({err})") from err
