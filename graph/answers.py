"""Answer snapshots: a query answered before is answered again from memory, without running.

The Licensing tab and integrations ask the same few queries over and over, and the answer
changes only when the district's version does (licensing/storage/district_version.py). So each
worker keeps the JSON of recent answers' ``data``, keyed by everything an answer depends on:

- the document's SHA-256 and the operation name, and the variables (as canonical JSON);
- the caller: district, token (its id and name: ``viewer`` answers per token; a tab session
  answers as the token that signed it in, exactly as that token would) and permissions;
- the district's version: its change counter and its date in its own time zone, read in the
  request's one sign-in statement (licensing/storage/sign_in_cache.py) BEFORE anything else,
  so a change committed while an answer is computed is under a newer version than the answer.

Only an answer to a query all of whose root fields are in ``VERSIONED_ROOT_FIELDS``
(graph/conditional.py, the one list of what follows the version), that ran to the end without
any error, is kept. An answer that read the district's state also expires at the state's
``unchanged_until`` (an alert that becomes due with time alone, other than at midnight). A kept
answer is still charged: the request draws the cost the operation was measured at from the
token's budget, and ``extensions.cost`` and the RateLimit headers are the request's own.

Bounded: at most ``graphql.answer_snapshots`` answers (least recently used out first), each at
most ``MAX_SNAPSHOT_BYTES``. Per worker, and only ever touched from its event loop.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from licensing.storage.district_version import DistrictVersion
from licensing.storage.tokens import Principal

# The dashboard's answer is about 1 KiB; larger answers (pages of students) are not kept.
MAX_SNAPSHOT_BYTES = 16 * 1024

AnswerKey = tuple[object, ...]


@dataclass(frozen=True)
class Snapshot:
    """A kept answer: its ``data`` as JSON, what the operation costs, and until when it holds."""

    data_json: bytes
    cost: int
    expires_at: datetime | None = None


def answer_key(
    *,
    principal: Principal,
    version: DistrictVersion,
    document_sha256: str,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
) -> AnswerKey:
    """What an answer depends on; two requests with one key get the same ``data``."""
    return (
        principal.district_id,
        principal.token_id,
        principal.token_name,
        tuple(sorted(permission.value for permission in principal.permissions)),
        version.counter,
        version.local_date,
        document_sha256,
        operation_name,
        json.dumps(variables or {}, sort_keys=True, separators=(",", ":"), ensure_ascii=False),
    )


class AnswerSnapshots:
    """This worker's kept answers, least recently used first out."""

    def __init__(self, size: int, *, max_bytes: int = MAX_SNAPSHOT_BYTES) -> None:
        self.size = size
        self.max_bytes = max_bytes
        self._kept: OrderedDict[AnswerKey, Snapshot] = OrderedDict()

    def __len__(self) -> int:
        return len(self._kept)

    def find(self, key: AnswerKey, *, now: datetime) -> Snapshot | None:
        """The answer kept under ``key``, unless it has expired by ``now``."""
        snapshot = self._kept.get(key)
        if snapshot is None:
            return None
        if snapshot.expires_at is not None and now >= snapshot.expires_at:
            del self._kept[key]
            return None
        self._kept.move_to_end(key)
        return snapshot

    def keep(self, key: AnswerKey, data: object, *, cost: int, expires_at: datetime | None) -> None:
        """Keep an answer's ``data`` (a plain JSON value), unless it is too large to."""
        if self.size <= 0:
            return
        data_json = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        if len(data_json) > self.max_bytes:
            return
        self._kept[key] = Snapshot(data_json=data_json, cost=cost, expires_at=expires_at)
        self._kept.move_to_end(key)
        while len(self._kept) > self.size:
            self._kept.popitem(last=False)


def snapshot_body(snapshot: Snapshot, extensions: Mapping[str, Any]) -> bytes:
    """The response body of a kept answer: its data, with this request's own extensions."""
    encoded = json.dumps(extensions, separators=(",", ":")).encode("utf-8")
    return b'{"data":' + snapshot.data_json + b',"extensions":' + encoded + b"}"
