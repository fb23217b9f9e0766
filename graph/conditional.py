"""Conditional GET for queries: an ``ETag`` on each answer, ``304 Not Modified`` when it has not
changed, decided without running the operation (docs/caching.md).

The tag is a hash of everything the answer depends on: the server's schema and configuration
(``server_fingerprint``), the caller's district, token and permissions, the district's version
(licensing/storage/district_version.py: it changes with every change a query can show, and at
the district's midnight), the document, the operation name and the variables. So the server can
tell that a client's copy is current from one read of the district's row.

The tag is weak (``W/"..."``): two answers with the same tag carry the same data, but not the
same bytes, since ``extensions.cost`` reports the caller's budget as it is at each request.

Only GET (and HEAD) answers carry a tag: a POST is always run, and its ``If-None-Match`` is
ignored (RFC 9110 lets a resource without validators for a method ignore the condition).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
)
from strawberry.extensions import SchemaExtension

from graph.context import GraphContext
from licensing.domain.error_codes import ErrorCode
from licensing.storage.district_version import DistrictVersion
from licensing.storage.tokens import Principal

CACHE_CONTROL = "private, no-cache"
VARY = "Authorization, Cookie"
# The one list of what follows the district's version. An answer whose root fields are all
# here changes only when the version does (or, for one that read the district's state, when its
# ``unchanged_until`` passes): it may carry an ETag, and be kept as a snapshot (graph/answers.py).
# Every root field of Query is in exactly one of the two lists (tests/api/test_answer_snapshots.py
# checks it): a new field must be placed in one, knowing what its answer depends on.
VERSIONED_ROOT_FIELDS = frozenset(
    {
        "__typename",
        "license",
        "licenseUnavailable",
        "viewer",
        "usage",
        "alerts",
        "licenseSettings",
        "licenseCheck",
        "activeStudents",
        "deactivatedStudents",
        "countReview",
        "dataSources",
        "usageHistory",
        "forecast",
        "auditLog",
    }
)
# Root fields whose answers may change while the version does not: never tagged or kept.
# scheduledJobs moves with every run of every periodic job; node(s) may name a scheduled job;
# introspection follows the server, not the district (and is large).
UNVERSIONED_ROOT_FIELDS = frozenset({"scheduledJobs", "node", "nodes", "__schema", "__type"})
# Errors that are the same for as long as the version and permissions are: an answer with them
# still carries a tag. Any other error (a masked failure, the budget) makes it untagged.
STABLE_ERROR_CODES = frozenset({ErrorCode.FORBIDDEN.value, ErrorCode.LICENSE_NOT_AVAILABLE.value})


def server_fingerprint(schema_sdl: str, configuration: str) -> str:
    """What every tag of this server depends on besides the request: a new release (schema) or
    configuration gives every answer a new tag."""
    return hashlib.sha256(f"{schema_sdl}\0{configuration}".encode()).hexdigest()


def entity_tag(
    *,
    fingerprint: str,
    principal: Principal,
    version: DistrictVersion,
    document_sha256: str,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
) -> str:
    """The weak entity tag of a query's answer, quoted: ``W/"<22 characters>"``."""
    parts = [
        fingerprint,
        str(principal.district_id),
        str(principal.token_id),
        ",".join(sorted(permission.value for permission in principal.permissions)),
        version.tag,
        document_sha256,
        operation_name or "",
        json.dumps(variables or {}, sort_keys=True, separators=(",", ":"), ensure_ascii=False),
    ]
    digest = hashlib.sha256("\0".join(parts).encode("utf-8")).digest()[:16]
    return 'W/"' + base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=") + '"'


def none_match(header: str | None, tag: str) -> bool:
    """Whether ``If-None-Match: header`` names ``tag`` (weak comparison, RFC 9110 13.1.2): the
    client's copy is current. ``*`` matches any current answer."""
    if not header:
        return False
    wanted = _opaque(tag)
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate == "*" or _opaque(candidate) == wanted:
            return True
    return False


def _opaque(tag: str) -> str:
    return tag[2:] if tag.startswith("W/") else tag


class VersionedAnswers(SchemaExtension):
    """Decides whether a query's answer may carry the tag the request was given
    (``GraphContext.etag``): only an operation that ran to the end, a query whose root fields all
    follow the district's version, whose errors (if any) are ones the same version always gives.
    An operation refused or failing on the way never sets ``etag_allowed``. The same answer,
    without any error at all, may be kept as a snapshot (``GraphContext.keepable_data``)."""

    async def on_execute(self) -> AsyncIterator[None]:
        yield
        execution = self.execution_context
        context = execution.context
        document = execution.graphql_document
        if not isinstance(context, GraphContext) or document is None:
            return
        operation = _operation(document, execution.operation_name)
        versioned = (
            operation is not None
            and operation.operation is OperationType.QUERY
            and _root_fields(document, operation) <= VERSIONED_ROOT_FIELDS
        )
        if not versioned:
            return
        errors = getattr(execution.result, "errors", None) or []
        if context.etag is not None:
            context.etag_allowed = all(
                (error.extensions or {}).get("code") in STABLE_ERROR_CODES for error in errors
            )
        data = getattr(execution.result, "data", None)
        if not errors and isinstance(data, dict):
            context.keepable_data = data


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    for operation in operations:
        if name is None or (operation.name is not None and operation.name.value == name):
            return operation
    return None


def _root_fields(document: DocumentNode | None, operation: OperationDefinitionNode) -> set[str]:
    fragments = {
        d.name.value: d
        for d in (document.definitions if document is not None else ())
        if isinstance(d, FragmentDefinitionNode)
    }
    names: set[str] = set()
    seen: set[str] = set()

    def collect(selection_set: SelectionSetNode) -> None:
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                names.add(selection.name.value)
            elif isinstance(selection, InlineFragmentNode):
                collect(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if name not in seen and name in fragments:
                    seen.add(name)
                    collect(fragments[name].selection_set)

    collect(operation.selection_set)
    return names


def conditional_headers(tag: str | None) -> Iterable[tuple[bytes, bytes]]:
    """The headers of a GET answer: the tag (when it has one) and who may keep it how long."""
    headers = [(b"cache-control", CACHE_CONTROL.encode()), (b"vary", VARY.encode())]
    if tag is not None:
        headers.append((b"etag", tag.encode("ascii")))
    return headers
