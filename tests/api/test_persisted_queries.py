"""Automatic persisted queries (Apollo's protocol): a document sent once with its SHA-256, then by
the hash alone, over GET and POST; registered-only mode; the Licensing tab's own documents."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
import strawberry.schema.schema
from sqlmodel import select

import graph.limits
from app.factory import tab_documents
from db.models import PersistedQuery
from graph.persisted import PersistedQueries
from graph.schema import build_schema
from licensing.settings import PersistedQuerySettings
from licensing.storage.persisted_queries import register_document

pytestmark = pytest.mark.anyio

DOCUMENT = "query Seats { license { display level } }"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def persisted(text_or_hash: str) -> dict[str, Any]:
    digest = text_or_hash if len(text_or_hash) == 64 else sha256(text_or_hash)
    return {"persistedQuery": {"version": 1, "sha256Hash": digest}}


async def post(client, token: str, **body: Any):
    return await client.post("/graphql", json=body, headers={"Authorization": f"Bearer {token}"})


async def get(client, token: str, **params: Any):
    encoded = {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}
    return await client.get(
        "/graphql", params=encoded, headers={"Authorization": f"Bearer {token}"}
    )


def codes(response) -> list[str]:
    return [error["extensions"]["code"] for error in response.json().get("errors", [])]


def registered(service) -> list[PersistedQuery]:
    with service.database.read() as session:
        return list(session.exec(select(PersistedQuery)).all())


async def test_an_unknown_hash_asks_for_the_document_over_get_and_post(client, make_district):
    district = await make_district(seats=1000, active=960)

    for response in (
        await get(client, district.viewer_token, extensions=persisted(DOCUMENT)),
        await post(client, district.viewer_token, extensions=persisted(DOCUMENT)),
    ):
        assert response.status_code == 200
        [error] = response.json()["errors"]
        # The message Apollo's clients look for, and the code.
        assert error["message"] == "PersistedQueryNotFound"
        assert error["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"


async def test_a_document_sent_with_its_hash_is_registered_then_runs_by_hash(
    client, make_district, service
):
    district = await make_district(seats=1000, active=960)

    first = await post(
        client, district.viewer_token, query=DOCUMENT, extensions=persisted(DOCUMENT)
    )
    by_get = await get(client, district.viewer_token, extensions=persisted(DOCUMENT))
    by_post = await post(client, district.viewer_token, extensions=persisted(DOCUMENT))

    expected = {"license": {"display": "960 / 1000", "level": "YELLOW"}}
    assert first.json()["data"] == by_get.json()["data"] == by_post.json()["data"] == expected
    [row] = registered(service)
    assert (row.sha256, row.document, row.district_id) == (sha256(DOCUMENT), DOCUMENT, district.id)
    # By hash over GET, the answer is conditional like any GET query's.
    again = await client.get(
        "/graphql",
        params={"extensions": json.dumps(persisted(DOCUMENT))},
        headers={
            "Authorization": f"Bearer {district.viewer_token}",
            "If-None-Match": by_get.headers["etag"],
        },
    )
    assert again.status_code == 304


async def test_a_document_whose_hash_differs_is_refused_and_not_registered(
    client, make_district, service
):
    district = await make_district(seats=1000, active=960)
    other_hash = sha256("{ usage { staff } }")

    response = await post(
        client, district.viewer_token, query=DOCUMENT, extensions=persisted(other_hash)
    )

    assert response.status_code == 400
    assert codes(response) == ["PERSISTED_QUERY_HASH_MISMATCH"]
    assert registered(service) == []
    later = await get(client, district.viewer_token, extensions=persisted(other_hash))
    assert codes(later) == ["PERSISTED_QUERY_NOT_FOUND"]


async def test_a_districts_documents_are_its_own(client, make_district):
    district = await make_district("riverside", seats=1000, active=960)
    other = await make_district("lakeside", seats=1000, active=10)
    await post(client, district.viewer_token, query=DOCUMENT, extensions=persisted(DOCUMENT))

    response = await get(client, other.viewer_token, extensions=persisted(DOCUMENT))

    assert codes(response) == ["PERSISTED_QUERY_NOT_FOUND"]
    mine = await post(client, other.viewer_token, query=DOCUMENT, extensions=persisted(DOCUMENT))
    assert mine.json()["data"]["license"]["display"] == "10 / 1000"


async def test_invalid_or_malformed_requests_register_nothing(client, make_district, service):
    district = await make_district(seats=1000, active=960)
    invalid = "{ license { nope } }"

    answered = await post(
        client, district.viewer_token, query=invalid, extensions=persisted(invalid)
    )
    malformed = await post(
        client,
        district.viewer_token,
        query=DOCUMENT,
        extensions={"persistedQuery": {"version": 2, "sha256Hash": sha256(DOCUMENT)}},
    )

    assert codes(answered) == ["GRAPHQL_VALIDATION_FAILED"]
    assert (malformed.status_code, codes(malformed)) == (400, ["BAD_REQUEST"])
    assert registered(service) == []


@pytest.fixture
def settings(settings):
    settings.persisted_queries = PersistedQuerySettings(max_document_bytes=1024, max_per_district=2)
    return settings


async def test_registrations_are_bounded_in_size_and_number(client, make_district, service):
    district = await make_district(seats=1000, active=960)
    large = "{ license { display } " + "# padding\n" * 120 + "}"
    documents = [f"query Q{number} {{ license {{ display }} }}" for number in range(3)]

    too_large = await post(client, district.viewer_token, query=large, extensions=persisted(large))
    answers = [
        await post(client, district.viewer_token, query=text, extensions=persisted(text))
        for text in documents
    ]

    assert (too_large.status_code, codes(too_large)) == (413, ["PERSISTED_QUERY_TOO_LARGE"])
    assert [answer.status_code for answer in answers] == [200, 200, 403]
    assert codes(answers[2]) == ["PERSISTED_QUERY_LIMIT_REACHED"]
    assert len(registered(service)) == 2
    # Documents without persistedQuery still run.
    plain = await post(client, district.viewer_token, query=documents[2])
    assert plain.json()["data"] == {"license": {"display": "960 / 1000"}}


async def test_a_registered_document_is_not_parsed_or_validated_again(
    client, make_district, monkeypatch
):
    district = await make_district(seats=1000, active=960)
    await post(client, district.viewer_token, query=DOCUMENT, extensions=persisted(DOCUMENT))
    graph.limits.prepared_document.cache_clear()

    def no_parsing(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("parsed again")

    monkeypatch.setattr(graph.limits, "parse", no_parsing)
    monkeypatch.setattr(graph.limits, "_validated", no_parsing)
    # And strawberry's own parsing and validation, which run unless an extension did the work.
    monkeypatch.setattr(strawberry.schema.schema, "parse", no_parsing)
    monkeypatch.setattr(strawberry.schema.schema, "validate_document", no_parsing)

    response = await get(client, district.viewer_token, extensions=persisted(DOCUMENT))

    assert response.json()["data"]["license"]["display"] == "960 / 1000"


async def test_the_tabs_documents_are_valid_and_run_by_hash_unregistered(
    client, make_district, service
):
    documents = tab_documents()
    assert set(documents) == {
        "TAB_QUERY",
        "SET_THRESHOLD",
        "FORCE_UPDATE",
        "USAGE_CHART",
        "LICENSE_CHANGED",
        "ALERTS_CHANGED",
        "SYNC_STATUS",
        "CONFIRM_ROSTER_SYNC",
        "DISCARD_ROSTER_SYNC",
        "COUNT_REVIEW",
        "DEACTIVATED_STUDENTS",
        "DEACTIVATE_STUDENTS",
        "REACTIVATE_STUDENTS",
        "AUDIT_LOG",
    }
    checker = PersistedQueries(
        schema=build_schema(),
        service=service,
        limits=service.settings.graphql,
        settings=service.settings.persisted_queries,
    )
    for text in documents.values():
        assert checker.prepare(sha256(text), text).valid
    district = await make_district(seats=1000, active=960)

    response = await get(
        client,
        district.manager_token,
        variables={"manage": True},
        extensions=persisted(documents["TAB_QUERY"]),
    )

    assert response.json()["data"]["license"]["display"] == "960 / 1000"
    assert registered(service) == []


class TestRegisteredOnly:
    @pytest.fixture
    def settings(self, settings):
        settings.persisted_queries = PersistedQuerySettings(registered_only=True)
        return settings

    async def test_plain_and_unregistered_documents_are_refused(
        self, client, make_district, service
    ):
        district = await make_district(seats=1000, active=960)

        plain = await post(client, district.viewer_token, query=DOCUMENT)
        plain_get = await get(client, district.viewer_token, query=DOCUMENT)
        unknown = await post(
            client, district.viewer_token, query=DOCUMENT, extensions=persisted(DOCUMENT)
        )

        assert (plain.status_code, codes(plain)) == (400, ["PERSISTED_QUERY_REQUIRED"])
        assert codes(plain_get) == ["PERSISTED_QUERY_REQUIRED"]
        assert (unknown.status_code, codes(unknown)) == (403, ["PERSISTED_QUERY_NOT_REGISTERED"])
        assert registered(service) == []

    async def test_documents_the_operator_registered_and_the_tabs_run(
        self, client, make_district, service
    ):
        district = await make_district(seats=1000, active=960)
        with service.database.write() as session:
            register_document(
                session,
                sha256=sha256(DOCUMENT),
                document=DOCUMENT,
                district_id=None,
                registered_by="operator",
                now=service.clock(),
            )

        by_hash = await get(client, district.viewer_token, extensions=persisted(DOCUMENT))
        tab = await get(
            client,
            district.manager_token,
            variables={"manage": True},
            extensions=persisted(tab_documents()["TAB_QUERY"]),
        )

        assert by_hash.json()["data"]["license"]["display"] == "960 / 1000"
        assert tab.json()["data"]["licenseSettings"]["studentsRemainingThreshold"] == 50
