"""``node(id:)`` and ``nodes(ids:)``: any object with a global id, from the caller's district."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, Any

import strawberry
from strawberry import relay
from strawberry.types import Info

from graph.errors import ClientError
from graph.nodes import MAX_NODE_IDS, resolve_global_id, resolve_global_ids
from licensing.domain.error_codes import ErrorCode
from licensing.problems import Problem


@strawberry.type
class NodeQuery:
    @strawberry.field(
        description="The object with this global id, if it is the caller's district's and "
        "exists; null otherwise (the same for a malformed id). Needs the permission the "
        "object's own list needs."
    )
    async def node(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="A global id.")],
    ) -> relay.Node | None:
        return await resolve_global_id(info, id)

    @strawberry.field(
        description=f"The objects with these global ids (at most {MAX_NODE_IDS}), in order; "
        "null in the place of an id that finds nothing, as node(id:)."
    )
    async def nodes(
        self,
        info: Info,
        ids: Annotated[list[strawberry.ID], strawberry.argument(description="Global ids.")],
    ) -> list[relay.Node | None]:
        if len(ids) > MAX_NODE_IDS:
            raise ClientError(
                Problem(
                    ErrorCode.TOO_MANY_IDS,
                    f"nodes takes at most {MAX_NODE_IDS} ids, not {len(ids)}.",
                    field="ids",
                )
            )
        items: list[Awaitable[Any]] = resolve_global_ids(info, ids)
        return items  # type: ignore[return-value]
