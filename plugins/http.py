"""The one factory for outbound HTTP clients: the project's timeouts, retries and user agent.

Every plugin that talks to a server builds its client here, so an operator tunes all of them in
one place (``[http]`` in the configuration). Retries cover connection errors, HTTP 429 and 5xx,
with exponential backoff and full jitter, capped, honouring ``Retry-After``; each attempt also has
a total deadline, so a server that trickles bytes cannot hold a sync forever. A certificate that
is not trusted is never retried.
"""

from __future__ import annotations

import functools
import os
import ssl
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


@functools.cache
def _tls_context(cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    # Keyed by the variables httpx reads, so changing them still takes effect.
    return httpx.create_ssl_context()


def network_transport() -> httpx.AsyncHTTPTransport:
    """The transport that reaches the network. Every client shares one TLS context (certificate
    checks on, the CA bundle httpx would use): building one reads the whole bundle, about 20 ms,
    which each client would otherwise pay again on every sync and delivery."""
    return httpx.AsyncHTTPTransport(
        verify=_tls_context(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
    )


def certificate_failure(error: BaseException) -> ssl.SSLCertVerificationError | None:
    """The failed certificate check behind ``error`` (an httpx error), or None when the error
    was something else."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLCertVerificationError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


class NetworkRetry(Retry):
    """The project's retry policy: as httpx-retries', except that a server whose certificate is
    not trusted is not asked again. It stays untrusted; retrying would only delay the message."""

    def is_retryable_exception(self, exception: Exception) -> bool:
        return certificate_failure(exception) is None and super().is_retryable_exception(exception)


def retry_policy(
    settings: Any,
    *,
    methods: Iterable[str] = ("GET", "HEAD", "OPTIONS"),
    statuses: Iterable[int] = RETRIED_STATUSES,
) -> Retry:
    http = settings.http
    return NetworkRetry(
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
    inner = transport or network_transport()
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
