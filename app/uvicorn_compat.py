"""uvicorn behind one seam: how it starts several workers.

Written for uvicorn 0.54. With more than one worker, uvicorn binds the listening socket itself
(``Config.bind_socket``) without saying ``IPPROTO_TCP``. The connections it accepts inherit that,
and asyncio turns ``TCP_NODELAY`` on only for sockets that say ``IPPROTO_TCP``. So every answer on
a kept-alive connection after the first waited for the client's delayed ACK: about 40 ms on Linux
(uvicorn issue #3149), a ceiling of about 25 answers a second per connection. ``run`` is
``uvicorn.run`` with ``TCP_NODELAY`` set on that socket, which accepted connections inherit.

uvicorn also spawns each worker: a new interpreter that imports the application again, about a
second of processor time per worker at every start and restart (4 workers: 5 processor-seconds,
2.7 s to the first answer). ``run`` starts them from a fork server that has imported the
application once (2.4 processor-seconds, 2.0 s), through the module-level multiprocessing context
uvicorn's ``_subprocess.get_subprocess`` reads. Each worker is forked from a process that has
done nothing but import: it has no thread and no database connection to share.

``tests/app/test_uvicorn_compat.py`` fails when either part of the seam no longer applies.
"""

from __future__ import annotations

import argparse
import multiprocessing
import socket
import sys
from typing import Any

import uvicorn
from uvicorn import _subprocess
from uvicorn.supervisors import Multiprocess

# What uvicorn.run exits with when the server did not start.
STARTUP_FAILURE = 3


class NoDelayConfig(uvicorn.Config):
    """uvicorn's configuration, binding its TCP socket with Nagle's algorithm off."""

    def bind_socket(self) -> socket.socket:
        sock = super().bind_socket()
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock


def run(app: str, **options: Any) -> None:
    """``uvicorn.run(app, **options)`` for an application named by its import string (as
    several workers need), with ``TCP_NODELAY`` on every connection whatever the workers."""
    config = NoDelayConfig(app, **options)
    server = uvicorn.Server(config=config)
    try:
        if config.workers > 1:
            start_workers_from_a_fork_server(app)
            Multiprocess(config, sockets=[config.bind_socket()]).run()
        else:
            server.run()
    except KeyboardInterrupt:
        pass
    if config.workers == 1 and not server.started:
        sys.exit(STARTUP_FAILURE)


def start_workers_from_a_fork_server(app: str) -> None:
    """Have uvicorn start its workers from a fork server that has imported ``app``'s module (and
    the main script, as a spawned worker would import it)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["__main__", app.partition(":")[0]])
    _subprocess.spawn = context  # type: ignore[assignment]


def main() -> None:
    """``python -m app.uvicorn_compat MODULE:FACTORY``: a factory served as ``run`` serves it
    (the benchmarks start their reference endpoints this way, on the same terms as the
    product)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("app", help="MODULE:FACTORY, a function returning the ASGI app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)
    arguments = parser.parse_args()
    run(
        arguments.app,
        factory=True,
        host=arguments.host,
        port=arguments.port,
        workers=arguments.workers,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
