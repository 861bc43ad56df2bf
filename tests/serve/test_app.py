"""``build_app``: the Blocks' own handlers, called directly, give ``predict``'s numbers in the table and
the CSV; presets fill the form; bad requests leave a message and no stale results."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medpeft.errors import ConfigError
from medpeft.evaluation.predict import predict
from medpeft.serve.inference import resolve_compute
from medpeft.serve.limits import UploadLimits
from medpeft.serve.results import messages_html, to_html
from medpeft.serve.server import exposure_warning, is_loopback

gr = pytest.importorskip("gradio", reason="medpeft serve needs gradio (pip install gradio)")

LABELS = ["no finding", "pneumonia"]


@pytest.fixture(scope="module")
def app(serve_models, tmp_path_factory):
    from medpeft.serve import build_app

    return build_app(
        serve_models,
        compute=resolve_compute("cpu"),
        limits=UploadLimits(max_images=4),
        work_dir=tmp_path_factory.mktemp("work"),
    )


def handler(app, name):
    found = [f.fn for f in app.fns.values() if f.name == name]
    assert len(found) == 1, [f.name for f in app.fns.values()]
    return found[0]


def test_blocks_and_components(app):
    assert isinstance(app, gr.Blocks)
    assert app.analytics_enabled is False
    ids = {getattr(block, "elem_id", None) for block in app.blocks.values()}
    for elem in ("medpeft-files", "medpeft-labels", "medpeft-submit", "medpeft-status", "medpeft-table"):
        assert elem in ids
    assert {"medpeft-chart-0", "medpeft-chart-1", "medpeft-heatmaps-0", "medpeft-heatmaps-1"} <= ids


def test_submit_handler_gives_predict_numbers_and_csv(app, serve_models, uploads):
    files = [str(uploads["png"]), str(uploads["dicom"]), str(uploads["text"])]
    status, table, csv, *rest = handler(app, "run")(files, "no finding, pneumonia", "biomedclip", "")
    charts, galleries = rest[:2], rest[2:]
    assert "notes.png" in status and "not a PNG, JPEG or DICOM" in status
    frame = pd.read_csv(csv)
    assert frame["model"].tolist() == ["base", "base", "ace-lora", "ace-lora"]
    assert frame["image"].tolist() == ["chest.png", "scan.dcm"] * 2
    for name, model in serve_models.items():
        expected = predict(model, [uploads["png"], uploads["dicom"]], LABELS, device="cpu")
        got = frame[frame["model"] == name][LABELS].to_numpy()
        np.testing.assert_allclose(
            got, expected[LABELS].to_numpy(), rtol=0, atol=1e-15
        )  # CSV at full precision
        for value in expected[LABELS].to_numpy().ravel():
            assert f"<td>{value:.4f}</td>" in table
    assert all(
        chart is not None and len(chart.axes[0].patches) == 4 for chart in charts
    )  # 2 images x 2 labels
    assert [len(g) for g in galleries] == [2, 2]


def test_bad_request_clears_results(app, uploads):
    status, table, csv, *rest = handler(app, "run")([str(uploads["empty"])], "a, b", "biomedclip", "")
    assert "empty.png: the file is empty (0 bytes)" in status and "no readable image to score" in status
    assert table == "" and csv is None
    assert rest == [None, None, [], []]
    status, *_ = handler(app, "run")(None, "a, b", "biomedclip", "")
    assert "no images uploaded" in status
    status, *_ = handler(app, "run")([str(uploads["png"])] * 5, "a, b", "biomedclip", "")
    assert "5 files uploaded but this server scores at most 4" in status


def test_dataset_preset_fills_labels_and_templates(app):
    fill = handler(app, "fill_preset")
    assert fill("rsna") == ("No Finding, pneumonia", "chest-xray")
    assert fill("mhist") == ("hyperplastic polyp, sessile serrated adenoma", "histopathology")
    labels, _ = fill(None)
    assert not isinstance(labels, str)  # no preset: the typed labels are left alone


def test_build_app_needs_a_model():
    from medpeft.serve import build_app

    with pytest.raises(ConfigError, match="at least one model"):
        build_app({}, compute=resolve_compute("cpu"))


def test_page_text_is_escaped():
    frame = pd.DataFrame({"model": ["base"], "image": ["<img src=x onerror=alert(1)>.png"], "a": [0.123456]})
    html = to_html(frame)
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;.png" in html and "0.1235" in html
    assert "<script>" not in messages_html(["<script>x</script>.png: bad"])
    assert messages_html([]) == ""


def test_loopback_and_exposure_warning():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("example.org")
    assert exposure_warning("127.0.0.1", 7860) is None
    warning = exposure_warning("0.0.0.0", 8080)
    assert warning.startswith("WARNING: serving on 0.0.0.0:8080") and "no login" in warning
