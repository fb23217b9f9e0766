"""The one factory for outbound HTTP clients: the project's timeouts, retries and user agent.

Every plugin that talks to a server builds its client here, so an operator tunes all of them in
one place (``[http]`` in the configuration). Retries cover connection errors, HTTP 429 and 5xx,
with exponential backoff and full jitter, capped, honouring ``Retry-After``; each attempt also has
a total deadline, so a server that trickles bytes cannot hold a sync forever.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import anyio
import httpx
from httpx_retries import Retry, RetryTransport

USER_AGENT = "Manage1to1-Licensing/0.1"
RETRIED_STATUSES = (429, 500, 502, 503, 504)


class AttemptDeadlineTransport(httpx.AsyncBaseTransport):
    """Ends an attempt that takes longer than ``deadline`` seconds in all."""

    def __init__(self, inner: httpx.AsyncBaseTransport, deadline: float) -> None:
        self.inner = inner
        self.deadline = deadline

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            with anyio.fail_after(self.deadline):
                response = await self.inner.handle_async_request(request)
                await response.aread()
                return response
        except TimeoutError:
            raise httpx.ReadTimeout(
                f"no complete answer within {self.deadline:g} s", request=request
            ) from None

    async def aclose(self) -> None:
        await self.inner.aclose()


def retry_policy(
    settings: Any,
    *,
    methods: Iterable[str] = ("GET", "HEAD", "OPTIONS"),
    statuses: Iterable[int] = RETRIED_STATUSES,
) -> Retry:
    http = settings.http
    return Retry(
        total=http.retries,
        allowed_methods=list(methods),
        status_forcelist=list(statuses),
        retry_on_exceptions=[httpx.TransportError],
        backoff_factor=http.backoff_seconds,
        backoff_jitter=1.0,  # full jitter
        max_backoff_wait=http.max_backoff_seconds,
        respect_retry_after_header=True,
    )


def client_options(
    settings: Any,
    *,
    base_url: str = "",
    headers: Mapping[str, str] | None = None,
    retry: Retry | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> dict[str, Any]:
    """The keyword arguments of an ``httpx.AsyncClient`` with the project's timeouts, retries and
    user agent, for building a client of a subclass (authlib's OAuth 2 client, say) that must
    keep the same policy. ``create_client`` is this with a plain ``httpx.AsyncClient``."""
    http = settings.http
    inner = transport or httpx.AsyncHTTPTransport()
    return {
        "base_url": base_url,
        "headers": {"User-Agent": USER_AGENT, **(headers or {})},
        "timeout": httpx.Timeout(
            connect=http.connect_timeout_seconds,
            read=http.read_timeout_seconds,
            write=http.read_timeout_seconds,
            pool=http.connect_timeout_seconds,
        ),
        "transport": RetryTransport(
            transport=AttemptDeadlineTransport(inner, http.attempt_deadline_seconds),
            retry=retry or retry_policy(settings),
        ),
        "follow_redirects": False,
    }


def create_client(
    settings: Any,
    *,
    base_url: str = "",
    headers: Mapping[str, str] | None = None,
    auth: httpx.Auth | None = None,
    retry: Retry | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """An async client with the project's timeouts, retries and user agent.

    ``transport`` replaces the network (tests pass one); ``retry`` replaces the default policy
    (for example to retry a POST that is safe to repeat).
    """
    return httpx.AsyncClient(
        auth=auth,
        **client_options(
            settings, base_url=base_url, headers=headers, retry=retry, transport=transport
        ),
    )
