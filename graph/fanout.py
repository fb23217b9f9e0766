"""One change, many subscriptions: the work of an update done once for all who receive it.

After a change, every subscription of the district on a worker gets the same state object (read
once, licensing/orchestration/change_hub.py). What each would then do for itself is done once
per distinct piece instead:

- the GraphQL value made from the state (``License``, the alerts): ``shared_value``;
- the execution of the subscription's selection on that value, per document, variables and
  permissions (``SharedEventExecutor``, the executor strawberry hands graphql-core);
- the JSON of the answer's ``data``; and the message is sent from the subscription's
  resolver (``DirectUpdates``), not through strawberry's steps for each yielded value.

Each is kept in a small memo keyed by the identity of the object it was made from, holding that
object (so its id cannot be reused while kept). A subscription still sends its own message, with
its own id, through its own socket. Only answers without errors are shared.
"""

from __future__ import annotations

import contextlib
import json
from collections import OrderedDict
from collections.abc import Callable, Hashable
from contextvars import ContextVar
from functools import partial
from inspect import isawaitable
from typing import Any, TypeVar

import anyio
from graphql import ExecutionResult, OperationType

from graph.strawberry_compat import OperationChannel, StrawberryExecutor

_Value = TypeVar("_Value")

# Distinct objects kept: a few per district that changed in the last moments is plenty.
MEMO_SIZE = 512


class IdentityMemo:
    """Values derived from objects, by the objects' identity (and a name), least recently used
    out first. Used from the event loop; each step is one dictionary operation, so a memo
    touched by two loops (tests serve one service twice) stays consistent, at worst missing."""

    def __init__(self, size: int = MEMO_SIZE) -> None:
        self.size = size
        self._kept: OrderedDict[tuple[int, Hashable], tuple[object, Any]] = OrderedDict()

    def get(self, source: object, name: Hashable, build: Callable[[], _Value]) -> _Value:
        """The value kept for ``source`` under ``name``, else ``build()``, kept."""
        found = self.find(source, name)
        if found is not None:
            return found
        value = build()
        self.keep(source, name, value)
        return value

    def find(self, source: object, name: Hashable) -> Any:
        """The value kept for ``source`` under ``name``, or None."""
        kept = self._kept.get((id(source), name))
        if kept is None or kept[0] is not source:
            return None
        return kept[1]

    def keep(self, source: object, name: Hashable, value: object) -> None:
        key = (id(source), name)
        self._kept[key] = (source, value)
        with contextlib.suppress(KeyError):
            self._kept.move_to_end(key)
        while len(self._kept) > self.size:
            with contextlib.suppress(KeyError):
                self._kept.popitem(last=False)


_values = IdentityMemo()
_results = IdentityMemo()
_encoded = IdentityMemo()


def shared_value(source: object, name: str, build: Callable[[], _Value]) -> _Value:
    """``build()``, made once for each ``source`` object (a district's state after a change)."""
    return _values.get(source, name, build)


# The executor of the subscription operation whose task is running (each websocket operation runs
# in its own task, which builds its executor before it calls the subscription's resolver).
_subscription_executor: ContextVar[SharedEventExecutor | None] = ContextVar(
    "subscription_executor", default=None
)


class SharedEventExecutor(StrawberryExecutor):
    """strawberry's graphql-core executor; a subscription event (the value a subscription
    yields) is executed once for every subscription of the same parsed document (documents are
    cached by text, graph/limits.py), variables and permissions that receives the same value."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.operation.operation is OperationType.SUBSCRIPTION:
            _subscription_executor.set(self)

    def _event_key(self) -> Hashable:
        """What an event's answer depends on besides the event (the same for the operation's
        every event: kept once made, and the per-event copies share it)."""
        key: Hashable | None = getattr(self, "_key", None)
        if key is None:
            principal = getattr(self.context_value, "principal", None)
            permissions = getattr(principal, "permissions", None) or ()
            key = self._key = (
                id(self.operation),
                json.dumps(self.variable_values.coerced, sort_keys=True, default=str),
                frozenset(permission.value for permission in permissions),
            )
        return key

    def _kept_result(self, payload: object) -> ExecutionResult | None:
        kept = _results.find(payload, self._event_key())
        if kept is not None and kept[0] is self.operation:
            return kept[1]
        return None

    def execute_operation(self, serially: bool | None = None) -> Any:
        payload = self.root_value
        if payload is None or self.operation.operation is not OperationType.SUBSCRIPTION:
            return super().execute_operation(serially)
        kept = self._kept_result(payload)
        if kept is not None:
            return kept
        result = super().execute_operation(serially)
        if isinstance(result, ExecutionResult) and not result.errors:
            _results.keep(payload, self._event_key(), (self.operation, result))
        return result

    async def event_result(self, payload: object) -> ExecutionResult:
        """This operation's answer for the event ``payload``, as strawberry would compute it."""
        kept = self._kept_result(payload)
        if kept is not None:
            return kept
        result = self.build_per_event_executor(payload).execute_operation(False)
        if isawaitable(result):
            result = await result
        assert isinstance(result, ExecutionResult)  # a subscription streams nothing incrementally
        return result


class DirectUpdates:
    """The running subscription's updates, sent to its websocket from its resolver.

    strawberry's path for each value a subscription yields (its extensions' hooks, the
    execution, the message's encoding) costs a few hundred microseconds, for each subscription:
    10,000 subscriptions of one district would take seconds to receive one change. Sent from
    here, an update costs its subscription lookups of the answer and of its JSON, which the
    first subscription to send them made, and the write to its socket; the message is the one
    strawberry would send (the ``data``, and the ``extensions`` of the operation's first
    message). A value whose answer has errors, or a subscription outside a websocket operation,
    goes strawberry's way: ``send`` answers False, and the value is to be yielded."""

    def __init__(self) -> None:
        # Read in the operation's own task, where both were set.
        self.channel = OperationChannel.running()
        self.executor = _subscription_executor.get()
        self._framing: tuple[str, str] | None = None

    async def send(self, value: object) -> bool:
        """Send the update for ``value``; False when it is to be yielded instead. Once the
        websocket has closed, waits for the connection to end the operation."""
        if self.channel is None or self.executor is None:
            return False
        result = await self.executor.event_result(value)
        data = result.data
        if result.errors or not isinstance(data, dict):
            return False
        data_json = _encoded.get(data, "json", partial(_dumps, data))
        before, after = self._message_framing(self.channel)
        if not await self.channel.send_text(before + data_json + after):
            await anyio.sleep_forever()
        return True

    def _message_framing(self, channel: OperationChannel) -> tuple[str, str]:
        """What comes before and after the data in this operation's ``next`` messages."""
        if self._framing is None:
            before = '{"id":' + _dumps(channel.id) + ',"type":"next","payload":{"data":'
            extensions = channel.first_extensions
            after = "}}" if extensions is None else ',"extensions":' + _dumps(extensions) + "}}"
            self._framing = (before, after)
        return self._framing


def _dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))
