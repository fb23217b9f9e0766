"""What operators see of the running service: request ids, log lines and Prometheus metrics.

- ``RequestObservability``, a pure ASGI middleware around the whole app: it takes the caller's
  ``X-Request-ID`` when it is sane (else makes one), returns it in the response, makes it the
  ``request_id`` of every log line written while the request is served, writes one access line
  per request and counts the request for ``/metrics``. It sits on the GraphQL hot path, so it
  does only a few microseconds of work.
- ``logging_config``: the one logging set-up of ``licensing serve`` and ``licensing worker``,
  for our loggers and uvicorn's, as JSON lines or plain text.
- ``metrics``: the ``/metrics`` endpoint. Under several workers it sums every worker's values,
  which prometheus_client's multiprocess mode keeps in ``PROMETHEUS_MULTIPROC_DIR``
  (``shared_metrics_directory`` prepares it before the workers start).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = b"x-request-id"
MULTIPROCESS_DIRECTORY_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"

# An id we pass on into logs and headers: short, and nothing that could forge a log field.
_is_sane_request_id = re.compile(rb"[A-Za-z0-9._:-]{1,128}").fullmatch
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# The same series with one worker as with several (multiprocess mode has no *_created series).
disable_created_metrics()

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
access_logger = logging.getLogger("licensing.access")

HTTP_REQUESTS = Counter(
    "licensing_http_requests",
    "HTTP requests answered, by method, route template (e.g. /graphql) and status code.",
    ["method", "route", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "licensing_http_request_duration_seconds",
    "Time from receiving an HTTP request to the end of its response, by route template.",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
# Labelled children by (method, route, status): looking them up again per request costs more.
_http_series: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def current_request_id() -> str | None:
    """The id of the HTTP request being served, or None outside a request."""
    return request_id_var.get()


class RequestObservability:
    """Pure ASGI middleware: request id, access log line and HTTP metrics for each request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope["headers"]) or uuid.uuid4().hex
        token = request_id_var.set(request_id)
        try:
            if scope["type"] == "http":
                await self._serve_http(scope, receive, send, request_id)
            else:  # a websocket: its log lines carry the id too
                await self.app(scope, receive, send)
        finally:
            request_id_var.reset(token)

    async def _serve_http(
        self, scope: Scope, receive: Receive, send: Send, request_id: str
    ) -> None:
        started = time.perf_counter()
        header = (REQUEST_ID_HEADER, request_id.encode("ascii"))
        status = 500  # what the server answers when the app fails before responding

        async def send_with_request_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_request_id)
        finally:
            seconds = time.perf_counter() - started
            method = scope["method"]
            # The router leaves the matched route in the scope: label by its template, so
            # /metrics never has a series per URL.
            route = getattr(scope.get("route"), "path_format", None) or "unmatched"
            _count_request(method if method in _KNOWN_METHODS else "other", route, status, seconds)
            if access_logger.isEnabledFor(logging.INFO):
                path = scope["path"]  # never the query string: it can hold a GraphQL query
                duration_ms = round(seconds * 1000, 2)
                access_logger.info(
                    "%s %s %s %.1f ms",
                    method,
                    path,
                    status,
                    duration_ms,
                    extra={
                        "method": method,
                        "path": path,
                        "status": status,
                        "duration_ms": duration_ms,
                        "request_id": request_id,
                    },
                )


def _incoming_request_id(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == REQUEST_ID_HEADER:
            return value.decode("ascii") if _is_sane_request_id(value) else None
    return None


def _count_request(method: str, route: str, status: int, seconds: float) -> None:
    key = (method, route, status)
    series = _http_series.get(key)
    if series is None:
        series = _http_series.setdefault(
            key,
            (
                HTTP_REQUESTS.labels(method=method, route=route, status=str(status)),
                HTTP_REQUEST_DURATION.labels(route=route),
            ),
        )
    requests, duration = series
    requests.inc()
    duration.observe(seconds)


def metrics(_request: Request) -> Response:
    """``GET /metrics``: every metric in Prometheus' text format, summed over the workers."""
    if os.environ.get(MULTIPROCESS_DIRECTORY_VARIABLE):
        # A registry per scrape, holding only the collector that reads every worker's files.
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


@contextmanager
def shared_metrics_directory(workers: int) -> Iterator[Path | None]:
    """Set up prometheus_client's multiprocess mode for ``workers`` worker processes.

    Must run before the workers start (they read ``PROMETHEUS_MULTIPROC_DIR`` when they import
    prometheus_client). A directory the operator named is emptied of the last run's files; with
    several workers and none named, a fresh one is made here and removed at the end. Yields the
    directory, or None when one process serves alone and keeps its metrics in memory.
    """
    named = os.environ.get(MULTIPROCESS_DIRECTORY_VARIABLE)
    if named:
        directory = Path(named)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
        yield directory
        return
    if workers <= 1:
        yield None
        return
    directory = Path(tempfile.mkdtemp(prefix="licensing-metrics-"))
    os.environ[MULTIPROCESS_DIRECTORY_VARIABLE] = str(directory)
    try:
        yield directory
    finally:
        os.environ.pop(MULTIPROCESS_DIRECTORY_VARIABLE, None)
        shutil.rmtree(directory, ignore_errors=True)


class RequestIdFilter(logging.Filter):
    """Gives each log record written while a request is served that request's ``request_id``."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = request_id_var.get()
        if request_id is not None:
            record.request_id = request_id
        return True


class TextFormatter(logging.Formatter):
    """One readable line: time, level, logger, request id (``-`` for none), message, then the
    record's extra fields as ``key=value`` (an access line's are already in its message)."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT, defaults={"request_id": "-"})

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        shown = _ACCESS_FIELDS if record.name == access_logger.name else _NOT_EXTRA
        fields = [
            f"{name}={value}"
            for name, value in record.__dict__.items()
            if name not in shown and not name.startswith("_")
        ]
        if not fields:
            return line
        # The traceback, if any, stays last.
        head, newline, traceback_text = line.partition("\n")
        return f"{head} {' '.join(fields)}{newline}{traceback_text}"


_NOT_EXTRA = frozenset({*RESERVED_ATTRS, "message", "asctime", "request_id", "color_message"})
_ACCESS_FIELDS = _NOT_EXTRA | {"method", "path", "status", "duration_ms"}


def resolved_log_format(configured: str, *, stream: Any = None, environ: Any = None) -> str:
    """The log format to write: ``json`` or ``text`` as configured, and for ``auto`` readable text
    in a terminal, JSON under a service manager (systemd sets ``JOURNAL_STREAM`` and
    ``INVOCATION_ID``) or when standard error is not a terminal (a container's log, a pipe)."""
    if configured != "auto":
        return configured
    environ = os.environ if environ is None else environ
    if environ.get("JOURNAL_STREAM") or environ.get("INVOCATION_ID"):
        return "json"
    stream = sys.stderr if stream is None else stream
    is_terminal = getattr(stream, "isatty", None)
    return "text" if is_terminal is not None and is_terminal() else "json"


def log_formatter(log_format: str = "json") -> logging.Formatter:
    """JSON: one object a line with timestamp, level, logger, message, pid, request_id (during a
    request) and the record's extra fields. Text: one readable line, ``-`` for no request."""
    if log_format == "text":
        return TextFormatter()
    return JsonFormatter(
        ["levelname", "name", "message", "process"],
        rename_fields={"levelname": "level", "name": "logger", "process": "pid"},
        # uvicorn adds a copy of some messages with terminal colour codes.
        reserved_attrs=[*RESERVED_ATTRS, "color_message"],
        timestamp=True,
    )


def logging_config(*, log_format: str, level: str) -> dict[str, Any]:
    """``logging.config.dictConfig`` settings for our loggers and uvicorn's: one handler on
    standard error. uvicorn applies them again in each worker process it starts."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"default": {"()": log_formatter, "log_format": log_format}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "default",
                "filters": ["request_id"],
            }
        },
        "root": {"level": level, "handlers": ["default"]},
        "loggers": {
            "uvicorn": {"level": level, "handlers": [], "propagate": True},
            # licensing.access replaces uvicorn's access line, which shows the query string.
            "uvicorn.access": {"handlers": [], "propagate": False},
            # Their INFO lines name every outbound URL; warnings and errors still show.
            "httpx": {"level": "WARNING"},
            "httpcore": {"level": "WARNING"},
        },
    }


class CommandLineHandler(logging.StreamHandler):
    """Every log line of a command run by hand, with tracebacks, on whatever standard error is
    when the line is written (a test runner replaces it per command)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def start_command_line_logging(level: str) -> None:
    """Logging for a command run by hand (not ``serve`` or ``worker``). The command says what
    happened in its own one-line messages; its log lines (a database error's statement, a
    traceback) are written only with ``log_level = "DEBUG"``, and otherwise dropped rather than
    left to Python's last-resort handler, which would print them."""
    root = logging.getLogger()
    for earlier in [h for h in root.handlers if getattr(h, "_command_line", False)]:
        root.removeHandler(earlier)
    handler: logging.Handler = CommandLineHandler() if level == "DEBUG" else logging.NullHandler()
    handler._command_line = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    if level == "DEBUG":
        root.setLevel(logging.DEBUG)
