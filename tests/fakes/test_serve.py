"""The helper that serves apps to the tests stops without leaving a socket behind."""

from __future__ import annotations

import contextlib
import gc
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from tests.fakes.serve import serve

CHUNK = b"x" * 65536
HTTP_REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
STOPS_UNDER_CONNECTIONS = 20
CONNECTION_INTERVAL_SECONDS = 0.0002
WEBSOCKET_REQUEST = (
    b"GET /live HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


async def endless_answer(request: Request) -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        while True:
            yield CHUNK

    return StreamingResponse(chunks())


async def endless_messages(websocket: WebSocket) -> None:
    await websocket.accept()
    while True:
        await websocket.send_bytes(CHUNK)


@pytest.mark.parametrize(
    "request_bytes", [HTTP_REQUEST, WEBSOCKET_REQUEST], ids=["http-answer", "websocket"]
)
def test_a_client_that_stops_reading_leaves_no_socket_open(
    request_bytes: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A browser context closed mid-answer, or with its live-updates websocket open: its
    # connection cannot flush when the server stops. Its socket was reported unclosed by the
    # garbage collector, as an error of whichever later test happened to be running.
    unraisable: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    app = Starlette(routes=[Route("/", endless_answer), WebSocketRoute("/live", endless_messages)])
    with socket.socket() as client:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        with serve(app, websockets=True) as url:
            client.connect(("127.0.0.1", int(url.rsplit(":", 1)[1])))
            client.sendall(request_bytes)
            time.sleep(0.2)  # the server fills the socket's buffers and waits
        del app
        gc.collect()
    assert [f"{item.err_msg}: {item.exc_value!r}" for item in unraisable] == []


async def hello(request: Request) -> StreamingResponse:
    return StreamingResponse(iter([b"hello"]))


def connect_until(stop: threading.Event, address: tuple[str, int]) -> None:
    """Open and close connections to ``address`` until ``stop`` is set."""
    while not stop.wait(CONNECTION_INTERVAL_SECONDS):
        with socket.socket() as client, contextlib.suppress(OSError):
            client.connect(address)


def test_connections_arriving_as_the_server_stops_leave_no_socket_open(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A browser opens connections at any time, one of them as a test's server stops: accepted
    # just before the close, it was left open, and reported as an error of a later test.
    unraisable: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    for _ in range(STOPS_UNDER_CONNECTIONS):
        stop = threading.Event()
        app = Starlette(routes=[Route("/", hello)])
        with serve(app) as url:
            address = ("127.0.0.1", int(url.rsplit(":", 1)[1]))
            connecting = threading.Thread(target=connect_until, args=(stop, address))
            connecting.start()
            time.sleep(0.02)
        stop.set()
        connecting.join()
        del app
    # Once, at the end: a full collection finds every transport left open by any of the stops.
    gc.collect()
    assert [f"{item.err_msg}: {item.exc_value!r}" for item in unraisable] == []
