"""Run an ASGI app under uvicorn on 127.0.0.1, on a free port, in a background thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

START_TIMEOUT_SECONDS = 10.0
STOP_TIMEOUT_SECONDS = 10.0


class ServedApp:
    """The uvicorn server behind one ``serve`` block; ``stop`` ends it (idempotent)."""

    def __init__(self, server: uvicorn.Server, thread: threading.Thread) -> None:
        self.server = server
        self.thread = thread

    def request_stop(self) -> None:
        """Ask the server to stop; safe to call from a request handler (does not wait)."""
        self.server.should_exit = True

    def stop(self) -> None:
        """Stop the server and wait until it has closed its socket and connections."""
        self.request_stop()
        if self.thread is not threading.current_thread():
            self.thread.join(STOP_TIMEOUT_SECONDS)
            if self.thread.is_alive():
                self.server.force_exit = True
                self.thread.join(STOP_TIMEOUT_SECONDS)


@contextmanager
def serve(app: Any, *, websockets: bool = False) -> Iterator[str]:
    """Serve ``app`` over real TCP for the block; yields its base URL, e.g. http://127.0.0.1:5813.

    When the app has a Starlette ``state``, ``app.state.served`` is the ``ServedApp``, so a fake
    can stop its own server ("kill it mid-sync"). With ``websockets=True`` the server also
    accepts websocket connections (through the ``websockets`` library).
    """
    # IPPROTO_TCP said outright: asyncio turns Nagle's algorithm off only on sockets that say
    # it, and without that each answer on a kept-alive connection after the first waited about
    # 40 ms for the client's delayed ACK (as app/uvicorn_compat.py explains for the service).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        loop="asyncio",
        http="h11",
        ws="websockets-sansio" if websockets else "none",
        lifespan="off",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"fake-server-{port}", daemon=True
    )
    served = ServedApp(server, thread)
    state = getattr(app, "state", None)
    if state is not None:
        state.served = served
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            served.stop()
            raise RuntimeError(f"the fake server on port {port} did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        served.stop()
        sock.close()
