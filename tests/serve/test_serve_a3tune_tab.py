"""The A³Tune tab of ``build_app``: its handler, called directly, gives per adapter the answer that
``evaluation.generation`` gives for the same image and question (greedy, token for token) and the overlay
``a3tune eval`` draws from ``attention_diagnostic`` (pixel for pixel, at the upload's size); bad uploads and
empty questions become messages in the page; the tabs exist only when the A³Tune models are given."""

from __future__ import annotations

import html

import numpy as np
import pytest
import torch
from PIL import Image

from medpeft.a3tune import A3TuneConfig, A3TuneModel
from medpeft.a3tune.collate import A3Collator, A3Example
from medpeft.backbones.llava import load_llava
from medpeft.data.images import load_image
from medpeft.errors import ConfigError
from medpeft.evaluation.attention_diagnostic import attention_diagnostic
from medpeft.evaluation.generation import GenerationSettings, generate_batch
from medpeft.evaluation.generation_eval import load_generation_model
from medpeft.evaluation.heatmap import display_image
from medpeft.evaluation.plots import save_overlay
from medpeft.serve.a3tune_inference import load_a3tune_models
from medpeft.serve.ask import MAX_QUESTION_CHARS, ask, check_question
from medpeft.serve.inference import resolve_compute
from medpeft.serve.limits import UploadLimits

gr = pytest.importorskip("gradio", reason="medpeft serve needs gradio (pip install gradio)")

QUESTION = "Is there a lesion in the left lung?"
SETTINGS = GenerationSettings(max_new_tokens=6)


@pytest.fixture(scope="module")
def adapter_dir(tmp_path_factory):
    """An A³Tune adapter on llava-tiny whose trainable weights are non-zero (it answers unlike the base)."""
    model = A3TuneModel(load_llava("llava-tiny"), A3TuneConfig(q_experts=2, k_experts=2, top_heads=4))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    return model.save_pretrained(tmp_path_factory.mktemp("a3") / "run" / "final")


@pytest.fixture(scope="module")
def a3_models(adapter_dir):
    return load_a3tune_models("llava-tiny", ["none", str(adapter_dir)], "cpu")


@pytest.fixture(scope="module")
def app(a3_models, serve_models, tmp_path_factory):
    from medpeft.serve import build_app

    return build_app(
        serve_models,
        compute=resolve_compute("cpu"),
        limits=UploadLimits(max_images=4),
        work_dir=tmp_path_factory.mktemp("work"),
        a3tune_models=a3_models,
        a3tune_settings=SETTINGS,
    )


def handler(app, name):
    found = [f.fn for f in app.fns.values() if f.name == name]
    assert len(found) == 1, [f.name for f in app.fns.values()]
    return found[0]


def reference(adapter: str, image: Image.Image, question: str):
    """What ``a3tune eval`` computes for one sample, from a freshly loaded model: (text, ids, heat, crop)."""
    base, model = load_generation_model("llava-tiny", adapter, torch.device("cpu"))
    collator = A3Collator(
        base.tokenizer, base.image_processor, base.image_token_id, base.grid, padding_side="left"
    )
    batch = collator([A3Example(id="x", question=question, answer=None, image=image)])
    texts, ids = generate_batch(model, batch, SETTINGS, base.tokenizer, torch.device("cpu"))
    heat = attention_diagnostic(model, batch, [None], torch.device("cpu")).heat[0]
    proc = base.image_processor
    return texts[0], ids[0], heat, display_image(batch["pixel_values"][0], proc.image_mean, proc.image_std)


def test_labels_and_tabs(app, a3_models, adapter_dir):
    assert list(a3_models) == ["base", "run"]  # 'none' -> base; RUN/final -> the run's name
    tabs = {b.label: b.elem_id for b in app.blocks.values() if isinstance(b, gr.Tab)}
    assert tabs == {
        "CLIP (zero-shot classification)": "medpeft-tab-clip",
        "A³Tune (question answering)": "medpeft-tab-a3tune",
    }
    ids = {getattr(block, "elem_id", None) for block in app.blocks.values()}
    assert {"medpeft-a3-file", "medpeft-a3-question", "medpeft-a3-submit", "medpeft-a3-status"} <= ids
    assert {
        "medpeft-a3-answer-0",
        "medpeft-a3-answer-1",
        "medpeft-a3-overlay-0",
        "medpeft-a3-overlay-1",
    } <= ids
    assert "medpeft-files" in ids and "medpeft-submit" in ids  # the CLIP tab is still there


def test_answers_equal_generation_token_for_token(app, a3_models, adapter_dir, uploads, tmp_path):
    status, *rest = handler(app, "run_question")(str(uploads["rgb"]), f"  {QUESTION}\n")
    answers, overlays = rest[:2], rest[2:]
    assert status == ""
    image = load_image(uploads["rgb"])
    refs = {"base": reference("none", image, QUESTION), "run": reference(str(adapter_dir), image, QUESTION)}
    for i, (label, (text, ids, heat, crop)) in enumerate(refs.items()):
        assert len(ids) >= 1
        assert (
            f'<span class="answer-text">{text}</span>' in answers[i]
            if text
            else "(empty answer)" in answers[i]
        )
        got = ask(
            {label: a3_models[label]}, uploads["rgb"], QUESTION, limits=UploadLimits(), settings=SETTINGS
        )
        assert got.answers == {label: text} and got.messages == [] and got.image_name == "slide.png"
        # the overlay: save_overlay of the diagnostic's heat on the crop the model saw, at the upload's size
        assert overlays[i].size == image.size == (64, 64)
        expected = save_overlay(crop, heat, tmp_path / f"{label}.png", dpi=image.width / 5.0)
        with Image.open(expected) as png:
            np.testing.assert_array_equal(np.asarray(overlays[i]), np.asarray(png.convert("RGB")))
    from medpeft.serve.a3tune_inference import answer

    replies = {label: answer(a3_models[label], image, QUESTION, SETTINGS) for label in refs}
    assert [r.token_ids for r in replies.values()] == [refs[k][1] for k in refs]  # token for token
    assert replies["base"].token_ids != replies["run"].token_ids  # the adapter changes the answer


def test_dicom_upload_is_answered_at_its_size(app, uploads):
    status, *rest = handler(app, "run_question")(str(uploads["dicom"]), QUESTION)
    assert status == ""
    assert [o.size for o in rest[2:]] == [(96, 96), (96, 96)]
    assert all("Answer:" in a for a in rest[:2])


@pytest.mark.parametrize(
    ("upload", "question", "messages"),
    [
        ("png", "", ["type a question about the image"]),
        ("png", "   \n", ["type a question about the image"]),
        (None, QUESTION, ["no images uploaded"]),
        ("text", QUESTION, ["notes.png: not a PNG, JPEG or DICOM", "no readable image to ask about"]),
        ("empty", QUESTION, ["empty.png: the file is empty (0 bytes)", "no readable image to ask about"]),
        ("no_pixels", QUESTION, ["header_only.dcm: the file has no pixel data"]),
        (
            "png",
            "what is <image> here?",
            ["remove '<image>' from the question: the uploaded image takes its place"],
        ),
    ],
)
def test_bad_requests_give_messages_and_no_answers(app, uploads, upload, question, messages):
    status, *rest = handler(app, "run_question")(str(uploads[upload]) if upload else None, question)
    assert 'id="medpeft-a3-messages"' in status and "Not answered:" in status
    for message in messages:
        assert message in html.unescape(status)
    assert rest == ["", "", None, None]


def test_question_length_limit():
    assert check_question("  why?  ") == "why?"
    with pytest.raises(ConfigError, match=f"at most {MAX_QUESTION_CHARS}"):
        check_question("x" * (MAX_QUESTION_CHARS + 1))


def test_answer_is_escaped():
    from medpeft.serve.app import answer_html

    assert "<script>" not in answer_html("<script>alert(1)</script>")
    assert "&lt;script&gt;" in answer_html("<script>")
    assert "(empty answer)" in answer_html("")


def test_without_a3tune_no_tabs_and_a3tune_alone(serve_models, a3_models):
    from medpeft.serve import build_app

    plain = build_app(serve_models, compute=resolve_compute("cpu"))
    assert not any(isinstance(b, gr.Tab) for b in plain.blocks.values())
    assert [f.name for f in plain.fns.values() if f.name == "run_question"] == []
    alone = build_app({}, compute=resolve_compute("cpu"), a3tune_models={"base": a3_models["base"]})
    ids = {getattr(block, "elem_id", None) for block in alone.blocks.values()}
    assert "medpeft-a3-question" in ids and "medpeft-files" not in ids
    assert not any(isinstance(b, gr.Tab) for b in alone.blocks.values())
    with pytest.raises(ConfigError, match="at least one model"):
        build_app({}, compute=resolve_compute("cpu"), a3tune_models={})
