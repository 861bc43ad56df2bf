"""One request as a plain function: the page's numbers are ``medpeft.predict``'s, per model."""

from __future__ import annotations

import numpy as np
import pytest

from medpeft.evaluation.predict import predict
from medpeft.serve.analysis import OWN_TEMPLATES, analyse, choose_templates, parse_label_text
from medpeft.serve.inference import resolve_compute
from medpeft.serve.limits import UploadLimits

LABELS = ["no finding", "pneumonia", "effusion"]
CPU = resolve_compute("cpu", "fp32")


def run(models, files, labels="no finding, pneumonia, effusion", choice="biomedclip", own="", **kw):
    return analyse(
        models, files, labels, choice, own, limits=kw.pop("limits", UploadLimits()), compute=CPU, **kw
    )


def test_probabilities_equal_predict(serve_models, uploads):
    files = [uploads["png"], uploads["dicom"], uploads["rgb"]]
    result = run(serve_models, files, with_heatmaps=False)
    assert result.messages == []
    assert list(result.table.columns) == ["model", "image", "predicted", *LABELS]
    assert result.table["model"].tolist() == ["base"] * 3 + ["ace-lora"] * 3
    assert result.table["image"].tolist() == ["chest.png", "scan.dcm", "slide.png"] * 2
    for name, model in serve_models.items():
        expected = predict(model, files, LABELS, device="cpu")
        rows = result.table[result.table["model"] == name]
        np.testing.assert_allclose(rows[LABELS].to_numpy(), expected[LABELS].to_numpy(), rtol=0, atol=1e-12)
        assert rows["predicted"].tolist() == expected["predicted"].tolist()
    # the two columns really are different models
    base, adapted = (result.table[result.table["model"] == n][LABELS].to_numpy() for n in serve_models)
    assert np.abs(base - adapted).max() > 1e-4


def test_templates_named_or_typed(serve_models, uploads):
    from medpeft.evaluation.predict import predict

    model = {"base": serve_models["base"]}
    own = "# comment\na chest X-ray showing {}.\n\n{} is visible.\n"
    typed = run(model, [uploads["png"]], choice=OWN_TEMPLATES, own=own, with_heatmaps=False)
    expected = predict(
        serve_models["base"],
        [uploads["png"]],
        LABELS,
        templates=["a chest X-ray showing {}.", "{} is visible."],
    )
    np.testing.assert_allclose(typed.table[LABELS].to_numpy(), expected[LABELS].to_numpy(), atol=1e-12)
    named = run(model, [uploads["png"]], choice="chest-xray", with_heatmaps=False)
    expected = predict(serve_models["base"], [uploads["png"]], LABELS, templates="chest-xray")
    np.testing.assert_allclose(named.table[LABELS].to_numpy(), expected[LABELS].to_numpy(), atol=1e-12)
    assert not np.allclose(typed.table[LABELS].to_numpy(), named.table[LABELS].to_numpy())


def test_heatmaps_one_per_image_and_model(serve_models, uploads):
    result = run(serve_models, [uploads["png"], uploads["dicom"]])
    assert set(result.overlays) == {"base", "ace-lora"}
    for name, overlays in result.overlays.items():
        assert len(overlays) == 2
        rows = result.table[result.table["model"] == name]
        for (image, caption), (_, row) in zip(overlays, rows.iterrows(), strict=True):
            assert image.mode == "RGB" and min(image.size) > 100
            assert caption == f"{row['image']}: {row['predicted']} ({row[row['predicted']]:.2f})"


def test_bad_files_become_messages_and_good_ones_are_scored(serve_models, uploads):
    files = [uploads["text"], uploads["png"], uploads["empty"], uploads["no_pixels"]]
    result = run(serve_models, files, with_heatmaps=False)
    assert result.table["image"].tolist() == ["chest.png", "chest.png"]
    assert len(result.messages) == 3
    assert "notes.png" in result.messages[0] and "not a PNG, JPEG or DICOM" in result.messages[0]
    assert "empty.png: the file is empty" in result.messages[1]
    assert "header_only.dcm" in result.messages[2] and "no pixel data" in result.messages[2]
    only_bad = run(serve_models, [uploads["text"]])
    assert only_bad.table.empty and only_bad.messages[-1] == "no readable image to score"


@pytest.mark.parametrize(
    ("labels", "choice", "own", "message"),
    [
        ("pneumonia", "biomedclip", "", "at least two labels"),
        ("a, b, a", "biomedclip", "", "repeated"),
        ("model, b", "biomedclip", "", "'model' is a column of the results table"),
        ("a, b", OWN_TEMPLATES, "  \n# only a comment", "type at least one template"),
        ("a, b", OWN_TEMPLATES, "no placeholder here", "has no '{}' placeholder"),
        ("a, b", "/etc/passwd", "", "unknown template set '/etc/passwd'"),
    ],
)
def test_bad_labels_or_templates_refuse_the_request(serve_models, uploads, labels, choice, own, message):
    result = run(serve_models, [uploads["png"]], labels=labels, choice=choice, own=own)
    assert result.table.empty and result.tables == {}
    assert len(result.messages) == 1 and message in result.messages[0]


def test_too_many_images_refused(serve_models, uploads):
    result = run(serve_models, [uploads["png"]] * 3, limits=UploadLimits(max_images=2))
    assert result.table.empty
    assert "3 files uploaded but this server scores at most 2" in result.messages[0]


def test_label_text_and_template_choice():
    assert parse_label_text(" no finding, pneumonia\neffusion ,, ") == ["no finding", "pneumonia", "effusion"]
    assert parse_label_text(None) == []
    assert choose_templates("chest-xray", "ignored {}") == "chest-xray"
    assert choose_templates(OWN_TEMPLATES, "a {}\n#x\n b {} ") == ["a {}", "b {}"]
