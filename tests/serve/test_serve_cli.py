"""``medpeft serve`` on the command line: help, option errors before anything loads, and a real server
process that answers on localhost and removes its temporary folder when stopped."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import urllib.request
from pathlib import Path

import pytest
from serve_helpers import free_port

from medpeft.cli import main

FLAGS = [
    "--backbone",
    "--adapter",
    "--host",
    "--port",
    "--max-file-mb",
    "--max-images",
    "--a3tune-base",
    "--a3tune-adapter",
    "--max-new-tokens",
    "--device",
    "--precision",
    "--quiet",
]


def test_help_explains_every_flag(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for flag in FLAGS:
        assert flag in text
    # serve's own flags carry an example; the shared ones (--device, --precision, ...) are the one definition
    # of commands/options.py (tests/test_cli_vocabulary.py)
    for flag in ["--host", "--port", "--max-file-mb", "--max-images", "--a3tune-base", "--a3tune-adapter",
                 "--max-new-tokens"]:  # fmt: skip
        block = text[text.index(f"  {flag} ") + 3 :]
        block = " ".join(block[: block.find("\n  --")].split())  # this flag's help, unwrapped
        assert f"Example: {flag} " in block, block
    assert "medpeft serve --backbone tiny" in text and "--adapter none --adapter ACE_LoRA.pt" in text
    assert "default 127.0.0.1" in text and "default 7860" in text and "(exact; the default)" in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--device", "cpu", "--precision", "fp16"], "--precision fp16 needs a CUDA device"),
        (["--port", "0"], "--port must be between 1 and 65535"),
        (["--max-images", "0"], "--max-images must be at least 1"),
        (["--max-file-mb", "-1"], "--max-file-mb must be positive"),
        (["--adapter", "no/such/adapter"], "adapter not found: no/such/adapter"),
        (["--device", "tpu"], "invalid device 'tpu'"),
    ],
)
def test_bad_options_fail_before_loading(capsys, argv, message):
    port = ["--port", str(free_port())] if "--port" not in argv else []
    assert main(["serve", "--backbone", "tiny", *port, *argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("medpeft serve: error:") and message in err
    assert "loading model" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "medpeft serve needs --backbone (the CLIP tab), --a3tune-base (the A³Tune tab), or both"),
        (["--a3tune-base", "llava-tiny", "--adapter", "none"], "--adapter needs --backbone (the CLIP tab)"),
        (["--backbone", "tiny", "--a3tune-adapter", "none"], "--a3tune-adapter needs --a3tune-base"),
        (["--a3tune-base", "llava-tiny", "--max-new-tokens", "0"], "--max-new-tokens must be at least 1"),
    ],
)
def test_a3tune_options_fail_before_loading(capsys, argv, message):
    assert main(["serve", "--port", str(free_port()), *argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("medpeft serve: error:") and message in err
    assert "loading" not in err


def test_server_process_serves_and_cleans_up():
    pytest.importorskip("gradio", reason="medpeft serve needs gradio (pip install gradio)")
    from serve_process import running_server, serve_command

    with running_server(["--backbone", "tiny", "--max-images", "3"]) as server:
        assert re.match(r"http://127\.0\.0\.1:\d+$", server.url)
        with urllib.request.urlopen(server.url + "/config", timeout=30) as response:
            config = json.load(response)
        assert config["title"] == "medpeft serve"
        assert "Up to 3 images per request" in json.dumps(config)
        output = server.output()
        assert "loading model 1/1: base (backbone tiny)" in output and "WARNING" not in output
        work = Path(re.search(r"uploads and results go to (\S+) ", output).group(1))
        assert work.is_dir()
        port = server.url.rsplit(":", 1)[1]
        second = subprocess.run(
            serve_command(["--backbone", "tiny", "--port", port, "--quiet"]),
            env=server.env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert second.returncode == 1
        assert (
            f"medpeft serve: error: cannot serve on 127.0.0.1:{port}: Address already in use" in second.stderr
        )
        assert "loading model" not in second.stderr  # refused before any model loads
        assert "Traceback" not in second.stderr
        assert server.stop() == 0
    assert "medpeft serve: stopped" in server.output()
    assert not work.exists()


def test_sigterm_while_loading_removes_the_temporary_folder():
    pytest.importorskip("gradio", reason="medpeft serve needs gradio (pip install gradio)")
    from serve_process import serve_command, serve_env

    process = subprocess.Popen(
        serve_command(["--backbone", "tiny", "--port", str(free_port())]),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=serve_env(),
    )
    try:
        for line in process.stdout:
            if "uploads and results go to" in line:
                work = Path(re.search(r"go to (\S+) ", line).group(1))
                break
        assert work.is_dir()
        process.send_signal(signal.SIGTERM)  # the models are loading now
        output = process.communicate(timeout=60)[0]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert process.returncode == 130 and "medpeft serve: interrupted" in output, output
    assert not work.exists()


@pytest.mark.slow  # ~15 s: a server process loading llava-tiny
def test_a3tune_tab_alone_without_backbone():
    pytest.importorskip("gradio", reason="medpeft serve needs gradio (pip install gradio)")
    from serve_process import running_server

    with running_server(["--a3tune-base", "llava-tiny", "--max-new-tokens", "4"]) as server:
        with urllib.request.urlopen(server.url + "/config", timeout=30) as response:
            config = json.dumps(json.load(response))
        assert "medpeft-a3-question" in config and "up to 4 new tokens" in config
        assert "medpeft-files" not in config and "medpeft-tab-clip" not in config  # no CLIP page, no tabs
        output = server.output()
        assert (
            "loading 1 A³Tune model(s) on base llava-tiny: none" in output and "loading model" not in output
        )
        assert server.stop() == 0
    assert "Traceback" not in server.output()
