"""Run an ASGI app under uvicorn on 127.0.0.1, on a free port, in a background thread."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from websockets.exceptions import InvalidState

START_TIMEOUT_SECONDS = 10.0
STOP_TIMEOUT_SECONDS = 10.0
# How long connections and requests still open at a stop may take to finish before they are
# cancelled, and how often that is checked.
GRACE_SECONDS = 1.0
CHECK_SECONDS = 0.005
# The loop's turns an accepted connection takes to reach its protocol: asyncio starts a task,
# which makes the transport, which calls the protocol's connection_made.
ACCEPT_TURNS = 3


class PromptServer(uvicorn.Server):
    """uvicorn's server, stopped as soon as it is asked to. uvicorn checks ``should_exit`` every
    0.1 s and pauses 0.1 s more on its way out, nothing for a service but about 0.2 s for every
    test that starts a fake server or the app, of which there are hundreds. Written against
    uvicorn 0.54: it overrides ``main_loop`` and ``shutdown`` and reads ``server_state``; if a
    later uvicorn changes them, the fakes stop at once or hang, and every test using one says so.
    """

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopping = asyncio.Event()

    def request_stop(self) -> None:
        # should_exit first: main_loop reads it after publishing its loop, so either it sees the
        # flag or this sees the loop.
        self.should_exit = True
        if self.loop is not None:
            # A RuntimeError: the loop is closed, the server already stopped.
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self.stopping.set)

    async def main_loop(self) -> None:
        await self.on_tick(0)  # the default headers (the Date header of the fakes' answers)
        self.loop = asyncio.get_running_loop()
        if not self.should_exit:
            await self.stopping.wait()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # A connection accepted just before the close is handed to its protocol by a task that
        # runs a turn later: once the asyncio server is closed, that task fails making the
        # transport (an assertion in asyncio's Server._attach, Python 3.11) and leaves the
        # accepted socket open, reported by the garbage collector in some later test. So the
        # loop stops accepting first, and those tasks finish before the close.
        loop = asyncio.get_running_loop()
        for server in self.servers:
            for listening in server.sockets:
                loop.remove_reader(listening.fileno())
        for _ in range(ACCEPT_TURNS):
            await asyncio.sleep(0)
        for server in self.servers:
            server.close()
        state = self.server_state
        for connection in list(state.connections):
            # uvicorn's websockets-sansio connection raises when its client is already closing
            # it (a browser context closed just before): that one is going anyway.
            with contextlib.suppress(InvalidState):
                connection.shutdown()
        deadline = time.monotonic() + GRACE_SECONDS
        while (state.connections or state.tasks) and time.monotonic() < deadline:
            if self.force_exit:
                break
            await asyncio.sleep(CHECK_SECONDS)
        for task in state.tasks:
            task.cancel()
        # A connection still open now is one whose client stopped reading (a browser context
        # closing mid-answer): its transport cannot flush, so it would outlive the loop, and its
        # socket would be reported unclosed wherever the garbage collector finds it, in some
        # later test. Dropped outright instead.
        for connection in list(state.connections):
            connection.transport.abort()
        for server in self.servers:
            await server.wait_closed()


class ServedApp:
    """The uvicorn server behind one ``serve`` block; ``stop`` ends it (idempotent)."""

    def __init__(self, server: PromptServer, thread: threading.Thread) -> None:
        self.server = server
        self.thread = thread

    def request_stop(self) -> None:
        """Ask the server to stop; safe to call from a request handler (does not wait)."""
        self.server.request_stop()

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
    )
    server = PromptServer(config)
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
