"""Hostile or broken requests get a clear refusal: a 4xx, or a GraphQL error with a code.

Size, depth, alias and fragment limits, malformed JSON and bare values are in
test_request_limits.py; tokens are in test_authentication.py; tenancy is in test_tenancy.py.
tests/api/test_fuzz.py throws generated requests of every kind at the endpoint.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from sqlmodel import select

from db.models import AuditEvent
from tests.utils.graphql import graphql, graphql_data

pytestmark = pytest.mark.anyio

INTERNALS = ("Traceback", 'File "', ".py", "site-packages", "Exception")
CHECK = "query Check($n: Int!) { licenseCheck(additionalStudents: $n) { allowed reason } }"
THRESHOLD = "{ licenseSettings { studentsRemainingThreshold } }"


@pytest.fixture
async def district(make_district):
    return await make_district(active=10, threshold=50)


@pytest.fixture
def token(district) -> str:
    return district.manager_token


async def post(
    client: httpx.AsyncClient,
    token: str,
    body: bytes,
    content_type: str | None = "application/json",
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    if content_type is not None:
        headers["Content-Type"] = content_type
    return await client.post("/graphql", content=body, headers=headers)


def request_body(query: str, variables: Any = None, **extra: Any) -> bytes:
    payload = {"query": query, **extra}
    if variables is not None:
        payload["variables"] = variables
    return json.dumps(payload).encode()


def assert_refused(response: httpx.Response, status: int, code: str, *words: str) -> str:
    """Refused as a whole, as JSON, with this code and a message holding ``words``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.text
    body = response.json()
    assert body.get("data") is None, body
    error = body["errors"][0]
    assert error["extensions"]["code"] == code, error
    message = error["message"]
    for word in words:
        assert word.lower() in message.lower(), message
    for marker in INTERNALS:
        assert marker not in response.text, response.text
    return message


async def threshold_of(client: httpx.AsyncClient, token: str) -> int:
    data = await graphql_data(client, token, THRESHOLD)
    return data["licenseSettings"]["studentsRemainingThreshold"]


# --- Deep nesting ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "code", "words"),
    [
        pytest.param(
            request_body("{ license " + "{ a " * 600 + "}" * 601),
            200,
            "GRAPHQL_PARSE_FAILED",
            ("nested too deeply",),
            id="selections",
        ),
        pytest.param(
            request_body(
                "{ licenseCheck(additionalStudents: " + "[" * 900 + "]" * 900 + ") { allowed } }"
            ),
            200,
            "GRAPHQL_PARSE_FAILED",
            ("nested too deeply",),
            id="list literal",
        ),
        pytest.param(
            b'{"query": "{ license { display } }", "variables": {"a": '
            + b"[" * 20_000
            + b"]" * 20_000
            + b"}}",
            400,
            "BAD_REQUEST",
            ("nested too deeply",),
            id="JSON variables",
        ),
    ],
)
async def test_deep_nesting_is_refused(client, token, body, status, code, words):
    response = await post(client, token, body)

    assert_refused(response, status, code, *words)


# --- Fragment cycles ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("{ ...A } fragment A on Query { license { display } ...A }", id="itself"),
        pytest.param(
            "{ ...A } fragment A on Query { ...B } fragment B on Query { ...C }"
            " fragment C on Query { ...A }",
            id="through others",
        ),
        pytest.param(
            # A doubling chain whose bottom spreads its top: exponential if walked naively.
            "{ ...F40 }\nfragment F0 on Query { ...F40 }\n"
            + "\n".join(
                f"fragment F{n} on Query {{ ...F{n - 1} ...F{n - 1} }}" for n in range(1, 41)
            ),
            id="doubling chain",
        ),
    ],
)
async def test_fragment_cycles_are_refused_quickly(client, token, query):
    started = time.monotonic()

    response = await post(client, token, request_body(query))

    assert_refused(response, 200, "GRAPHQL_VALIDATION_FAILED", "Cannot spread fragment")
    assert time.monotonic() - started < 2


# --- Batches, content types, encodings ------------------------------------------------------------


async def test_a_batch_is_refused_and_runs_nothing(client, token):
    batch = [
        {"query": "mutation { setThreshold(studentsRemaining: 10) { errors { code } } }"},
        {"query": "{ license { display } }"},
    ]

    response = await post(client, token, json.dumps(batch).encode())

    assert_refused(response, 400, "BATCH_NOT_SUPPORTED", "one operation per request")
    assert await threshold_of(client, token) == 50


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/graphql",
        None,
    ],
)
async def test_a_body_that_is_not_json_is_415(client, token, content_type):
    response = await post(client, token, request_body("{ license { display } }"), content_type)

    assert_refused(response, 415, "UNSUPPORTED_MEDIA_TYPE", "Content-Type: application/json")


async def test_json_with_a_charset_is_accepted(client, token):
    response = await post(
        client, token, request_body("{ license { display } }"), "application/json; charset=utf-8"
    )

    assert response.json()["data"] == {"license": {"display": "10 / 1000"}}


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            b'{"query": "{ license { display } }", "variables": {"a": "\xff"}}', id="variables"
        ),
        pytest.param(b'{"query": "{ license { display \xc3 } }"}', id="query"),
        pytest.param(b'{"query": "{ license { display } }", "x": "\xc0\xaf"}', id="overlong"),
        pytest.param(b'{"query": "{ license { display } }", "x": "\xe2\x82', id="cut short"),
    ],
)
async def test_bytes_that_are_not_utf8_are_refused(client, token, body):
    response = await post(client, token, body)

    assert_refused(response, 400, "BAD_REQUEST", "not valid UTF-8")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            rb'{"query": "{ license { display } }", "variables": {"a": "\ud800"}}', id="variables"
        ),
        pytest.param(rb'{"query": "{ license { display } } # \udfff"}', id="query"),
        pytest.param(
            rb'{"query": "{ license { display } }", "variables": {"\udc00": 1}}', id="key"
        ),
    ],
)
async def test_unpaired_surrogate_escapes_are_refused(client, token, body):
    response = await post(client, token, body)

    assert_refused(response, 400, "BAD_REQUEST", "unpaired surrogate")


async def test_paired_surrogates_and_other_scripts_are_fine(client, token):
    mutation = "mutation($ids: [String!]!) { deactivateStudents(ids: $ids) { changed errors { code message } } }"
    body = request_body(mutation, {"ids": ["\U0001f600", "Zoë-Ωμέγα", "学生"]})
    assert b"\\ud83d\\ude00" in body  # the emoji travels as a surrogate pair

    response = await post(client, token, body)

    payload = response.json()["data"]["deactivateStudents"]
    assert payload["changed"] == 0
    assert [error["code"] for error in payload["errors"]] == ["NOT_FOUND"] * 3
    assert "\U0001f600" in payload["errors"][0]["message"]


# --- Numbers --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("literal", "words"),
    [
        ("2147483648", ("32-bit",)),
        ("-2147483649", ("32-bit",)),
        ("1" + "0" * 30, ("32-bit",)),
        ("9" * 5000, ("5000 characters", "2147483647")),
        ("1.5", ("non-integer",)),
        ("1e3", ("non-integer",)),
        ('"7"', ("non-integer",)),
    ],
)
async def test_an_int_literal_out_of_range_or_not_an_integer_is_refused(
    client, token, literal, words
):
    query = f"{{ licenseCheck(additionalStudents: {literal}) {{ allowed }} }}"

    response = await post(client, token, request_body(query))

    message = assert_refused(response, 200, "GRAPHQL_VALIDATION_FAILED", *words)
    assert len(message) < 200


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("2147483648", ("$n", "32-bit")),
        ("-2147483649", ("$n", "32-bit")),
        ("1.5", ("$n", "non-integer")),
        ("1e400", ("$n", "non-integer")),  # JSON reads it as infinity
        ('"7"', ("$n", "non-integer")),
        ("true", ("$n", "non-integer")),
        ("[1]", ("$n", "non-integer")),
        ('{"n": 1}', ("$n", "non-integer")),
    ],
)
async def test_an_int_variable_out_of_range_or_not_an_integer_is_refused(
    client, token, value, words
):
    body = f'{{"query": "{CHECK}", "variables": {{"n": {value}}}}}'.encode()

    response = await post(client, token, body)

    assert_refused(response, 200, "BAD_USER_INPUT", *words)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("9" * 5000, ("too many digits",)),
        ("NaN", ("NaN", "not a JSON number")),
        ("-Infinity", ("Infinity", "not a JSON number")),
    ],
)
async def test_numbers_json_does_not_have_are_refused(client, token, value, words):
    body = f'{{"query": "{CHECK}", "variables": {{"n": {value}}}}}'.encode()

    response = await post(client, token, body)

    assert_refused(response, 400, "BAD_REQUEST", *words)


# --- Wrong types, nulls ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "variables", "words"),
    [
        pytest.param(
            "query($r: Boolean!) { alerts(includeResolved: $r) { kind } }",
            {"r": "yes"},
            ("$r", "Boolean"),
            id="text for Boolean",
        ),
        pytest.param(
            "query($p: AlertPlacement) { alerts(placement: $p) { kind } }",
            {"p": "dashboard"},
            ("$p", "AlertPlacement"),
            id="unknown enum value",
        ),
        pytest.param(
            "query($p: AlertPlacement) { alerts(placement: $p) { kind } }",
            {"p": 1},
            ("$p", "AlertPlacement"),
            id="number for enum",
        ),
        pytest.param(
            "query($f: ActiveStudentFilterInput) { activeStudents(filter: $f) { totalCount } }",
            {"f": {"district": "beta"}},
            ("$f", "unknown field", "district"),
            id="unknown input field",
        ),
        pytest.param(
            "query($f: ActiveStudentFilterInput) { activeStudents(filter: $f) { totalCount } }",
            {"f": {"modifiedBefore": "last tuesday"}},
            ("$f", "Date"),
            id="not a date",
        ),
        pytest.param(
            "mutation($ids: [String!]!) { deactivateStudents(ids: $ids) { changed } }",
            {"ids": {"first": "S000001"}},
            ("$ids", "String"),
            id="object for a list",
        ),
    ],
)
async def test_a_variable_of_the_wrong_type_is_refused(client, token, query, variables, words):
    response = await graphql(client, token, query, variables)

    assert_refused(response, 200, "BAD_USER_INPUT", *words)


@pytest.mark.parametrize(
    ("query", "variables", "code", "words"),
    [
        pytest.param(
            "{ licenseCheck(additionalStudents: null) { allowed } }",
            None,
            "GRAPHQL_VALIDATION_FAILED",
            ("Int!", "null"),
            id="literal",
        ),
        pytest.param(CHECK, {"n": None}, "BAD_USER_INPUT", ("$n", "Int!", "None"), id="variable"),
        pytest.param(CHECK, {}, "BAD_USER_INPUT", ("$n", "Int!", "provided"), id="missing"),
        pytest.param(
            "mutation($ids: [String!]!) { deactivateStudents(ids: $ids) { changed } }",
            {"ids": ["x", None]},
            "BAD_USER_INPUT",
            ("$ids", "String!"),
            id="inside a list",
        ),
    ],
)
async def test_null_for_a_non_null_input_is_refused(client, token, query, variables, code, words):
    response = await graphql(client, token, query, variables)

    assert_refused(response, 200, code, *words)


# --- Choosing the operation -----------------------------------------------------------------------

TWO_OPERATIONS = """
query Read { license { display } }
mutation Lower { setThreshold(studentsRemaining: 10) { errors { code } } }
"""


async def test_an_unknown_operation_name_is_refused(client, token):
    response = await post(client, token, request_body(TWO_OPERATIONS, operationName="Delete"))

    assert_refused(response, 400, "BAD_REQUEST", 'Unknown operation named "Delete"')


async def test_several_operations_without_a_name_run_none(client, token):
    response = await post(client, token, request_body(TWO_OPERATIONS))

    assert_refused(response, 200, "OPERATION_NAME_REQUIRED", "2 operations", "operationName")
    assert await threshold_of(client, token) == 50

    # Naming one runs that one.
    chosen = await post(client, token, request_body(TWO_OPERATIONS, operationName="Lower"))
    assert chosen.json()["data"] == {"setThreshold": {"errors": []}}
    assert await threshold_of(client, token) == 10


@pytest.mark.parametrize(
    "params",
    [
        {"query": "mutation { setThreshold(studentsRemaining: 10) { errors { code } } }"},
        {"query": TWO_OPERATIONS, "operationName": "Lower"},
    ],
)
async def test_get_never_runs_a_mutation(client, token, params):
    response = await client.get(
        "/graphql", params=params, headers={"Authorization": f"Bearer {token}"}
    )

    assert_refused(response, 405, "METHOD_NOT_ALLOWED", "POST")
    assert response.headers["allow"] == "POST"
    assert await threshold_of(client, token) == 50


async def test_get_runs_a_query(client, token):
    response = await client.get(
        "/graphql",
        params={"query": TWO_OPERATIONS, "operationName": "Read"},
        headers={"Authorization": f"Bearer {token}"},
    )

    assert response.json()["data"] == {"license": {"display": "10 / 1000"}}


async def test_a_subscription_over_http_points_to_the_websocket(client, token):
    response = await post(
        client, token, request_body("subscription { licenseChanged { display } }")
    )

    assert_refused(response, 400, "BAD_REQUEST", "websocket")


# --- Naming a district ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        '{ license(district: "nowhere") { display } }',
        'mutation { setThreshold(studentsRemaining: 10, district: "nowhere") { errors { code } } }',
        'mutation { forceLicenseUpdate(slug: "nowhere") { updated } }',
    ],
)
async def test_naming_an_unknown_district_fails_cleanly(client, token, query):
    response = await post(client, token, request_body(query))

    assert_refused(response, 200, "GRAPHQL_VALIDATION_FAILED", "Unknown argument")
    assert await threshold_of(client, token) == 50


# --- Text the database cannot hold ----------------------------------------------------------------


async def test_ids_with_a_nul_character_are_not_found(client, token, district):
    response = await graphql(
        client,
        token,
        "mutation($ids: [String!]!) { deactivateStudents(ids: $ids) { changed errors { code message } } }",
        {"ids": ["riverside-000001\u0000", "\u0000"]},
    )

    payload = response.json()["data"]["deactivateStudents"]
    assert payload["changed"] == 0
    assert [error["code"] for error in payload["errors"]] == ["NOT_FOUND", "NOT_FOUND"]
    assert "\\x00" in payload["errors"][1]["message"]


async def test_a_search_with_a_nul_character_finds_nobody(client, token):
    data = await graphql_data(
        client,
        token,
        "query($s: String) { all: activeStudents { totalCount }"
        " found: activeStudents(filter: {search: $s}) { totalCount } }",
        {"s": "riverside\u0000"},
    )

    assert data == {"all": {"totalCount": 10}, "found": {"totalCount": 0}}


async def test_long_ids_are_refused_and_audited_within_the_log_s_limits(
    client, token, district, service
):
    ids = [f"{n:03d}" + "x" * 600 for n in range(100)]

    response = await graphql(
        client,
        token,
        "mutation($ids: [String!]!) { deactivateStudents(ids: $ids) { changed errors { code } } }",
        {"ids": ids},
    )

    payload = response.json()["data"]["deactivateStudents"]
    assert payload["changed"] == 0
    assert {error["code"] for error in payload["errors"]} == {"NOT_FOUND"}
    with service.database.read() as session:
        event = session.exec(
            select(AuditEvent)
            .where(AuditEvent.district_id == district.id)
            .order_by(AuditEvent.id.desc())
        ).first()
    assert (event.action, event.outcome) == ("deactivate_students", "rejected")
    assert len(event.new_value) <= 4000
    recorded = json.loads(event.new_value)
    assert recorded["truncated"].startswith('{"changed": 0, "ids": ["000xxx')
