"""graph/strawberry_compat.py against the installed strawberry: every function of the seam, and
every strawberry refusal it names, sent as a real request.

A failure here means strawberry changed under the seam; the message says which file to update.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest
import strawberry
from graphql import GraphQLSchema, parse, specified_rules
from sqlmodel import select
from strawberry.asgi import GraphQL
from strawberry.extensions import SchemaExtension
from websockets.asyncio.client import connect

from app.factory import create_app
from db.models import ApiToken
from graph.errors import refusal_for
from graph.fanout import DirectUpdates
from graph.schema import build_schema
from graph.strawberry_compat import (
    HTTPException,
    StrawberryRefusal,
    graphql_core_schema,
    provided_operation_name,
    strawberry_refusal,
    validate_document,
)
from graph.subscriptions import TOKEN_REVOKED
from licensing.orchestration.service import LicensingService
from licensing.storage.tokens import hash_token, revoke_token
from tests.fakes.serve import serve
from tests.utils.districts import students

pytestmark = pytest.mark.anyio

SEAM_BROKE = "strawberry changed: update graph/strawberry_compat.py"
REPLY_SECONDS = 5.0


def seam(condition: object, detail: object) -> None:
    """Fails with the file to update, and what no longer holds."""
    if not condition:
        pytest.fail(f"{SEAM_BROKE} ({detail})")


@pytest.fixture
async def district(make_district: Any) -> Any:
    return await make_district(active=10, threshold=50)


# --- The schema and the execution context ---------------------------------------------------------


def test_the_core_schema_is_graphql_cores_with_the_query_type():
    core = graphql_core_schema(build_schema())

    seam(isinstance(core, GraphQLSchema), f"graphql_core_schema gave {type(core)!r}")
    seam(core.query_type is not None and core.query_type.name == "Query", "no Query type")
    seam("license" in core.query_type.fields, "the Query type has no license field")


def test_validate_document_finds_what_the_schema_refuses_and_nothing_else():
    core = graphql_core_schema(build_schema())

    valid = validate_document(core, parse("{ license { display } }"), tuple(specified_rules))
    invalid = validate_document(core, parse("{ noSuchField }"), tuple(specified_rules))

    seam(valid == [], f"a valid document got {valid}")
    seam(len(invalid) == 1 and "noSuchField" in invalid[0].message, f"got {invalid}")


async def test_the_operation_name_is_read_as_the_caller_sent_it():
    seen: list[object] = []

    class RecordOperationName(SchemaExtension):
        def on_execute(self) -> Iterator[None]:
            seen.append(provided_operation_name(self.execution_context))
            yield

    @strawberry.type
    class Query:
        @strawberry.field
        def hello(self) -> str:
            return "hi"

    schema = strawberry.Schema(query=Query, extensions=[RecordOperationName])
    named = await schema.execute("query A { hello } query B { hello }", operation_name="B")
    unnamed = await schema.execute("query A { hello }")

    seam(named.errors is None and unnamed.errors is None, f"{named.errors} {unnamed.errors}")
    seam(seen == ["B", None], f"provided_operation_name read {seen}, not ['B', None]")


async def test_several_operations_without_a_name_are_refused_and_with_one_run(client, district):
    document = "query A { license { display } } query B { license { total } }"
    headers = {"Authorization": f"Bearer {district.manager_token}"}

    without = await client.post("/graphql", json={"query": document}, headers=headers)
    named = await client.post(
        "/graphql", json={"query": document, "operationName": "B"}, headers=headers
    )

    codes = [error["extensions"]["code"] for error in without.json().get("errors", [])]
    seam(codes == ["OPERATION_NAME_REQUIRED"], f"without operationName: {without.text}")
    seam(named.status_code == 200 and "errors" not in named.json(), f"named: {named.text}")


# --- strawberry's refusals, answered with codes -----------------------------------------------------


def test_every_strawberry_refusal_is_recognised_by_its_words():
    for refusal in StrawberryRefusal:
        seam(strawberry_refusal(refusal.value) is refusal, refusal)
    seam(strawberry_refusal("Our own words.") is None, "our own reasons are not strawberry's")


def test_strawberrys_json_refusal_still_has_the_words_the_seam_names():
    # The view replaces parse_json with a stricter one, so strawberry's own is asked directly.
    view = GraphQL(build_schema())

    with pytest.raises(HTTPException) as refused:
        GraphQL.parse_json(view, b"{")

    seam(
        strawberry_refusal(refused.value.reason) is StrawberryRefusal.INVALID_JSON,
        f"strawberry now says {refused.value.reason!r}",
    )


def _get(query: str) -> dict[str, Any]:
    return {"method": "GET", "params": {"query": query}}


def _post(body: object, content_type: str = "application/json") -> dict[str, Any]:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return {"method": "POST", "content": content, "headers": {"Content-Type": content_type}}


# Each refusal strawberry answers over HTTP, and a request that makes it.
REFUSED_REQUESTS = {
    StrawberryRefusal.UNSUPPORTED_CONTENT_TYPE: _post(b"{ license { display } }", "text/plain"),
    StrawberryRefusal.BATCH_NOT_ENABLED: _post([{"query": "{ license { display } }"}]),
    StrawberryRefusal.NO_QUERY: _post({"variables": {}}),
    StrawberryRefusal.NO_OPERATION_TYPE: _post({"query": "fragment F on Query { __typename }"}),
    StrawberryRefusal.MUTATION_OVER_GET: _get(
        "mutation { setThreshold(studentsRemaining: 5) { __typename } }"
    ),
    StrawberryRefusal.SUBSCRIPTION_OVER_GET: _get("subscription { licenseChanged { used } }"),
    StrawberryRefusal.SUBSCRIPTION_OVER_POST: _post(
        {"query": "subscription { licenseChanged { used } }"}
    ),
}


def test_every_refusal_strawberry_answers_over_http_has_a_request_here():
    asked_directly = {StrawberryRefusal.INVALID_JSON}
    seam(set(REFUSED_REQUESTS) | asked_directly == set(StrawberryRefusal), "a refusal untested")


@pytest.mark.parametrize("refusal", list(REFUSED_REQUESTS), ids=lambda refusal: refusal.name)
async def test_a_strawberry_refusal_is_answered_with_its_code(
    client: httpx.AsyncClient, district: Any, refusal: StrawberryRefusal
):
    request = REFUSED_REQUESTS[refusal]
    headers = {"Authorization": f"Bearer {district.manager_token}", **request.get("headers", {})}
    response = await client.request(
        request["method"],
        "/graphql",
        params=request.get("params"),
        content=request.get("content"),
        headers=headers,
    )
    # What the caller gets when strawberry refuses for this reason (any status it gives).
    expected = refusal_for(response.status_code, refusal.value)

    seam(
        response.headers["content-type"].startswith("application/json"),
        f"{refusal.name}: strawberry's plain-text answer came through: {response.text!r}",
    )
    body = response.json()
    errors = body.get("errors") or [{}]
    seam(
        (
            response.status_code,
            errors[0].get("extensions", {}).get("code"),
            errors[0].get("message"),
        )
        == (expected.status_code, expected.code, expected.message),
        f"{refusal.name}: answered {response.status_code} {body}",
    )
    for name, value in expected.headers.items():
        seam(response.headers.get(name) == value, f"{refusal.name}: no {name} header")


# --- The websocket operation check ----------------------------------------------------------------


async def test_the_websocket_check_runs_before_every_operation(
    service: LicensingService, district: Any, clock: Any
):
    token = district.viewer_token
    with serve(create_app(service), websockets=True) as base_url:
        url = base_url.replace("http://", "ws://") + "/graphql"
        async with connect(
            url,
            subprotocols=["graphql-transport-ws"],
            additional_headers={"Authorization": f"Bearer {token}"},
            open_timeout=REPLY_SECONDS,
        ) as ws:

            async def exchange(message: dict[str, Any]) -> dict[str, Any]:
                await ws.send(json.dumps(message))
                return json.loads(await _receive(ws))

            ack = await exchange({"type": "connection_init", "payload": {}})
            first = await exchange(
                {
                    "id": "1",
                    "type": "subscribe",
                    "payload": {"query": "subscription { licenseChanged { used } }"},
                }
            )
            await ws.send(json.dumps({"id": "1", "type": "complete"}))
            await anyio.to_thread.run_sync(_revoke, service, district, token, clock())
            refused = await exchange(
                {
                    "id": "2",
                    "type": "subscribe",
                    "payload": {"query": "subscription { licenseChanged { used } }"},
                }
            )

    seam(ack["type"] == "connection_ack", f"not acknowledged: {ack}")
    seam(first["type"] == "next", f"a signed-in subscription did not run: {first}")
    # Without the check strawberry would start the operation; with it, one error and nothing run.
    seam(refused["type"] == "error", f"the check before the operation was not asked: {refused}")
    code = refused["payload"][0]["extensions"]["code"]
    seam(
        refused["id"] == "2" and code == TOKEN_REVOKED.code,
        f"the check before the operation was not asked: {refused}",
    )


async def _receive(ws: Any) -> str:
    with anyio.fail_after(REPLY_SECONDS):
        return await ws.recv()


def _revoke(service: LicensingService, district: Any, token: str, now: Any) -> None:
    with service.database.write() as session:
        row = session.exec(select(ApiToken).where(ApiToken.token_hash == hash_token(token))).one()
        revoke_token(session, district_id=district.id, token_id=row.id, now=now)


# --- Updates a subscription's resolver sends itself -----------------------------------------------


async def _update_messages(
    service: LicensingService, district: Any, newcomer: str
) -> list[dict[str, Any]]:
    """The messages of a licenseChanged subscription: the first, and the update after a change."""
    with serve(create_app(service), websockets=True) as base_url:
        url = base_url.replace("http://", "ws://") + "/graphql"
        async with connect(
            url,
            subprotocols=["graphql-transport-ws"],
            additional_headers={"Authorization": f"Bearer {district.viewer_token}"},
            open_timeout=REPLY_SECONDS,
        ) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
            await _receive(ws)
            query = "subscription { licenseChanged { used display } }"
            await ws.send(json.dumps({"id": "7", "type": "subscribe", "payload": {"query": query}}))
            first = json.loads(await _receive(ws))
            await anyio.to_thread.run_sync(
                lambda: service.apply_roster(
                    district.id, source="local", records=students(1, prefix=newcomer), replace=False
                )
            )
            update = json.loads(await _receive(ws))
    return [first, update]


async def test_an_update_sent_by_the_resolver_is_the_message_strawberry_would_send(
    service: LicensingService, district: Any, monkeypatch: pytest.MonkeyPatch
):
    direct = await _update_messages(service, district, "first-")

    async def through_strawberry(_self: DirectUpdates, _value: object) -> bool:
        return False  # the value is yielded, and strawberry sends it

    monkeypatch.setattr(DirectUpdates, "send", through_strawberry)
    yielded = await _update_messages(service, district, "second-")

    seam(direct[1]["payload"]["data"]["licenseChanged"]["used"] == 11, f"no update: {direct}")
    seam(yielded[1]["payload"]["data"]["licenseChanged"]["used"] == 12, f"no update: {yielded}")
    for sent, through in zip(direct, yielded, strict=True):
        seam(
            set(sent) == set(through) and set(sent["payload"]) == set(through["payload"]),
            f"{sent} is not shaped as strawberry's {through}",
        )
        seam(sent["id"] == through["id"] and sent["type"] == through["type"], f"{sent}")
        # What the operation cost is the same in every message of it.
        seam(sent["payload"].get("extensions") == direct[0]["payload"].get("extensions"), sent)
    seam("extensions" in yielded[1]["payload"], f"strawberry's update carries none: {yielded}")
