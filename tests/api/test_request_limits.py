"""Requests that would cost the server too much are refused with clear errors; internals never leak."""

from __future__ import annotations

import json
import time

import pytest
from graphql.language import Lexer, Source, TokenKind

from licensing.orchestration.service import LicensingService
from tests.utils.graphql import graphql, graphql_data

pytestmark = pytest.mark.anyio


def assert_refused(response, *words: str) -> str:
    """The request was refused before running: no data, one readable message naming the limit."""
    assert response.status_code < 500, response.text
    body = response.json()
    assert body.get("data") is None, body
    messages = [error["message"] for error in body["errors"]]
    assert messages, body
    message = " ".join(messages)
    for word in words:
        assert word.lower() in message.lower(), message
    for marker in ("Traceback", "site-packages"):
        assert marker not in response.text
    return message


def assert_readable(message: str) -> None:
    """A sentence a person can act on: words, a number, no Python repr."""
    assert 10 <= len(message) <= 300, message
    assert any(character.isdigit() for character in message), message
    for marker in ("<", "object at 0x", "Traceback", "{'"):
        assert marker not in message, message


@pytest.fixture
async def token(make_district) -> str:
    district = await make_district(active=10)
    return district.manager_token


# --- Aliases ------------------------------------------------------------------------------------


async def test_500_aliases_are_refused(client, token, settings):
    query = "{ " + " ".join(f"a{n}: __typename" for n in range(500)) + " }"

    response = await graphql(client, token, query)

    message = assert_refused(response, "aliases")
    assert "500" in message
    assert str(settings.graphql.max_aliases) in message
    assert "token" not in message.lower()  # refused by the alias limit, not the token limit
    assert_readable(message)
    assert response.json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"


async def test_expensive_aliases_are_refused_before_they_run(client, token, monkeypatch):
    calls = 0
    original = LicensingService.district_state

    async def counting(self, district_id):
        nonlocal calls
        calls += 1
        return await original(self, district_id)

    monkeypatch.setattr(LicensingService, "district_state", counting)
    query = "{ " + " ".join(f"c{n}: licenseCheck {{ allowed }}" for n in range(100)) + " }"

    response = await graphql(client, token, query)

    assert_refused(response, "aliases")
    assert calls == 0


async def test_aliases_up_to_the_limit_are_allowed(client, token, settings):
    count = settings.graphql.max_aliases
    query = "{ " + " ".join(f"a{n}: __typename" for n in range(count)) + " }"

    data = await graphql_data(client, token, query)

    assert len(data) == count


async def test_alias_bomb_through_fragments_is_refused(client, token):
    # Few aliases in the text, but each spread repeats them: 10 x 4 x 4 x 4 = 640 in effect.
    query = """
    query { ...D }
    fragment A on Query { a0: __typename a1: __typename a2: __typename a3: __typename
                          a4: __typename a5: __typename a6: __typename a7: __typename
                          a8: __typename a9: __typename }
    fragment B on Query { ...A ...A ...A ...A }
    fragment C on Query { ...B ...B ...B ...B }
    fragment D on Query { ...C ...C ...C ...C }
    """

    response = await graphql(client, token, query)

    message = assert_refused(response, "aliases")
    assert_readable(message)


def doubling_fragments(levels: int, leaf: str) -> str:
    """F1 spreads F0 twice, F2 spreads F1 twice ...: 2**levels copies of ``leaf`` in a short text."""
    fragments = [f"fragment F0 on Query {{ {leaf} }}"]
    fragments += [
        f"fragment F{n} on Query {{ ...F{n - 1} ...F{n - 1} }}" for n in range(1, levels + 1)
    ]
    return f"{{ ...F{levels} }}\n" + "\n".join(fragments)


async def test_doubling_fragment_alias_bomb_is_refused_quickly(client, token):
    started = time.monotonic()

    response = await graphql(client, token, doubling_fragments(100, "a: __typename"))

    message = assert_refused(response, "aliases")
    assert_readable(message)
    assert time.monotonic() - started < 2


async def test_doubling_fragments_do_not_stall_the_server(client, token):
    """Limits that walk each spread again take exponential time here; the server must not."""
    started = time.monotonic()

    response = await graphql(client, token, doubling_fragments(24, "__typename"))

    assert response.status_code == 200
    assert time.monotonic() - started < 2


async def test_alias_bomb_through_inline_fragments_is_refused(client, token):
    inner = " ".join(f"l{n}: license {{ display }}" for n in range(10))
    query = "{ " + " ".join(f"... on Query {{ {inner} }}" for _ in range(5)) + " }"

    response = await graphql(client, token, query)

    assert_refused(response, "aliases")


# --- Depth --------------------------------------------------------------------------------------


def nested_introspection(levels: int) -> str:
    """{ __schema { types { fields { type { fields { type { ... name ... } } } } } } }"""
    inner = "name"
    for _ in range(levels):
        inner = f"fields {{ type {{ {inner} }} }}"
    return f"{{ __schema {{ types {{ {inner} }} }} }}"


async def test_deep_introspection_is_refused(client, token, settings):
    query = nested_introspection(settings.graphql.max_depth)

    response = await graphql(client, token, query)

    message = assert_refused(response, "depth")
    assert str(settings.graphql.max_depth) in message
    assert_readable(message)


async def test_deep_nesting_through_fragments_is_refused(client, token, settings):
    levels = settings.graphql.max_depth
    fragments = ["fragment F0 on __Type { name }"]
    for n in range(1, levels + 1):
        fragments.append(f"fragment F{n} on __Type {{ fields {{ type {{ ...F{n - 1} }} }} }}")
    query = f"{{ __schema {{ types {{ ...F{levels} }} }} }}\n" + "\n".join(fragments)

    response = await graphql(client, token, query)

    assert_refused(response, "depth")


async def test_shallow_introspection_is_allowed(client, token):
    data = await graphql_data(client, token, "{ __schema { types { name fields { name } } } }")

    assert any(type_["name"] == "License" for type_ in data["__schema"]["types"])


async def test_standard_introspection_query_still_works(client, token):
    """GraphiQL and code generators send this query; the depth limit must not break them."""
    from graphql import get_introspection_query

    data = await graphql_data(client, token, get_introspection_query())

    assert data["__schema"]["queryType"]["name"] == "Query"


# --- Tokens -------------------------------------------------------------------------------------


def token_count(document: str) -> int:
    lexer = Lexer(Source(document))
    count = 0
    while lexer.advance().kind != TokenKind.EOF:
        count += 1
    return count


def document_of(tokens: int) -> str:
    """A valid query of exactly ``tokens`` tokens, within the alias and depth limits."""
    parts = [f't{n}: __type(name: "License") {{ name kind fields {{ name }} }}' for n in range(30)]
    parts += ["license { display }"] * 300 + ["usage { activeStudents }"] * 70
    document = "{ " + " ".join(parts) + " }"
    padding = tokens - token_count(document)
    assert padding >= 0
    document = "{ " + " ".join(parts + ["__typename"] * padding) + " }"
    assert token_count(document) == tokens
    return document


async def test_more_than_2000_tokens_are_refused(client, token, settings):
    assert settings.graphql.max_tokens == 2000

    response = await graphql(client, token, document_of(2001))

    message = assert_refused(response, "tokens")
    assert "more than 2000 tokens" in message
    assert "alias" not in message
    assert_readable(message)


async def test_a_much_longer_document_is_refused_too(client, token):
    # 700 x "license { display }" is 2800 tokens and no aliases at all.
    query = "{ " + " ".join("license { display }" for _ in range(700)) + " }"

    response = await graphql(client, token, query)

    assert_refused(response, "2000 tokens")


async def test_a_document_of_exactly_2000_tokens_runs(client, token):
    data = await graphql_data(client, token, document_of(2000))

    assert data["license"]["display"] == "10 / 1000"
    assert data["t0"]["name"] == "License"


# --- Body size ----------------------------------------------------------------------------------


def padded_body(size: int) -> bytes:
    """A valid GraphQL request of exactly ``size`` bytes (the padding is JSON whitespace)."""
    body = json.dumps({"query": "{ license { display } }"}).encode()
    return body[:-1] + b" " * (size - len(body)) + b"}"


def assert_too_large(response, limit: int) -> None:
    assert response.status_code == 413, response.text
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "REQUEST_TOO_LARGE"
    assert str(limit) in error["message"]
    assert_readable(error["message"])


async def test_body_over_the_limit_is_413(client, token, settings):
    limit = settings.graphql.max_body_bytes

    response = await client.post(
        "/graphql",
        content=padded_body(limit + 1),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )

    assert_too_large(response, limit)


async def test_body_at_the_limit_is_accepted(client, token, settings):
    limit = settings.graphql.max_body_bytes

    response = await client.post(
        "/graphql",
        content=padded_body(limit),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )

    assert response.status_code == 200, response.text
    assert response.json()["data"]["license"]["display"] == "10 / 1000"


async def test_chunked_body_over_the_limit_is_413_and_not_read_to_the_end(client, token, settings):
    limit = settings.graphql.max_body_bytes
    chunk = 4096
    chunks_total = 10 * limit // chunk
    sent = 0

    async def endless_body():
        nonlocal sent
        yield b'{"query": "{ license { display } }"'
        for _ in range(chunks_total):
            sent += 1
            yield b" " * chunk
        yield b"}"

    response = await client.post(
        "/graphql",
        content=endless_body(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )

    assert "content-length" not in {name.lower() for name in response.request.headers}
    assert_too_large(response, limit)
    # The server stopped reading soon after the limit instead of buffering everything.
    assert sent <= limit // chunk + 2


async def test_chunked_body_under_the_limit_is_accepted(client, token):
    async def body():
        yield b'{"query": '
        yield b'"{ license { display } }"}'

    response = await client.post(
        "/graphql",
        content=body(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )

    assert response.status_code == 200, response.text
    assert response.json()["data"]["license"]["display"] == "10 / 1000"


async def test_lying_content_length_does_not_bypass_the_limit(client, token, settings):
    limit = settings.graphql.max_body_bytes

    async def body():
        yield padded_body(limit + 1000)

    response = await client.post(
        "/graphql",
        content=body(),
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Content-Length": "10",
        },
    )

    assert_too_large(response, limit)


async def test_oversized_body_is_refused_even_without_a_token(client, settings):
    limit = settings.graphql.max_body_bytes

    response = await client.post(
        "/graphql",
        content=padded_body(limit + 1),
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code in (401, 413)
    assert response.json().get("data") is None
    assert "10 / 1000" not in response.text


# --- Malformed requests -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'{"query": "{ license { display } }"',
        b"",
        b"\xff\xfe\x00garbage",
        b"[]",
        b"[1, 2, 3]",
        b'"just a string"',
        b"null",
        b"42",
        b"{}",
        b'{"query": 42}',
        b'{"query": null}',
        b'{"query": "{ license { display } }", "variables": "nope"}',
        b'{"query": "{ license { display } }", "variables": [1]}',
        b'{"query": "{ license { display } }", "operationName": 7}',
    ],
)
async def test_malformed_request_is_a_4xx_without_internals(client, token, body):
    response = await client.post(
        "/graphql",
        content=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )

    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    for marker in ("Traceback", "site-packages", 'File "'):
        assert marker not in response.text
    assert "10 / 1000" not in response.text
    # Answered like every other error: JSON, with a code and a message.
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["errors"][0]
    assert error["extensions"]["code"]
    assert 10 <= len(error["message"]) <= 300, error["message"]


async def test_malformed_json_message_is_readable(client, token):
    response = await client.post(
        "/graphql",
        content=b"{not json",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )

    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "BAD_REQUEST"
    assert "not valid JSON" in error["message"]
    assert "line 1, column 2" in error["message"]  # where it went wrong


async def test_graphql_syntax_error_is_a_clear_error(client, token):
    response = await graphql(client, token, "{ license { display ")

    assert response.status_code < 500
    body = response.json()
    assert body.get("data") is None
    message = body["errors"][0]["message"]
    assert message.startswith("Syntax Error")
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
    assert body["errors"][0]["locations"] == [{"line": 1, "column": 21}]
    assert "Traceback" not in response.text


async def test_bare_json_value_gets_a_helpful_message(client, token):
    response = await client.post(
        "/graphql",
        content=b"42",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )

    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "BAD_REQUEST"
    assert "JSON object" in error["message"]
    assert "query" in error["message"]


async def test_bad_variable_type_is_a_clear_error(client, token):
    response = await graphql(
        client,
        token,
        "mutation Set($value: Int!) { setThreshold(studentsRemaining: $value) { errors { code } } }",
        {"value": "lots"},
    )

    assert response.status_code < 500
    body = response.json()
    assert body.get("data") is None
    assert "$value" in body["errors"][0]["message"]
    assert "Traceback" not in response.text


# --- Unexpected failures ------------------------------------------------------------------------


async def test_unexpected_exception_is_masked(client, token, monkeypatch, caplog):
    async def broken(self, district_id, additional_students):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(LicensingService, "license_check", broken)

    response = await graphql(client, token, "{ licenseCheck { allowed reason } }")

    assert response.status_code < 500, response.text
    assert "secret internals" not in response.text
    assert "Traceback" not in response.text
    assert "RuntimeError" not in response.text
    body = response.json()
    assert body["data"] == {"licenseCheck": None}
    message = body["errors"][0]["message"]
    assert "internal error" in message.lower()
    assert body["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert body["errors"][0]["path"] == ["licenseCheck"]
    # The operator still gets the details, in the server's log.
    assert "secret internals" in caplog.text


async def test_masked_failure_in_a_mixed_query_reports_only_the_masked_error(
    client, token, monkeypatch, caplog
):
    async def broken(self, district_id, additional_students):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(LicensingService, "license_check", broken)

    response = await graphql(
        client, token, "{ license { display } check: licenseCheck { allowed } }"
    )

    assert "secret internals" not in response.text
    body = response.json()
    # The failed field is null; the rest of the answer still arrives.
    assert body["data"]["check"] is None
    assert body["data"]["license"] is not None
    assert [error["message"] for error in body["errors"]] == [
        "Internal error. The request was not completed; please try again."
    ]


async def test_client_errors_are_not_masked(client, token):
    response = await graphql(client, token, "{ licenseCheck(additionalStudents: -1) { allowed } }")

    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "INVALID_ADDITIONAL_STUDENTS"
    assert "additionalStudents must be between 0 and" in error["message"]
