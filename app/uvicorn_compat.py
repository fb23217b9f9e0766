"""uvicorn behind one seam: its start with several workers leaves Nagle's algorithm on.

Written for uvicorn 0.54. With more than one worker, uvicorn binds the listening socket itself
(``Config.bind_socket``) without saying ``IPPROTO_TCP``. The connections it accepts inherit that,
and asyncio turns ``TCP_NODELAY`` on only for sockets that say ``IPPROTO_TCP``. So every answer on
a kept-alive connection after the first waited for the client's delayed ACK: about 40 ms on Linux
(uvicorn issue #3149), a ceiling of about 25 answers a second per connection. ``run`` is
``uvicorn.run`` with ``TCP_NODELAY`` set on that socket, which accepted connections inherit.
``tests/app/test_uvicorn_compat.py`` fails when the seam no longer applies.
"""

from __future__ import annotations

import argparse
import socket
import sys
from typing import Any

import uvicorn
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
            Multiprocess(config, sockets=[config.bind_socket()]).run()
        else:
            server.run()
    except KeyboardInterrupt:
        pass
    if config.workers == 1 and not server.started:
        sys.exit(STARTUP_FAILURE)


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
