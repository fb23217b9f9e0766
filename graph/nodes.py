"""Global object identification: ``node(id:)``, ``nodes(ids:)`` and how each Node type loads.

A global id is strawberry's: base64 of ``"Type:key"``, where the key is the object's key within
its district (a row id, or a name). Nothing in an id names the district: every id is resolved
against the caller's own district, so another district's id finds nothing, just like an id
that never existed, and a malformed id or one naming a type that is not a Node resolves to
null as well: no answer tells an unknown id from another district's.

Reading a Node needs the permission its root field needs (``DistrictNode.permission``); that is
decided from the id's type alone, before anything is looked up.

The types are strawberry ``relay.Node``s (their ``id`` is strawberry's GlobalID), but the root
fields are not ``relay.node()``: that one takes a ``GlobalID`` argument, which refuses a malformed
id as invalid input and an unknown type with an error, where this API answers null.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar, cast

from graphql import GraphQLError
from strawberry import relay
from strawberry.dataloader import DataLoader
from strawberry.types.base import StrawberryObjectDefinition

from graph.context import GraphContext
from graph.permissions import PERMISSION_MESSAGES
from licensing.domain.error_codes import ErrorCode
from licensing.storage.row_ids import fits_row_id
from licensing.storage.tokens import Permission

if TYPE_CHECKING:
    from strawberry.types import Info

# The most ids one nodes(ids:) takes: as many as the largest page.
MAX_NODE_IDS = 100
# No key is longer (names are at most 200 characters); a longer id is not one of ours.
MAX_GLOBAL_ID_LENGTH = 400


class DistrictNode(Protocol):
    """What a Node type of this API provides besides strawberry's ``relay.Node``."""

    # The permission its root field needs.
    permission: ClassVar[Permission]

    @classmethod
    async def load(cls, context: GraphContext, keys: Sequence[str]) -> list[Any | None]:
        """The caller's district's objects with these keys (None where there is none), in
        order: one read for all of them."""
        ...


def row_id_of(key: str) -> int | None:
    """The row id a key names, or None when it names none (any text a client sends)."""
    if not (key.isascii() and key.isdigit()) or len(key) > 10:
        return None
    value = int(key)
    return value if fits_row_id(value) and value > 0 else None


Row = TypeVar("Row")
NodeObject = TypeVar("NodeObject")


async def load_by_row_id(
    keys: Sequence[str],
    read: Callable[[list[int]], Awaitable[Mapping[int, Row]]],
    convert: Callable[[Row], NodeObject],
) -> list[NodeObject | None]:
    """The objects whose keys are row ids, read at once by ``read`` (the caller's district's rows
    among the ids it is given), in the keys' order; None for a key that names no row of it."""
    ids = [row_id_of(key) for key in keys]
    found = await read([row_id for row_id in ids if row_id is not None])
    return [
        convert(found[row_id]) if row_id is not None and row_id in found else None for row_id in ids
    ]


def node_type_of(info: Info, global_id: str) -> tuple[type[DistrictNode], str] | None:
    """The Node type and key a global id names, or None for anything else."""
    if len(global_id) > MAX_GLOBAL_ID_LENGTH:
        return None
    try:
        parsed = relay.GlobalID.from_id(global_id)
    except relay.GlobalIDValueError:
        return None
    definition = info.schema.get_type_by_name(parsed.type_name)
    if not isinstance(definition, StrawberryObjectDefinition) or definition.is_interface:
        return None
    origin = definition.origin
    if not (isinstance(origin, type) and issubclass(origin, relay.Node)):
        return None
    if not (hasattr(origin, "load") and hasattr(origin, "permission")):
        return None
    return cast("type[DistrictNode]", origin), parsed.node_id


def forbidden(permission: Permission) -> GraphQLError:
    return GraphQLError(PERMISSION_MESSAGES[permission], extensions={"code": ErrorCode.FORBIDDEN})


def _loader(context: GraphContext, node_type: type[DistrictNode]) -> DataLoader[str, Any]:
    """One loader per type and request: every node(id:) and nodes(ids:) of a request that
    names the type is answered by one read."""
    loader = context.node_loaders.get(node_type)
    if loader is None:

        async def load(keys: list[str]) -> list[Any]:
            return list(await node_type.load(context, keys))

        loader = DataLoader(load_fn=load)
        context.node_loaders[node_type] = loader
    return loader


async def resolve_global_id(info: Info, global_id: str) -> relay.Node | None:
    """The caller's district's object with this id, or None; FORBIDDEN when the caller's token
    may not read objects of the id's type."""
    found = node_type_of(info, global_id)
    if found is None:
        return None
    node_type, key = found
    context: GraphContext = info.context
    if not context.principal.may(node_type.permission):
        raise forbidden(node_type.permission)
    node: relay.Node | None = await _loader(context, node_type).load(key)
    return node


def resolve_global_ids(info: Info, global_ids: Sequence[str]) -> list[Awaitable[Any]]:
    """One awaitable per id: the executor resolves each on its own, so an id the caller may
    not read is null with its own error while the others are answered."""
    return [resolve_global_id(info, global_id) for global_id in global_ids]
