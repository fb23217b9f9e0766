"""Built-in plugin: the licensing server, Manage1to1's live source of each district's license.

A district picks it with ``license_source = "licensing_server"`` and sets its ``license_options``:
``url`` (the server's base URL) and ``api_key``. The wire contract is in docs/licensing-server.md.

Every request goes through the project's HTTP client factory (timeouts, a total deadline per
attempt, retries with capped exponential backoff and full jitter, Retry-After honoured). On top of
that, a circuit breaker per district URL stops asking a server that keeps failing: once open it
answers at once, without a request, until the recovery time has passed. The answer is handed to
the host with ``max_age`` set, so the host refuses one whose ``signed_at`` is not fresh.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from http import HTTPStatus
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

import httpx
from pydantic import Field, ValidationInfo, model_validator

from manage1to1_plugins import (
    DamagedLicenseError,
    DistrictRef,
    LicenseSource,
    PluginHost,
    SignedLicense,
    SourceError,
    SourceOptions,
    hookimpl,
)
from manage1to1_plugins.fields import certificate_failure as _certificate_failure
from manage1to1_plugins.fields import describe_error as _describe
from manage1to1_plugins.fields import is_loopback as _is_loopback

NAME = "licensing_server"
MAX_AGE = timedelta(minutes=5)
MAX_RETRIES = 3
DEFAULT_BREAKER_FAILURES = 5
DEFAULT_BREAKER_RECOVERY_SECONDS = 60.0
MAX_BODY_BYTES = 1024 * 1024


class ServerUnavailable(SourceError):
    """The server could not be reached or did not answer properly: counts against the breaker.

    Answers that show a working server (a refused API key, an unknown district) do not."""


class LicensingServerOptions(SourceOptions):
    """A district's ``license_options`` for the licensing server."""

    url: str | None = None
    api_key: str | None = Field(default=None, repr=False)
    breaker_failures: float = DEFAULT_BREAKER_FAILURES
    breaker_recovery_seconds: float = DEFAULT_BREAKER_RECOVERY_SECONDS

    @model_validator(mode="before")
    @classmethod
    def _as_the_source_reads_them(cls, options: Any, info: ValidationInfo) -> Any:
        # The same checks, with the same words, as a fetch makes.
        slug = (info.context or {}).get("district_slug")
        if isinstance(options, Mapping):
            try:
                if slug:
                    _connection(
                        DistrictRef(slug=slug, official_name=slug, time_zone="UTC"), options
                    )
                else:
                    _checked(options, where="license_options", key_variable=None)
            except SourceError as error:
                raise ValueError(str(error)) from None
        return options


@dataclass
class CircuitBreaker:
    """Failures in a row of one district's license URL. After ``failures_to_open`` of them the
    circuit is open: no request for ``recovery``; then one trial request closes it again or, failing,
    reopens it.

    It reads the host's clock, the one the scheduler runs on (and tests move by hand); the
    circuit-breaker libraries read the system clock themselves, which is why these few lines live here.
    """

    failures_to_open: int
    recovery: timedelta
    clock: Callable[[], datetime]
    failure_count: int = 0
    opened_at: datetime | None = None

    def seconds_until_trial(self) -> int | None:
        """Whole seconds until a request may be tried again; None when one may be sent now."""
        if self.opened_at is None:
            return None
        remaining = (self.opened_at + self.recovery - self.clock()).total_seconds()
        return max(1, math.ceil(remaining)) if remaining > 0 else None

    def failed(self) -> None:
        self.failure_count += 1
        if self.failure_count >= self.failures_to_open:
            self.opened_at = self.clock()

    def succeeded(self) -> None:
        self.failure_count = 0
        self.opened_at = None


class LicensingServerSource:
    name = NAME
    description = "Manage1to1's licensing server: the district's signed license, fetched live."
    options_model: ClassVar[type[SourceOptions]] = LicensingServerOptions

    def __init__(self, host: PluginHost) -> None:
        self.host = host
        self._breakers: dict[tuple[str, int, float], CircuitBreaker] = {}

    async def fetch_license(
        self, *, district: DistrictRef, options: LicensingServerOptions | Mapping[str, Any]
    ) -> SignedLicense:
        options = LicensingServerOptions.parse(options).model_dump()
        base_url, api_key = _connection(district, options)
        url = f"{base_url}/v1/districts/{quote(district.slug, safe='')}/license"
        breaker = self.breaker(url, options)
        wait = breaker.seconds_until_trial()
        if wait is not None:
            raise SourceError(
                f"The licensing server failed {breaker.failure_count} times in a row: circuit "
                f"open, retry after {wait} s. No request was sent; the last good license is kept.",
                detail=f"circuit open for {base_url}",
            )
        # ServerUnavailable counts as a failure; any other outcome, even a refused API key,
        # shows a working server and closes the circuit again.
        try:
            response = await self._get(url, base_url=base_url, api_key=api_key)
            signed = _license_from(response, base_url=base_url)
        except ServerUnavailable:
            breaker.failed()
            raise
        except Exception:
            breaker.succeeded()
            raise
        breaker.succeeded()
        return replace(signed, max_age=MAX_AGE)

    def breaker(self, url: str, options: Mapping[str, Any]) -> CircuitBreaker:
        """The circuit breaker for one district's license URL (and its configured thresholds)."""
        failures = _positive(options, "breaker_failures", DEFAULT_BREAKER_FAILURES, int)
        recovery = _positive(
            options, "breaker_recovery_seconds", DEFAULT_BREAKER_RECOVERY_SECONDS, float
        )
        key = (url, failures, recovery)
        if key not in self._breakers:
            self._breakers[key] = CircuitBreaker(
                failures_to_open=failures,
                recovery=timedelta(seconds=recovery),
                clock=self.host.clock,
            )
        return self._breakers[key]

    async def _get(self, url: str, *, base_url: str, api_key: str) -> httpx.Response:
        policy = self.host.retry_policy()
        retry = policy.copy_with(total=min(policy.total, MAX_RETRIES))
        headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}
        try:
            async with self.host.create_client(headers=headers, retry=retry) as client:
                return await client.get(url)
        except httpx.TimeoutException as error:
            raise ServerUnavailable(
                f"The licensing server did not answer in time after {retry.total + 1} "
                "attempt(s); the last good license is kept. Try again later.",
                detail=f"{base_url}: {type(error).__name__}: {str(error) or 'timeout'}",
            ) from None
        except httpx.HTTPError as error:
            if _certificate_failure(error) is not None:  # not retried: it stays untrusted
                raise ServerUnavailable(
                    f"The licensing server was not asked for the license: {_describe(error)}. "
                    "The last good license is kept.",
                    detail=f"{base_url}: {type(error).__name__}: {error}",
                ) from None
            raise ServerUnavailable(
                f"Cannot reach the licensing server after {retry.total + 1} attempt(s); the "
                "last good license is kept. Try again later.",
                detail=f"{base_url}: {type(error).__name__}: {str(error) or 'no detail'}",
            ) from None


def _connection(district: DistrictRef, options: Mapping[str, Any]) -> tuple[str, str]:
    """The server's base URL and the API key, checked, from the district's license options."""
    return _checked(
        options,
        where=f"[districts.{district.slug}] license_options",
        key_variable=f"LICENSING_DISTRICTS__{district.slug.upper()}__LICENSE_OPTIONS__API_KEY",
    )


def _checked(
    options: Mapping[str, Any], *, where: str, key_variable: str | None
) -> tuple[str, str]:
    """``_connection``'s checks (and the breaker's numbers'); ``key_variable`` names the
    environment variable that may carry the API key, when the district is known."""
    url, api_key = options.get("url"), options.get("api_key")
    if not isinstance(url, str) or not url.strip():
        raise SourceError(f'{where} has no "url": set it to the licensing server\'s address.')
    if not isinstance(api_key, str) or not api_key.strip():
        raise SourceError(
            f'{where} has no "api_key": set it'
            + (f", or the variable {key_variable}." if key_variable else ".")
        )
    _positive(options, "breaker_failures", DEFAULT_BREAKER_FAILURES, int)
    _positive(options, "breaker_recovery_seconds", DEFAULT_BREAKER_RECOVERY_SECONDS, float)
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SourceError(f"{where}: url {url!r} is not an http(s) address.")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise SourceError(
            f"{where}: url {url!r} is plain http; the API key would cross the network "
            "unencrypted. Use https (plain http is accepted only on this machine's loopback)."
        )
    if parts.query or parts.fragment:
        raise SourceError(f"{where}: url {url!r} must not carry a query or fragment.")
    return url, api_key.strip()


def _positive(options: Mapping[str, Any], name: str, default: float, kind: type) -> Any:
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise SourceError(f"license_options.{name} must be a positive number, not {value!r}.")
    return kind(value)


def _license_from(response: httpx.Response, *, base_url: str) -> SignedLicense:
    status = response.status_code
    if status == HTTPStatus.OK:
        if len(response.content) > MAX_BODY_BYTES:
            raise DamagedLicenseError(
                "The licensing server's answer is far larger than a license document, so it "
                "was refused; the last good license is kept.",
                detail=f"{base_url}: {len(response.content)} bytes",
            )
        try:
            return SignedLicense.from_envelope(response.content)
        except SourceError as error:  # not an envelope at all: damaged on the way
            raise DamagedLicenseError(
                "The licensing server answered without a license document, so it was "
                "refused; the last good license is kept.",
                detail=f"{base_url}: HTTP 200: {error}: {error.detail}",
            ) from None
    # The server's own words (the contract's error body) go to the log, not to the district.
    reason = _reason(status)
    said = _error_detail(response)
    detail = f"{base_url}: HTTP {status}" + (f": {said}" if said else "")
    if status == HTTPStatus.UNAUTHORIZED:
        raise SourceError(
            "The licensing server refused the API key (HTTP 401). Check "
            "license_options.api_key for this district; the last good license is kept.",
            detail=detail,
        )
    if status == HTTPStatus.FORBIDDEN:
        raise SourceError(
            "The licensing server does not allow this API key to read this district's license "
            "(HTTP 403); the last good license is kept.",
            detail=detail,
        )
    if status == HTTPStatus.NOT_FOUND:
        raise SourceError(
            "The licensing server has no license for this district (HTTP 404). Check the "
            "district's slug and license_options.url; the last good license is kept.",
            detail=detail,
        )
    attempts = _attempts(response)
    if status == HTTPStatus.TOO_MANY_REQUESTS:
        wait = response.headers.get("Retry-After")
        later = f"; it asks to wait {wait} s" if wait and wait.strip().isdigit() else ""
        raise ServerUnavailable(
            f"The licensing server is rate limiting (HTTP 429) after {attempts} attempt(s)"
            f"{later}. The last good license is kept.",
            detail=detail,
        )
    if status >= 500:
        raise ServerUnavailable(
            f"The licensing server answered HTTP {status} ({reason}) after {attempts} "
            "attempt(s); the last good license is kept. Try again later.",
            detail=detail,
        )
    raise SourceError(
        f"The licensing server answered HTTP {status} ({reason}), which the license contract "
        "does not use; the last good license is kept.",
        detail=detail,
    )


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "unknown status"


def _attempts(response: httpx.Response) -> int:
    retry = response.extensions.get("retry")
    return getattr(retry, "attempts_made", 0) + 1


def _error_detail(response: httpx.Response) -> str:
    """``code: message`` from the contract's error body, or nothing (never a raw page)."""
    try:
        error = json.loads(response.content)["error"]
        code, message = str(error.get("code", "")), str(error.get("message", ""))
    except (ValueError, KeyError, TypeError, AttributeError):
        return ""
    text = ": ".join(part for part in (code, message.strip().rstrip(".")) if part)
    return text[:300]


@hookimpl(trylast=True)
def register_license_sources(host: PluginHost) -> list[LicenseSource]:
    return [LicensingServerSource(host)]
