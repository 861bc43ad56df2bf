"""Running the page: bind (localhost by default), warn when exposed, stop cleanly on Ctrl+C or SIGTERM.

Why not ``Blocks.launch()`` alone: its blocking wait ends only on Ctrl+C, and a SIGTERM (a test, a
service manager) would kill the process before the temporary upload folder is removed; here SIGTERM is
turned into the same clean stop as Ctrl+C.
"""

from __future__ import annotations

import contextlib
import ipaddress
import signal
import socket
import threading
from collections.abc import Iterator
from typing import Any

from medpeft.errors import ConfigError


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str, port: int) -> str | None:
    """The warning printed when the page is reachable from other machines (None on localhost)."""
    if is_loopback(host):
        return None
    return (
        f"WARNING: serving on {host}:{port}, not on localhost: anyone who can reach this machine on port "
        f"{port} can upload images and run the models, and the page has no login. Serve on 127.0.0.1 "
        "(the default) and use an SSH tunnel to reach it from elsewhere."
    )


def check_port(host: str, port: int) -> None:
    """Fail fast, before any model loads, when ``host:port`` cannot be bound (in use, or not an address
    of this machine); ``ConfigError`` says which."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        raise ConfigError(f"cannot serve on {host}:{port}: unknown host ({err.strerror})") from err
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as err:
            raise ConfigError(
                f"cannot serve on {host}:{port}: {err.strerror}; is another server on that port? pass --port N"
            ) from err


def start(app: Any, host: str, port: int, *, max_file_bytes: int) -> str:
    """Start serving in background threads; returns the local URL. Never a share link, no telemetry,
    no server-side rendering process; uploads over ``max_file_bytes`` are refused by Gradio itself."""
    try:
        app.launch(
            server_name=host,
            server_port=port,
            share=False,
            prevent_thread_lock=True,
            quiet=True,
            show_error=False,
            max_file_size=max_file_bytes,
            ssr_mode=False,
            mcp_server=False,
            pwa=False,
            enable_monitoring=False,
        )
    except OSError as err:
        raise ConfigError(
            f"cannot serve on {host}:{port} ({err}); is the port in use? pass --port N"
        ) from err
    return app.local_url or f"http://{host}:{port}/"


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM raises ``KeyboardInterrupt`` (as Ctrl+C does) while inside, so a server stopped at any
    moment, model loading included, unwinds and removes its temporary folder. Main thread only (where
    Python delivers signals); elsewhere a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def serve_until_stopped(app: Any, stop: threading.Event | None = None) -> None:
    """Block until Ctrl+C (or SIGTERM under ``terminate_as_interrupt``) or until ``stop`` is set, then
    close the server."""
    stop = stop if stop is not None else threading.Event()
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        app.close()
