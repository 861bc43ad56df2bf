"""``build_app``: the Gradio page of ``medpeft serve`` over models that are already loaded.

Why the models come in loaded: they load once, at start (the command shows progress), and every request
reuses them; a notebook or a test can mount the same page over its own models.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gradio as gr

from medpeft.errors import ConfigError
from medpeft.serve.analysis import OWN_TEMPLATES, Analysis, analyse
from medpeft.serve.charts import probability_chart
from medpeft.serve.inference import InferenceOptions, dataset_presets, resolve_compute, template_sets
from medpeft.serve.limits import UploadLimits
from medpeft.serve.results import messages_html, to_html, write_csv

log = logging.getLogger(__name__)

DEFAULT_TEMPLATES = "biomedclip"
#: Seconds between sweeps of Gradio's upload cache, and the age at which a cached file is removed.
CACHE_SWEEP_S = 600
CACHE_MAX_AGE_S = 3600


def build_app(
    models: Mapping[str, Any],
    *,
    compute: InferenceOptions | None = None,
    limits: UploadLimits | None = None,
    work_dir: str | Path | None = None,
    title: str = "medpeft serve",
) -> gr.Blocks:
    """The page: uploads, class names (typed or a dataset preset), templates, and per model (side by
    side) a probability chart and heat-map overlays, plus one results table and its CSV.

    ``models``: display name -> model (anything ``evaluation.predict`` accepts, e.g. ``AceLoraModel``).
    ``compute``: ``serve.inference.resolve_compute(device, precision)`` (default: auto device, fp32).
    ``work_dir``: where result CSVs are written (default: a temporary folder removed with the app).
    Serve it with ``serve.server.start`` (localhost, no share link, Gradio's own upload-size limit).
    """
    if not models:
        raise ConfigError("build_app needs at least one model")
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

    with gr.Blocks(
        title=title,
        analytics_enabled=False,
        delete_cache=(CACHE_SWEEP_S, CACHE_MAX_AGE_S),
    ) as app:
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
    return app


def _intro(names: list[str], compute: InferenceOptions, limits: UploadLimits) -> str:
    return (
        "# medpeft serve\n"
        "Zero-shot class probabilities and heat maps for your own images. "
        f"Models: **{', '.join(names)}** on {compute.device} ({compute.precision}). "
        f"Up to {limits.max_images} images per request, {limits.max_file_mb:g} MB per file. "
        "Images stay on this machine."
    )


def _outputs(result: Analysis, names: list[str], work_dir: str | Path) -> list[Any]:
    """Component values in the order of ``outputs``: status, table, CSV, charts, galleries."""
    if result.table.empty:
        return [messages_html(result.messages), "", None, *([None] * len(names)), *([[]] * len(names))]
    csv = str(write_csv(result.table, work_dir))
    charts = [probability_chart(result.table[result.table["model"] == n], result.labels, n) for n in names]
    galleries = [result.overlays.get(n, []) for n in names]
    return [messages_html(result.messages), to_html(result.table), csv, *charts, *galleries]
