"""One request of the A³Tune tab, as a plain function: one upload + a question -> per model the answer and
the attention overlay, or messages. The Gradio handler only moves its result into components, so tests and
notebooks call it without a browser.

Nothing here raises for bad input: an unreadable upload, a missing question or a question the prompt cannot
hold becomes a message (the upload named by its uploaded name), and the server goes on serving.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from PIL import Image

from medpeft.errors import ConfigError, MedpeftError
from medpeft.serve.a3tune_inference import IMAGE_PLACEHOLDER, A3TuneServed, GenerationSettings, answer
from medpeft.serve.limits import UploadLimits
from medpeft.serve.uploads import read_uploads

#: Longest accepted question, in characters: a question, not a document (the prompt must fit the model).
MAX_QUESTION_CHARS = 2000


@dataclass
class Asked:
    """What one request produced: per model label its answer and overlay, and the messages."""

    image_name: str = ""
    answers: dict[str, str] = field(default_factory=dict)
    overlays: dict[str, Image.Image] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)


def check_question(question: str | None) -> str:
    """The question stripped; ``ConfigError`` when it is empty, too long, or holds the image placeholder
    (the prompt has room for exactly one image)."""
    text = (question or "").strip()
    if not text:
        raise ConfigError("type a question about the image")
    if IMAGE_PLACEHOLDER in text:
        raise ConfigError(
            f"remove {IMAGE_PLACEHOLDER!r} from the question: the uploaded image takes its place"
        )
    if len(text) > MAX_QUESTION_CHARS:
        raise ConfigError(
            f"the question has {len(text)} characters; at most {MAX_QUESTION_CHARS} are accepted"
        )
    return text


def ask(
    models: Mapping[str, A3TuneServed],
    file: str | os.PathLike | None,
    question: str | None,
    *,
    limits: UploadLimits,
    settings: GenerationSettings,
) -> Asked:
    """Read the upload (the first tab's checks and messages), then ask every model; a model that fails on
    this input (e.g. ``<image>`` typed in the question) gives a message, the others still answer."""
    try:
        text = check_question(question)
        read = read_uploads([os.fspath(file)] if file else [], limits)
    except MedpeftError as err:
        return Asked(messages=[str(err)])
    if not read.images:
        return Asked(messages=[*read.rejected, "no readable image to ask about"])
    upload = read.images[0]
    result = Asked(image_name=upload.name)
    for label, served in models.items():
        try:
            reply = answer(served, upload.image, text, settings)
        except MedpeftError as err:
            result.messages.append(f"{label}: {err}")
            continue
        result.answers[label] = reply.text
        result.overlays[label] = reply.overlay
    return result
