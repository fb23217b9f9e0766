"""Automatic persisted queries, Apollo's protocol: a client sends a document's SHA-256 instead of
its text, ``"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "<64 hex digits>"}}``,
over GET (the ``extensions`` query parameter) or POST.

- A hash the server does not know is answered ``PERSISTED_QUERY_NOT_FOUND`` (message
  ``PersistedQueryNotFound``, which Apollo's clients look for); the client sends the hash again
  with the text, which registers the document for the client's district, then runs it.
- A text whose SHA-256 is not the hash is refused (``PERSISTED_QUERY_HASH_MISMATCH``) and nothing
  is registered. Only documents that parse and pass validation and the document limits are
  registered, at most ``persisted_queries.max_document_bytes`` long and
  ``persisted_queries.max_per_district`` per district, so a hostile client cannot fill the table.
- Registered documents live in the database, shared by every worker and host; each worker keeps
  the most recently used ones parsed and validated (``CACHE_SIZE``), and ``PersistedDocuments``
  hands them to strawberry so they are neither parsed nor validated again.
- With ``persisted_queries.registered_only`` only documents already registered run: the
  operator's (``licensing queries register``) and the Licensing tab's own (``builtin``), which
  every district may run without registering them.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from threading import Lock

from anyio import to_thread
from graphql import GraphQLError, specified_rules
from starlette.responses import JSONResponse
from strawberry.extensions import SchemaExtension
from strawberry.schema import BaseSchema

from graph.context import GraphContext
from graph.limits import PersistedDocument, document_errors, prepared_document
from graph.responses import error_response
from graph.strawberry_compat import graphql_core_schema
from licensing.domain.error_codes import ErrorCode
from licensing.orchestration.service import LicensingService
from licensing.settings import GraphQLLimits, PersistedQuerySettings
from licensing.storage.persisted_queries import RegistrationRefused
from licensing.storage.tokens import Principal

PERSISTED_QUERY_VERSION = 1
# Parsed and validated documents each worker keeps, by district and hash.
CACHE_SIZE = 256
NOT_FOUND_MESSAGE = "PersistedQueryNotFound"
_HASH = re.compile(r"^[0-9a-f]{64}$")
# ``export const NAME = `...`;`` in web/operations.js: the tab's documents, as plain text.
_MODULE_DOCUMENT = re.compile(r"^export const (\w+) = `((?:[^`\\$]|\$(?!\{))*)`;", re.MULTILINE)


def document_hash(document: str) -> str:
    """The SHA-256 of the document's UTF-8 text, in lowercase hex (what clients send)."""
    return hashlib.sha256(document.encode("utf-8")).hexdigest()


def documents_in_module(text: str) -> dict[str, str]:
    """The GraphQL documents a JavaScript module exports as plain template literals (no
    ``${}``, no escapes), by name: the Licensing tab's operations (web/operations.js)."""
    return {name: body for name, body in _MODULE_DOCUMENT.findall(text)}


class PersistedQueryRefusal(Exception):
    """The request's persisted query cannot be run; ``response`` says why."""

    def __init__(self, response: JSONResponse) -> None:
        super().__init__()
        self.response = response


def persisted_query_hash(extensions: object) -> str | None:
    """The hash a request's ``extensions`` names, or None when it names none; a malformed
    ``persistedQuery`` is refused."""
    if not isinstance(extensions, Mapping) or "persistedQuery" not in extensions:
        return None
    persisted = extensions["persistedQuery"]
    if (
        not isinstance(persisted, Mapping)
        or persisted.get("version") != PERSISTED_QUERY_VERSION
        or not isinstance(persisted.get("sha256Hash"), str)
        or not _HASH.match(persisted["sha256Hash"])
    ):
        raise PersistedQueryRefusal(
            error_response(
                400,
                ErrorCode.BAD_REQUEST,
                'extensions.persistedQuery must be {"version": 1, "sha256Hash": "<the '
                "SHA-256 of the document's UTF-8 text, 64 lowercase hex digits>\"}.",
            )
        )
    return str(persisted["sha256Hash"])


class PersistedQueries:
    """Finds, registers and keeps parsed the documents clients send by hash."""

    def __init__(
        self,
        *,
        schema: BaseSchema,
        service: LicensingService,
        limits: GraphQLLimits,
        settings: PersistedQuerySettings,
        builtin: Mapping[str, str] = {},
    ) -> None:
        self.schema = schema
        self.service = service
        self.limits = limits
        self.settings = settings
        self._cache: OrderedDict[tuple[int | None, str], PersistedDocument] = OrderedDict()
        self._lock = Lock()
        self._builtin = {document_hash(text): text for text in builtin.values()}

    @property
    def registered_only(self) -> bool:
        return self.settings.registered_only

    async def document(
        self, principal: Principal, sha256: str, text: str | None
    ) -> PersistedDocument:
        """The document to run for a request naming ``sha256`` (and sending ``text``, if any).
        PersistedQueryRefusal when it cannot run."""
        if text is not None and document_hash(text) != sha256:
            raise PersistedQueryRefusal(
                error_response(
                    400,
                    ErrorCode.PERSISTED_QUERY_HASH_MISMATCH,
                    "The document's SHA-256 is not the sha256Hash sent with it: nothing was "
                    "registered or run. Hash the exact UTF-8 text sent in query.",
                )
            )
        found = await self._find(principal.district_id, sha256)
        if found is not None:
            return found
        if text is None:
            raise PersistedQueryRefusal(
                error_response(
                    200,
                    ErrorCode.PERSISTED_QUERY_NOT_FOUND,
                    NOT_FOUND_MESSAGE,
                    extensions={
                        "hint": "Send the request again with the document's text in query: "
                        "the server registers it, then later requests may send the hash alone."
                    },
                )
            )
        if self.registered_only:
            raise PersistedQueryRefusal(
                error_response(
                    403,
                    ErrorCode.PERSISTED_QUERY_NOT_REGISTERED,
                    "This server runs only documents its operator has registered, and this one "
                    "is not: ask the operator to register it (licensing queries register).",
                )
            )
        size = len(text.encode("utf-8"))
        if size > self.settings.max_document_bytes:
            raise PersistedQueryRefusal(
                error_response(
                    413,
                    ErrorCode.PERSISTED_QUERY_TOO_LARGE,
                    f"The document is {size} bytes; at most {self.settings.max_document_bytes} "
                    "may be registered. Send it without persistedQuery, or make it smaller.",
                )
            )
        document = await to_thread.run_sync(self.prepare, sha256, text)
        if document.valid:
            try:
                await self.service.register_document(
                    principal.district_id, sha256, text, registered_by=principal.actor
                )
            except RegistrationRefused as refused:
                raise PersistedQueryRefusal(
                    error_response(
                        403,
                        ErrorCode.PERSISTED_QUERY_LIMIT_REACHED,
                        f"{refused} Nothing more is registered: send documents without "
                        "persistedQuery, or ask the operator to register them.",
                    )
                ) from None
            self._remember((principal.district_id, sha256), document)
        # An invalid document is not registered: it runs as sent, and is answered with its errors.
        return document

    def prepare(self, sha256: str, text: str) -> PersistedDocument:
        """Parse, check and validate ``text`` (what strawberry would do when running it)."""
        try:
            prepared = prepared_document(text, self.limits.max_tokens)
        except GraphQLError:
            return PersistedDocument(sha256, text, None, valid=False)
        errors = document_errors(
            graphql_core_schema(self.schema),
            prepared,
            tuple(specified_rules),
            max_depth=self.limits.max_depth,
            max_aliases=self.limits.max_aliases,
            max_field_merges=self.limits.max_field_merges,
        )
        return PersistedDocument(sha256, text, prepared, valid=not errors)

    async def _find(self, district_id: int, sha256: str) -> PersistedDocument | None:
        keys: tuple[tuple[int | None, str], ...] = ((None, sha256), (district_id, sha256))
        for cache_key in keys:
            with self._lock:
                cached = self._cache.get(cache_key)
                if cached is not None:
                    self._cache.move_to_end(cache_key)
                    return cached
        builtin = self._builtin.get(sha256)
        if builtin is not None:
            key: tuple[int | None, str] = (None, sha256)
            text = builtin
        else:
            stored = await self.service.find_document(district_id, sha256)
            if stored is None:
                return None
            # The operator's documents and the district's own are cached apart: another
            # district never finds a district's document in the cache.
            key, text = (stored.district_id, sha256), stored.document
        document = await to_thread.run_sync(self.prepare, sha256, text)
        self._remember(key, document)
        return document

    def _remember(self, key: tuple[int | None, str], document: PersistedDocument) -> None:
        with self._lock:
            self._cache[key] = document
            self._cache.move_to_end(key)
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)


class PersistedDocuments(SchemaExtension):
    """Hands strawberry a persisted document already parsed and validated, so neither runs
    again. Before DocumentLimits, which then leaves the document alone."""

    def _document(self) -> PersistedDocument | None:
        context = self.execution_context.context
        persisted = context.persisted if isinstance(context, GraphContext) else None
        return persisted if persisted is not None and persisted.valid else None

    async def on_parse(self) -> AsyncIterator[None]:
        persisted = self._document()
        if persisted is not None and persisted.prepared is not None:
            # What runs (the merged document; cost is counted on the written one, graph/cost.py).
            self.execution_context.graphql_document = persisted.prepared.merged
        yield

    async def on_validate(self) -> AsyncIterator[None]:
        context = self.execution_context
        if self._document() is not None and context.pre_execution_errors is None:
            context.pre_execution_errors = []  # validated when it was first prepared
        yield
