"""What the host hands every hook: its settings, its clock, its HTTP client factory and the
record checks of its storage, so a plugin never reaches for a global or for the host's modules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import httpx
from httpx_retries import Retry

from plugins.http import (
    RETRIED_STATUSES,
    client_options,
    create_client,
    network_transport,
    retry_policy,
)
from plugins.records import FieldProblem, StudentRecord


class HttpPolicy(Protocol):
    """The ``[http]`` settings every outbound client is built with."""

    @property
    def connect_timeout_seconds(self) -> float: ...
    @property
    def read_timeout_seconds(self) -> float: ...
    @property
    def attempt_deadline_seconds(self) -> float: ...
    @property
    def retries(self) -> int: ...
    @property
    def backoff_seconds(self) -> float: ...
    @property
    def max_backoff_seconds(self) -> float: ...


class HostSettings(Protocol):
    """The part of the service's settings a plugin may read."""

    @property
    def http(self) -> HttpPolicy: ...
    @property
    def data_dir(self) -> Path: ...
    def license_file_for(self, slug: str) -> Path:
        """Where the district's signed license file is kept unless its options name another."""
        ...


class RecordChecks(Protocol):
    """What the host's roster can hold, for sources that read a file and want to report a bad
    value at its line and column (the host checks every record again whatever a source does)."""

    def role_problem(self, word: str) -> str | None:
        """Why ``word`` is not a role the host knows (student, teacher, guardian ...), or None."""
        ...

    def status_problem(self, word: str) -> str | None:
        """Why ``word`` is not a status the host knows (active, graduated ...), or None."""
        ...

    def unfit_fields(self, record: StudentRecord) -> list[FieldProblem]:
        """The values of ``record`` the roster cannot store (too long, a NUL character ...)."""
        ...

    def unfit_values(self, row: Mapping[str, Any]) -> list[FieldProblem]:
        """The same for single stored fields, by their names (``{"school": "..."}``)."""
        ...


@dataclass(frozen=True)
class PluginHost:
    """The host object every hook receives as ``host``."""

    settings: HostSettings
    clock: Callable[[], datetime]
    records: RecordChecks

    def create_client(
        self,
        *,
        base_url: str = "",
        headers: Mapping[str, str] | None = None,
        auth: httpx.Auth | None = None,
        retry: Retry | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> httpx.AsyncClient:
        """An async HTTP client with the service's timeouts, retries and user agent."""
        return create_client(
            self.settings,
            base_url=base_url,
            headers=headers,
            auth=auth,
            retry=retry,
            transport=transport,
        )

    def client_options(
        self,
        *,
        base_url: str = "",
        headers: Mapping[str, str] | None = None,
        retry: Retry | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> dict[str, Any]:
        """The keyword arguments ``create_client`` builds its client with (timeouts, retries,
        deadline, user agent), for a plugin that needs a subclass of ``httpx.AsyncClient``
        (such as authlib's ``AsyncOAuth2Client``) under the same policy."""
        return client_options(
            self.settings, base_url=base_url, headers=headers, retry=retry, transport=transport
        )

    def network_transport(self) -> httpx.AsyncHTTPTransport:
        """The transport ``create_client`` reaches the network with (one shared TLS context),
        for a plugin that wraps it in a transport of its own (to sign each request, say) and
        passes that as ``transport=``."""
        return network_transport()

    def retry_policy(
        self,
        *,
        methods: Iterable[str] = ("GET", "HEAD", "OPTIONS"),
        statuses: Iterable[int] = RETRIED_STATUSES,
    ) -> Retry:
        """The service's retry policy, for ``create_client(retry=...)`` when a source needs to
        retry other methods or statuses."""
        return retry_policy(self.settings, methods=methods, statuses=statuses)
