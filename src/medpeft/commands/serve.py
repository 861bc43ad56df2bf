"""`medpeft serve`: a local web page to try a backbone and adapters on your own images."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from medpeft.commands import options

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860


def register(sub: argparse._SubParsersAction) -> None:
    from medpeft.serve.limits import DEFAULT_MAX_FILE_MB, DEFAULT_MAX_IMAGES, DEFAULT_MAX_NEW_TOKENS

    p = sub.add_parser(
        "serve",
        help="local web page: try a backbone and adapters (and A³Tune question answering) on your own images",
        description=(
            "Start a web page (Gradio) on this machine: upload PNG, JPEG or DICOM images, type class names "
            "or pick a dataset preset, choose prompt templates, and see per-image probabilities (bar chart "
            "and table), heat-map overlays and a CSV of the results. Several --adapter flags show the "
            "models side by side. With --a3tune-base the page gets a second tab, 'A³Tune (question "
            "answering)': upload one image, type a question, and see each A³Tune adapter's answer (greedy) and "
            "the overlay of its selected heads' attention (as `medpeft a3tune eval` draws it). Either --backbone "
            "or --a3tune-base is needed; with only --a3tune-base the page is the A³Tune tab alone. Models load "
            "once at start; uploads live in a temporary folder removed when the server stops (Ctrl+C)."
        ),
        epilog=(
            "Examples:\n"
            "  medpeft serve --backbone tiny\n"
            "  medpeft serve --backbone biomedclip --adapter none --adapter ACE_LoRA.pt --port 8080\n"
            "  medpeft serve --backbone ./biomedclip --adapter runs/a1 --device cuda:0 --precision bf16\n"
            "  medpeft serve --backbone tiny --a3tune-base llava-tiny --a3tune-adapter none\n"
            "  medpeft serve --a3tune-base ./llava-med-v1.5-mistral-7b --a3tune-adapter none "
            "--a3tune-adapter runs/a3/final --device cuda:0 --precision bf16\n"
            "Then open http://127.0.0.1:7860 in a browser (from another machine: ssh -L 7860:127.0.0.1:7860 host)."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    options.add_backbone(p, required=False)
    options.add_adapter(p, several=True)
    p.add_argument(
        "--a3tune-base",
        default=None,
        metavar="B",
        help="adds the A³Tune tab: the LLaVA base, as `medpeft a3tune eval --base` takes it (a preset such as "
        "llava-tiny, a local folder, or a hub id in the offline cache). Example: --a3tune-base llava-tiny",
    )
    p.add_argument(
        "--a3tune-adapter",
        action="append",
        default=None,
        metavar="A",
        help="an A³Tune adapter folder (RUN/final) or Hub name, or 'none' for the base (default none); repeat "
        "to see several answers side by side (each holds its own copy of the base in memory). "
        "Example: --a3tune-adapter none --a3tune-adapter runs/a3/final",
    )
    p.add_argument(
        "--max-new-tokens",
        type=int,
        default=DEFAULT_MAX_NEW_TOKENS,
        metavar="N",
        help=f"longest A³Tune answer in tokens, greedy decoding (default {DEFAULT_MAX_NEW_TOKENS}). "
        "Example: --max-new-tokens 128",
    )
    p.add_argument(
        "--host",
        default=DEFAULT_HOST,
        metavar="ADDR",
        help=f"address to bind (default {DEFAULT_HOST}: this machine only); any other address prints a "
        "warning, since the page has no login. Example: --host 0.0.0.0",
    )
    p.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        metavar="N",
        help=f"port (default {DEFAULT_PORT}). Example: --port 8080",
    )
    p.add_argument(
        "--max-file-mb",
        type=float,
        default=DEFAULT_MAX_FILE_MB,
        metavar="MB",
        help=f"largest accepted upload, per file (default {DEFAULT_MAX_FILE_MB:g}). Example: --max-file-mb 100",
    )
    p.add_argument(
        "--max-images",
        type=int,
        default=DEFAULT_MAX_IMAGES,
        metavar="N",
        help=f"most images scored per request (default {DEFAULT_MAX_IMAGES}). Example: --max-images 32",
    )
    options.add_device(p)
    options.add_precision(p)
    options.add_quiet(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import importlib.util

    from medpeft.errors import ConfigError
    from medpeft.serve.limits import UploadLimits
    from medpeft.serve.server import check_port

    if importlib.util.find_spec("gradio") is None:
        raise ConfigError("medpeft serve needs Gradio: pip install 'medpeft[serve]' (or pip install gradio)")
    if not 0 < args.port < 65536:
        raise ConfigError(f"--port must be between 1 and 65535, got {args.port}")
    if not args.backbone and not args.a3tune_base:
        raise ConfigError(
            "medpeft serve needs --backbone (the CLIP tab), --a3tune-base (the A³Tune tab), or both"
        )
    if args.adapter and not args.backbone:
        raise ConfigError("--adapter needs --backbone (the CLIP tab); A³Tune adapters go to --a3tune-adapter")
    if args.a3tune_adapter and not args.a3tune_base:
        raise ConfigError(
            "--a3tune-adapter needs --a3tune-base (the LLaVA base the adapters were trained on)"
        )
    if args.max_new_tokens < 1:
        raise ConfigError(f"--max-new-tokens must be at least 1, got {args.max_new_tokens}")
    limits = UploadLimits(max_file_mb=args.max_file_mb, max_images=args.max_images)
    check_port(args.host, args.port)  # before torch is even imported
    from medpeft.commands.model_options import adapter_labels, adapter_spec, check_adapter
    from medpeft.serve.inference import resolve_compute

    compute = resolve_compute(args.device, args.precision)
    typed = [adapter_spec(a) for a in (args.adapter or [None])] if args.backbone else []
    adapters = [check_adapter(a) for a in typed]
    names = adapter_labels(typed)

    def say(text: str) -> None:
        if not args.quiet:
            print(text, file=sys.stderr, flush=True)

    saved = {key: os.environ.get(key) for key in ("GRADIO_ANALYTICS_ENABLED", "GRADIO_TEMP_DIR")}
    from medpeft.serve.server import terminate_as_interrupt

    try:
        with terminate_as_interrupt():  # SIGTERM while loading or serving: the temporary folder still goes
            return _serve(args, names, adapters, compute, limits, say)
    finally:  # a caller in the same process gets its environment back
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _serve(
    args: argparse.Namespace,
    names: list[str],
    adapters: list[str | None],
    compute: Any,
    limits: Any,
    say: Callable[[str], None],
) -> int:
    """Load the models once, serve until stopped; the temporary folder goes when this returns."""
    from medpeft.commands.model_options import model_factories
    from medpeft.serve.server import exposure_warning

    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # no telemetry, no version check
    with tempfile.TemporaryDirectory(prefix="medpeft-serve-") as work:
        # Gradio reads this when imported: its upload cache goes inside our folder and is removed with it.
        os.environ["GRADIO_TEMP_DIR"] = str(Path(work) / "uploads")
        say(f"uploads and results go to {work} (removed when the server stops)")
        models = {}
        started = time.perf_counter()
        factories = model_factories(args.backbone, adapters) if args.backbone else []
        for i, (name, make) in enumerate(zip(names, factories, strict=True)):
            say(f"loading model {i + 1}/{len(names)}: {name} (backbone {args.backbone}) ...")
            models[name] = make().to(compute.device).eval()
        a3tune_models, settings = _load_a3tune(args, compute, say)
        say(
            f"models loaded in {time.perf_counter() - started:.1f} s on {compute.device} ({compute.precision})"
        )

        from medpeft.serve.app import build_app
        from medpeft.serve.server import serve_until_stopped, start

        app = build_app(
            models,
            compute=compute,
            limits=limits,
            work_dir=work,
            a3tune_models=a3tune_models,
            a3tune_settings=settings,
        )
        url = start(app, args.host, args.port, max_file_bytes=limits.max_file_bytes)
        warning = exposure_warning(args.host, args.port)
        if warning:
            print(warning, file=sys.stderr, flush=True)
        print(f"medpeft serve: running at {url} (Ctrl+C to stop)", flush=True)
        try:
            serve_until_stopped(app)
        finally:
            print("medpeft serve: stopped", flush=True)
    return 0


def _load_a3tune(args: argparse.Namespace, compute: Any, say: Callable[[str], None]) -> tuple[dict, Any]:
    """The A³Tune tab's models (none without --a3tune-base) and its greedy generation settings."""
    if not args.a3tune_base:
        return {}, None
    from medpeft.serve.a3tune_inference import GenerationSettings, load_a3tune_models

    adapters = args.a3tune_adapter or ["none"]
    say(f"loading {len(adapters)} A³Tune model(s) on base {args.a3tune_base}: {', '.join(adapters)} ...")
    settings = GenerationSettings(
        num_beams=1, max_new_tokens=args.max_new_tokens, precision=compute.precision
    )
    return load_a3tune_models(args.a3tune_base, adapters, compute.device), settings
