"""The uvicorn seam (app/uvicorn_compat.py): with several workers, every connection the server
accepts has Nagle's algorithm off, as with one worker, and the workers are forked from a server
that imported the application once.

With it on, each answer on a kept-alive connection after the first waited for the client's
delayed ACK (about 40 ms on Linux): `licensing serve --workers 4` answered one client's
requests in 48 ms each instead of 6.
"""

from __future__ import annotations

import multiprocessing.forkserver
import socket

import pytest
import uvicorn
from uvicorn import _subprocess as uvicorn_subprocess

from app.uvicorn_compat import NoDelayConfig, start_workers_from_a_fork_server


def accepted_nodelay(config: uvicorn.Config) -> int:
    """TCP_NODELAY on a connection accepted by the socket ``config`` binds for its workers."""
    listener = config.bind_socket()
    try:
        listener.listen()  # as the server does when it starts on the socket
        with socket.create_connection(listener.getsockname()[:2]):
            accepted, _address = listener.accept()
            with accepted:
                return accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        listener.close()


def test_connections_accepted_for_several_workers_have_nagle_off() -> None:
    config = NoDelayConfig("app.factory:create_app", factory=True, port=0, workers=2)
    assert accepted_nodelay(config) == 1


def test_uvicorn_alone_still_leaves_nagle_on_so_the_seam_is_still_needed() -> None:
    # Fails once uvicorn sets TCP_NODELAY itself (issue #3149): app/uvicorn_compat.py can then go.
    config = uvicorn.Config("app.factory:create_app", factory=True, port=0, workers=2)
    assert accepted_nodelay(config) == 0


def test_workers_are_started_from_a_fork_server_that_imported_the_application(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Fails if uvicorn stops reading its module-level context when it makes a worker: each
    # worker would then be spawned and import the application again (a second of processor
    # time each, at every start and restart).
    monkeypatch.setattr(uvicorn_subprocess, "spawn", uvicorn_subprocess.spawn)
    fork_server = multiprocessing.forkserver._forkserver  # type: ignore[attr-defined]
    monkeypatch.setattr(fork_server, "_preload_modules", fork_server._preload_modules)
    start_workers_from_a_fork_server("app.factory:create_app")
    config = uvicorn.Config("app.factory:create_app", factory=True, port=0, workers=2)
    worker = uvicorn_subprocess.get_subprocess(config, target=lambda sockets: None, sockets=[])
    assert worker._start_method == "forkserver"  # type: ignore[attr-defined]
    assert fork_server._preload_modules == ["__main__", "app.factory"]
