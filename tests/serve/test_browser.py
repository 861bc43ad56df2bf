"""End to end in a real headless Chromium: ``medpeft serve`` as a subprocess on a free localhost port,
a DICOM and a PNG uploaded, two labels typed, the page's probabilities compared with ``predict``; then
bad uploads (text renamed .png, 0-byte file, DICOM without pixels, a file over --max-file-mb) shown as
messages, and a good upload scored again by the same server; then, in the second tab (``--a3tune-base llava-tiny
--a3tune-adapter none``), a question about a DICOM whose answer on the page equals ``evaluation.generation``'s
and whose attention overlay is shown, and an empty question answered by a message. No request leaves
127.0.0.1.

Driven by playwright against the system Chromium (``executable_path``; nothing downloaded): it waits on
page state instead of sleeping, sets several files on the upload input, and records every request the
page makes. Screenshots are written to the test's tmp path and copied to ``$MEDPEFT_TEST_ARTIFACTS``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from serve_helpers import write_png

from medpeft.evaluation.predict import predict

LABELS = ["no finding", "pneumonia"]
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 90_000  # one request on a busy CPU (scoring + heat maps for two tiny models)


def find_chromium() -> str | None:
    """``$MEDPEFT_CHROMIUM``, else Debian's ``chromium`` (or ``chromium-browser``) on the PATH."""
    explicit = os.environ.get("MEDPEFT_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def chromium_path() -> str:
    pytest.importorskip("gradio", reason="medpeft serve needs gradio (pip install gradio)")
    pytest.importorskip(
        "playwright.sync_api", reason="the browser test needs the playwright package (pip install playwright)"
    )
    path = find_chromium()
    if path is None:
        pytest.skip(
            "no Chromium for the browser test: install Debian's (apt-get install chromium) or set "
            "MEDPEFT_CHROMIUM to a Chromium binary; no browser is downloaded"
        )
    return path


def save_artifact(path: Path) -> None:
    folder = os.environ.get("MEDPEFT_TEST_ARTIFACTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, Path(folder) / path.name)


def page_table(page) -> pd.DataFrame:
    """The results table as shown (probabilities rounded to 4 decimals)."""
    head = [c.inner_text().strip() for c in page.locator("#medpeft-results thead th").all()]
    rows = [
        [c.inner_text().strip() for c in row.locator("td").all()]
        for row in page.locator("#medpeft-results tbody tr").all()
    ]
    frame = pd.DataFrame(rows, columns=head)
    frame[LABELS] = frame[LABELS].astype(float)
    return frame


def upload(page, files: list[Path]) -> None:
    """Replace the uploaded files with ``files`` and wait until the page lists them."""
    if page.locator("#medpeft-files .file-preview").count():  # files listed: clear them first
        page.locator('#medpeft-files button[aria-label="Clear"]').click()
    page.locator("#medpeft-files input[type=file]").set_input_files([str(f) for f in files])
    for f in files:
        page.locator("#medpeft-files").get_by_text(f.stem, exact=True).wait_for(timeout=WAIT_MS)


def submit(page) -> None:
    """Press Score and wait for the request to finish (the button's status tracker goes away)."""
    page.evaluate("document.querySelector('#medpeft-status').setAttribute('data-old', '1')")
    page.locator("#medpeft-submit").click()
    page.wait_for_function(
        "() => !document.querySelector('#medpeft-status .eta-bar, #medpeft-status .progress-text, "
        "#medpeft-table .eta-bar, #medpeft-table .progress-text') && "
        "!document.querySelector('#medpeft-status [data-testid=status-tracker]:not(.hide)')",
        timeout=WAIT_MS,
    )


def generated_answer(image_path: Path, question: str, max_new_tokens: int) -> str:
    """What ``a3tune eval`` generates for this image and question with llava-tiny's base (greedy)."""
    import torch

    from medpeft.a3tune.collate import A3Collator, A3Example
    from medpeft.data.images import load_image
    from medpeft.evaluation.generation import GenerationSettings, generate_batch
    from medpeft.evaluation.generation_eval import load_generation_model

    cpu = torch.device("cpu")
    base, model = load_generation_model("llava-tiny", "none", cpu)
    collator = A3Collator(
        base.tokenizer, base.image_processor, base.image_token_id, base.grid, padding_side="left"
    )
    batch = collator([A3Example(id="x", question=question, answer=None, image=load_image(image_path))])
    texts, _ = generate_batch(
        model, batch, GenerationSettings(max_new_tokens=max_new_tokens), base.tokenizer, cpu
    )
    return texts[0]


def ask_question(page, image: Path | None, question: str) -> None:
    """In the A³Tune tab: replace the upload, type the question, press Ask and wait for the request to end."""
    if page.locator("#medpeft-a3-file button[aria-label='Clear']").count():
        page.locator("#medpeft-a3-file button[aria-label='Clear']").click()
    if image is not None:
        page.locator("#medpeft-a3-file input[type=file]").set_input_files([str(image)])
        page.locator("#medpeft-a3-file").get_by_text(image.stem, exact=True).wait_for(timeout=WAIT_MS)
    page.locator("#medpeft-a3-question textarea").fill(question)
    page.locator("#medpeft-a3-submit").click()
    page.wait_for_function(
        "() => !document.querySelector('#medpeft-a3-status .eta-bar, #medpeft-a3-status .progress-text, "
        "#medpeft-a3-answer-0 .eta-bar, #medpeft-a3-answer-0 .progress-text') && "
        "!document.querySelector('#medpeft-a3-status [data-testid=status-tracker]:not(.hide)')",
        timeout=WAIT_MS,
    )


def assert_matches_predict(page, models, files: dict[str, Path]) -> pd.DataFrame:
    shown = page_table(page)
    assert shown["model"].tolist() == [name for name in ("base", "ace") for _ in files]
    assert shown["image"].tolist() == list(files) * 2
    for name, model in (("base", models["base"]), ("ace", models["ace-lora"])):
        expected = predict(model, list(files.values()), LABELS, device="cpu")
        rows = shown[shown["model"] == name]
        np.testing.assert_allclose(rows[LABELS].to_numpy(), expected[LABELS].to_numpy(), rtol=0, atol=5.1e-5)
        assert rows["predicted"].tolist() == expected["predicted"].tolist()
    return shown


@pytest.mark.slow  # ~45 s on one busy core: a server process, a browser, five requests
def test_browser_end_to_end(chromium_path, serve_models, uploads, tmp_path):
    from playwright.sync_api import sync_playwright
    from serve_process import running_server

    adapter = serve_models["ace-lora"].save_pretrained(tmp_path / "ace", backbone_name="tiny")
    huge = write_png(tmp_path / "huge.png", seed=5, size=1100, mode="RGB")  # ~3.5 MB of noise
    assert huge.stat().st_size > 2 * 2**20
    args = ["--backbone", "tiny", "--adapter", "none", "--adapter", str(adapter), "--max-file-mb", "2",
            "--a3tune-base", "llava-tiny", "--a3tune-adapter", "none", "--max-new-tokens", "8"]  # fmt: skip
    with running_server(args) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
            requests: list[str] = []
            page.set_default_timeout(WAIT_MS)
            page.on("request", lambda request: requests.append(request.url))
            page.goto(server.url, timeout=WAIT_MS)

            # 1. a DICOM and a PNG, two typed labels: the page shows predict's numbers, per model
            upload(page, [uploads["dicom"], uploads["png"]])
            page.locator("#medpeft-labels textarea").fill("no finding, pneumonia")
            submit(page)
            page.locator("#medpeft-results").wait_for(timeout=WAIT_MS)
            good = {"scan.dcm": uploads["dicom"], "chest.png": uploads["png"]}
            assert_matches_predict(page, serve_models, good)
            assert page.locator("#medpeft-messages").count() == 0
            for i in (0, 1):  # a bar chart and two heat-map overlays per model column
                page.locator(f"#medpeft-chart-{i} img").wait_for(timeout=WAIT_MS)
                assert page.locator(f"#medpeft-heatmaps-{i} img").count() >= 2
            with page.expect_download(timeout=WAIT_MS) as download_info:
                page.locator('#medpeft-csv a[download="medpeft_predictions.csv"]').click()
            csv = pd.read_csv(download_info.value.path())
            expected = predict(serve_models["ace-lora"], list(good.values()), LABELS, device="cpu")
            np.testing.assert_allclose(
                csv[csv["model"] == "ace"][LABELS].to_numpy(), expected[LABELS].to_numpy(), atol=1e-12
            )
            shot = tmp_path / "serve_page.png"
            page.screenshot(path=str(shot), full_page=True)
            save_artifact(shot)

            # 2. bad uploads: each named in a message, nothing scored, no stale table
            upload(page, [uploads["text"], uploads["empty"], uploads["no_pixels"]])
            submit(page)
            messages = page.locator("#medpeft-messages")
            messages.wait_for(timeout=WAIT_MS)
            text = messages.inner_text()
            assert "notes.png: not a PNG, JPEG or DICOM file" in text
            assert "empty.png: the file is empty (0 bytes)" in text
            assert "header_only.dcm: the file has no pixel data" in text
            assert "no readable image to score" in text
            assert page.locator("#medpeft-results").count() == 0

            # 3. a file over --max-file-mb is refused at upload, with its name and the limit
            page.locator('#medpeft-files button[aria-label="Clear"]').click()
            page.locator("#medpeft-files input[type=file]").set_input_files([str(huge)])
            toast = page.get_by_text("exceed the maximum allowed size of 2.0 Mb")
            toast.wait_for(timeout=WAIT_MS)
            page.wait_for_timeout(1000)  # for the screenshot only: the toast fades in
            error_shot = tmp_path / "serve_page_upload_error.png"
            page.screenshot(path=str(error_shot))
            save_artifact(error_shot)
            assert "huge.png" in toast.inner_text()

            # 4. the same server still scores the next good upload
            upload(page, [uploads["png"]])
            submit(page)
            page.locator("#medpeft-results").wait_for(timeout=WAIT_MS)
            assert_matches_predict(page, serve_models, {"chest.png": uploads["png"]})
            assert page.locator("#medpeft-messages").count() == 0
            assert server.process.poll() is None

            # 5. the A³Tune tab: a question about a DICOM -> evaluation.generation's answer and an overlay
            for close in page.locator(".toast-close").all():  # step 3's upload error, for the screenshot
                close.click()
            page.get_by_role("tab", name="A³Tune (question answering)").click()
            question = "Is there a lesion in the left lung?"
            ask_question(page, uploads["dicom"], question)
            answer = page.locator("#medpeft-a3-answer-0 .answer-text")
            answer.wait_for(timeout=WAIT_MS)
            expected_answer = generated_answer(uploads["dicom"], question, max_new_tokens=8)
            assert expected_answer and answer.text_content() == expected_answer
            page.locator("#medpeft-a3-overlay-0 img").wait_for(timeout=WAIT_MS)
            assert page.locator("#medpeft-a3-messages").count() == 0
            a3_shot = tmp_path / "serve_page_a3tune.png"
            page.screenshot(path=str(a3_shot), full_page=True)
            save_artifact(a3_shot)

            # 6. an empty question: a message, the old answer gone
            ask_question(page, uploads["png"], "  ")
            page.locator("#medpeft-a3-messages").wait_for(timeout=WAIT_MS)
            assert "type a question about the image" in page.locator("#medpeft-a3-messages").inner_text()
            assert page.locator("#medpeft-a3-answer-0 .answer-text").count() == 0
            assert server.process.poll() is None

            outside = [u for u in requests if not u.startswith((server.url, "data:", "blob:"))]
            assert outside == [], f"the page requested other hosts: {outside[:5]}"
        finally:
            browser.close()
        assert server.stop() == 0
    assert "Traceback" not in server.output(), server.output()
