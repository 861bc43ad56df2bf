"""``medpeft serve`` as a subprocess on a free localhost port, for the end-to-end tests (not a test module).

The server is always stopped (SIGTERM, then a kill after a bounded wait) when the context exits.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from serve_helpers import free_port

SRC = Path(__file__).resolve().parents[2] / "src"


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    env: dict[str, str]
    lines: list[str] = field(default_factory=list)

    def output(self) -> str:
        return "".join(self.lines)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait: the exit status (a kill after ``timeout`` s gives -9)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode


def serve_env() -> dict[str, str]:
    """This checkout's sources first on the path, Gradio telemetry off."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH", "")) if p)
    env["GRADIO_ANALYTICS_ENABLED"] = "False"
    return env


def serve_command(args: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "medpeft.cli", "serve", *args]


@contextmanager
def running_server(args: Sequence[str], start_timeout: float = 180.0) -> Iterator[Server]:
    """Start ``medpeft serve --host 127.0.0.1 --port <free> *args``; yields once it prints its URL."""
    env = serve_env()
    command = serve_command(["--host", "127.0.0.1", "--port", str(free_port()), *args])
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, bufsize=1
    )
    server = Server("", process, env)
    ready = threading.Event()

    def read() -> None:
        for line in process.stdout:
            server.lines.append(line)
            match = re.search(r"running at (http://\S+)", line)
            if match:
                server.url = match.group(1).rstrip("/")
                ready.set()
        ready.set()  # the process ended

    threading.Thread(target=read, daemon=True).start()
    try:
        if not ready.wait(start_timeout) or not server.url:
            raise RuntimeError(f"medpeft serve did not start within {start_timeout} s:\n{server.output()}")
        yield server
    finally:
        server.stop()
