"""``build_app``: the Gradio page of ``medpeft serve`` over models that are already loaded.

Why the models come in loaded: they load once, at start (the command shows progress), and every request
reuses them; a notebook or a test can mount the same page over its own models.
"""

from __future__ import annotations

import contextlib
import html
import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gradio as gr

from medpeft.errors import ConfigError
from medpeft.serve.a3tune_inference import DEFAULT_MAX_NEW_TOKENS, A3TuneServed, GenerationSettings
from medpeft.serve.analysis import OWN_TEMPLATES, Analysis, analyse
from medpeft.serve.ask import Asked, ask
from medpeft.serve.charts import probability_chart
from medpeft.serve.inference import InferenceOptions, dataset_presets, resolve_compute, template_sets
from medpeft.serve.limits import UploadLimits
from medpeft.serve.results import messages_html, to_html, write_csv

log = logging.getLogger(__name__)

DEFAULT_TEMPLATES = "biomedclip"
#: Seconds between sweeps of Gradio's upload cache, and the age at which a cached file is removed.
CACHE_SWEEP_S = 600
CACHE_MAX_AGE_S = 3600
CLIP_TAB = "CLIP (zero-shot classification)"
A3TUNE_TAB = "A³Tune (question answering)"


def build_app(
    models: Mapping[str, Any],
    *,
    compute: InferenceOptions | None = None,
    limits: UploadLimits | None = None,
    work_dir: str | Path | None = None,
    title: str = "medpeft serve",
    a3tune_models: Mapping[str, A3TuneServed] | None = None,
    a3tune_settings: GenerationSettings | None = None,
) -> gr.Blocks:
    """The page: uploads, class names (typed or a dataset preset), templates, and per model (side by
    side) a probability chart and heat-map overlays, plus one results table and its CSV.

    ``models``: display name -> model (anything ``evaluation.predict`` accepts, e.g. ``AceLoraModel``).
    ``compute``: ``serve.inference.resolve_compute(device, precision)`` (default: auto device, fp32).
    ``work_dir``: where result CSVs are written (default: a temporary folder removed with the app).
    ``a3tune_models``: label -> ``serve.a3tune_inference.load_a3tune_models``'s models; when given, the page
    has two tabs, the second asks a question about one image (``a3tune_settings``: greedy, 64 new tokens by
    default). With ``models`` empty the page is the A³Tune tab alone.
    Serve it with ``serve.server.start`` (localhost, no share link, Gradio's own upload-size limit).
    """
    a3tune_models = dict(a3tune_models or {})
    if not models and not a3tune_models:
        raise ConfigError("build_app needs at least one model")
    a3tune_settings = a3tune_settings or GenerationSettings(max_new_tokens=DEFAULT_MAX_NEW_TOKENS)
    compute = compute if compute is not None else resolve_compute()
    limits = limits if limits is not None else UploadLimits()
    names = list(models)
    # Without a work_dir, a temporary folder that lives as long as the handler (the closure holds it).
    owned = tempfile.TemporaryDirectory(prefix="medpeft-serve-") if work_dir is None else None
    presets = dataset_presets()
    sets = template_sets()

    def fill_preset(dataset: str | None) -> tuple[Any, Any]:
        if not dataset or dataset not in presets:
            return gr.update(), gr.update()
        classes, template_set = presets[dataset]
        return ", ".join(classes), (template_set or gr.update())

    def run(files: list[str] | None, labels: str, choice: str, own: str) -> list[Any]:
        try:
            result = analyse(
                models, files, labels, choice, own, limits=limits, compute=compute, with_heatmaps=True
            )
        except Exception as err:  # keep serving; the terminal gets the traceback
            log.exception("request failed")
            result = Analysis(messages=[f"internal error ({type(err).__name__}): {err}"])
        return _outputs(result, names, owned.name if owned is not None else work_dir)

    def run_question(file: str | None, question: str) -> list[Any]:
        try:
            result = ask(a3tune_models, file, question, limits=limits, settings=a3tune_settings)
        except Exception as err:  # keep serving; the terminal gets the traceback
            log.exception("request failed")
            result = Asked(messages=[f"internal error ({type(err).__name__}): {err}"])
        return _question_outputs(result, list(a3tune_models))

    tabs = bool(models) and bool(a3tune_models)
    with gr.Blocks(
        title=title,
        analytics_enabled=False,
        delete_cache=(CACHE_SWEEP_S, CACHE_MAX_AGE_S),
    ) as app:
        if models:
            with gr.Tab(CLIP_TAB, elem_id="medpeft-tab-clip") if tabs else contextlib.nullcontext():
                _clip_page(names, compute, limits, presets, sets, fill_preset, run)
        if a3tune_models:
            with gr.Tab(A3TUNE_TAB, elem_id="medpeft-tab-a3tune") if tabs else contextlib.nullcontext():
                _a3tune_page(list(a3tune_models), a3tune_settings, compute, limits, run_question)
    return app


def _clip_page(
    names: list[str],
    compute: InferenceOptions,
    limits: UploadLimits,
    presets: Mapping[str, Any],
    sets: Mapping[str, Any],
    fill_preset: Any,
    run: Any,
) -> None:
    """The components of the CLIP page (the first tab) and its events."""
    gr.Markdown(_intro(names, compute, limits))
    with gr.Row():
        with gr.Column(scale=1):
            files = gr.File(
                label="Images: PNG, JPEG or DICOM (one or several)",
                file_count="multiple",
                type="filepath",
                elem_id="medpeft-files",
            )
        with gr.Column(scale=1):
            preset = gr.Dropdown(
                choices=list(presets),
                value=None,
                label="Class names from a dataset preset (optional)",
                elem_id="medpeft-preset",
            )
            labels = gr.Textbox(
                label="Class names (at least two, separated by commas)",
                placeholder="no finding, pneumonia",
                elem_id="medpeft-labels",
            )
            choice = gr.Dropdown(
                choices=[*sets, OWN_TEMPLATES],
                value=DEFAULT_TEMPLATES,
                label="Prompt templates",
                elem_id="medpeft-template-set",
            )
            own = gr.Textbox(
                label="Own templates (one per line, {} marks the class name; used with 'own')",
                placeholder="a chest X-ray showing {}.",
                lines=2,
                elem_id="medpeft-own-templates",
            )
            submit = gr.Button("Score", variant="primary", elem_id="medpeft-submit")
    status = gr.HTML(elem_id="medpeft-status")
    table = gr.HTML(elem_id="medpeft-table")
    csv = gr.File(label="Results as CSV", interactive=False, elem_id="medpeft-csv")
    charts, galleries = [], []
    with gr.Row():
        for i, name in enumerate(names):
            with gr.Column(min_width=320):
                gr.Markdown(f"### {name}")
                charts.append(
                    gr.Plot(label=f"Probabilities: {name}", format="png", elem_id=f"medpeft-chart-{i}")
                )
                galleries.append(
                    gr.Gallery(
                        label=f"Heat maps: {name}",
                        columns=2,
                        height=420,
                        object_fit="contain",
                        elem_id=f"medpeft-heatmaps-{i}",
                    )
                )
    preset.change(fill_preset, inputs=preset, outputs=[labels, choice])
    # One request at a time: scoring folds LoRA into the shared weights while it runs.
    submit.click(
        run,
        inputs=[files, labels, choice, own],
        outputs=[status, table, csv, *charts, *galleries],
        concurrency_limit=1,
    )


def _a3tune_page(
    names: list[str], settings: GenerationSettings, compute: InferenceOptions, limits: UploadLimits, run: Any
) -> None:
    """The A³Tune tab: one image, a question, and per model (side by side) the answer and the overlay."""
    gr.Markdown(
        "Ask a question about one image: each model's answer (greedy, up to "
        f"{settings.max_new_tokens} new tokens) and where its selected attention heads look "
        "(the overlay `medpeft a3tune eval` draws, on the crop the model sees). "
        f"Models: **{', '.join(names)}** on {compute.device}. Up to {limits.max_file_mb:g} MB per file. "
        "Images stay on this machine."
    )
    with gr.Row():
        with gr.Column(scale=1):
            file = gr.File(
                label="Image: PNG, JPEG or DICOM (one)",
                file_count="single",
                type="filepath",
                elem_id="medpeft-a3-file",
            )
        with gr.Column(scale=1):
            question = gr.Textbox(
                label="Question", placeholder="Is there a lesion in the left lung?", lines=2,
                elem_id="medpeft-a3-question",
            )  # fmt: skip
            submit = gr.Button("Ask", variant="primary", elem_id="medpeft-a3-submit")
    status = gr.HTML(elem_id="medpeft-a3-status")
    answers, overlays = [], []
    with gr.Row():
        for i, name in enumerate(names):
            with gr.Column(min_width=320):
                gr.Markdown(f"### {name}")
                answers.append(gr.HTML(elem_id=f"medpeft-a3-answer-{i}"))
                overlays.append(
                    gr.Image(
                        label=f"Attention of the selected heads: {name}",
                        type="pil",
                        format="png",
                        interactive=False,
                        elem_id=f"medpeft-a3-overlay-{i}",
                    )  # fmt: skip
                )
    # One request at a time: generation records attention into the model's shared context.
    submit.click(run, inputs=[file, question], outputs=[status, *answers, *overlays], concurrency_limit=1)


def _intro(names: list[str], compute: InferenceOptions, limits: UploadLimits) -> str:
    return (
        "# medpeft serve\n"
        "Zero-shot class probabilities and heat maps for your own images. "
        f"Models: **{', '.join(names)}** on {compute.device} ({compute.precision}). "
        f"Up to {limits.max_images} images per request, {limits.max_file_mb:g} MB per file. "
        "Images stay on this machine."
    )


def answer_html(text: str) -> str:
    """One model's answer for the page (escaped: the model can write anything); an empty answer says so."""
    shown = html.escape(text) if text else "<em>(empty answer)</em>"
    return f'<div class="medpeft-a3-answer"><strong>Answer:</strong> <span class="answer-text">{shown}</span></div>'


def _question_outputs(result: Asked, names: list[str]) -> list[Any]:
    """Component values in the order of ``outputs``: status, answers, overlays (empty where none)."""
    answers = [answer_html(result.answers[n]) if n in result.answers else "" for n in names]
    overlays = [result.overlays.get(n) for n in names]
    return [
        messages_html(result.messages, heading="Not answered:", element_id="medpeft-a3-messages"),
        *answers,
        *overlays,
    ]


def _outputs(result: Analysis, names: list[str], work_dir: str | Path) -> list[Any]:
    """Component values in the order of ``outputs``: status, table, CSV, charts, galleries."""
    if result.table.empty:
        return [messages_html(result.messages), "", None, *([None] * len(names)), *([[]] * len(names))]
    csv = str(write_csv(result.table, work_dir))
    charts = [probability_chart(result.table[result.table["model"] == n], result.labels, n) for n in names]
    galleries = [result.overlays.get(n, []) for n in names]
    return [messages_html(result.messages), to_html(result.table), csv, *charts, *galleries]
