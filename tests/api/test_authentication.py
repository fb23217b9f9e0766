"""Who may call the API: bearer tokens, 401 for strangers, FORBIDDEN for missing permissions."""

from __future__ import annotations

import base64
import re

import pytest
from sqlmodel import select

from db.models import ApiToken, LicenseSettings, metadata
from licensing.storage.tokens import hash_token, revoke_token
from tests.utils.graphql import graphql, graphql_data

pytestmark = pytest.mark.anyio

LICENSE_QUERY = "{ license { display } }"
SET_THRESHOLD = """
mutation Set($value: Int!) {
  setThreshold(studentsRemaining: $value) {
    licenseSettings { studentsRemainingThreshold }
    errors { field code message }
  }
}
"""
FORCE_UPDATE = "mutation { forceLicenseUpdate { updated throttled errors { code message } } }"
SETTINGS_QUERY = """
{ licenseSettings { studentsRemainingThreshold recommendedThresholdMin recommendedThresholdMax } }
"""
READ_ONLY_QUERIES = {
    "license": "{ license { display used total } }",
    "usage": "{ usage { activeStudents inactiveStudents staff devices } }",
    "alerts": "{ alerts { kind message } }",
    "licenseCheck": "{ licenseCheck(additionalStudents: 1) { allowed reason } }",
}


def assert_unauthenticated(response) -> None:
    assert response.status_code == 401, response.text
    body = response.json()
    assert "data" not in body or body["data"] is None
    error = body["errors"][0]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert "token" in error["message"].lower()
    assert response.headers["www-authenticate"].lower().startswith("bearer")


def token_row_id(service, secret: str) -> int:
    with service.database.read() as session:
        row = session.exec(select(ApiToken).where(ApiToken.token_hash == hash_token(secret))).one()
        return row.id


async def test_no_authorization_header_is_401_with_a_challenge(client, make_district):
    await make_district(active=10)

    response = await graphql(client, None, LICENSE_QUERY)

    assert_unauthenticated(response)
    assert "Authorization: Bearer" in response.json()["errors"][0]["message"]


async def test_no_authorization_header_over_get_is_401(client, make_district):
    await make_district(active=10)

    response = await client.get("/graphql", params={"query": LICENSE_QUERY})

    assert_unauthenticated(response)


@pytest.mark.parametrize(
    "header",
    ["Basic x", "Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "Bearer    ", "Token abc", "bearer"],
)
async def test_malformed_authorization_header_is_401(client, make_district, header):
    await make_district(active=10)

    response = await client.post(
        "/graphql", json={"query": LICENSE_QUERY}, headers={"Authorization": header}
    )

    assert_unauthenticated(response)


async def test_basic_scheme_with_a_real_token_is_still_refused(client, make_district):
    district = await make_district(active=10)

    response = await client.post(
        "/graphql",
        json={"query": LICENSE_QUERY},
        headers={"Authorization": f"Basic {district.manager_token}"},
    )

    assert_unauthenticated(response)


@pytest.mark.parametrize(
    "secret",
    [
        "not-a-token",
        "m1t1_" + "A" * 43,
        "m1t1_",
        "m1t1_" + "x" * 5000,
    ],
)
async def test_unknown_token_is_401(client, make_district, secret):
    await make_district(active=10)

    response = await graphql(client, secret, LICENSE_QUERY)

    assert_unauthenticated(response)
    assert "not valid" in response.json()["errors"][0]["message"]


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("Bearer m1t1_ÄÖÜ-jeton-é".encode(), id="non-ASCII, UTF-8"),
        pytest.param("Bearer m1t1_ÄÖÜ".encode("latin-1"), id="non-ASCII, Latin-1"),
        pytest.param(b"Bearer \xff\xfe\x80", id="not text"),
        pytest.param(b"Bearer m1t1_" + b"A" * 1_000_000, id="a megabyte"),
        pytest.param(b"Bearer\tm1t1_abc", id="a tab, not a space"),
    ],
)
async def test_unreadable_token_is_401(client, make_district, header):
    await make_district(active=10)

    response = await client.post(
        "/graphql", json={"query": LICENSE_QUERY}, headers={"Authorization": header}
    )

    assert_unauthenticated(response)
    assert len(response.content) < 1000  # the token is not echoed back


async def test_altered_token_is_401(client, make_district):
    district = await make_district(active=10)
    secret = district.manager_token
    altered = secret[:-1] + ("A" if secret[-1] != "A" else "B")

    response = await graphql(client, altered, LICENSE_QUERY)

    assert_unauthenticated(response)


async def test_scheme_is_case_insensitive_for_a_valid_token(client, make_district):
    district = await make_district(active=10)

    response = await client.post(
        "/graphql",
        json={"query": LICENSE_QUERY},
        headers={"Authorization": f"bearer {district.viewer_token}"},
    )

    assert response.status_code == 200
    assert response.json()["data"]["license"]["display"] == "10 / 1000"


async def test_revoked_token_stops_working_at_once(client, make_district, service):
    district = await make_district(active=10)
    assert (await graphql_data(client, district.viewer_token, LICENSE_QUERY))["license"] == {
        "display": "10 / 1000"
    }

    token_id = token_row_id(service, district.viewer_token)
    with service.database.write() as session:
        assert revoke_token(
            session, district_id=district.id, token_id=token_id, now=service.clock()
        )

    response = await graphql(client, district.viewer_token, LICENSE_QUERY)
    assert_unauthenticated(response)
    assert "revoked" in response.json()["errors"][0]["message"]

    # The district's other token is untouched.
    data = await graphql_data(client, district.manager_token, LICENSE_QUERY)
    assert data["license"]["display"] == "10 / 1000"


async def test_revoked_token_changes_nothing(client, make_district, service):
    district = await make_district(active=10, threshold=50)
    token_id = token_row_id(service, district.manager_token)
    with service.database.write() as session:
        assert revoke_token(
            session, district_id=district.id, token_id=token_id, now=service.clock()
        )

    response = await graphql(client, district.manager_token, SET_THRESHOLD, {"value": 10})

    assert_unauthenticated(response)
    assert "revoked" in response.json()["errors"][0]["message"]
    data = await graphql_data(
        client, district.viewer_token, "{ license { display } alerts { kind } }"
    )
    assert data == {"license": {"display": "10 / 1000"}, "alerts": []}
    with service.database.read() as session:
        stored = session.get(LicenseSettings, district.id)
    assert stored.students_remaining_threshold == 50


async def test_revoking_a_token_of_another_district_is_refused(client, make_district, service):
    a = await make_district("alpha", active=10)
    b = await make_district("beta", active=20)

    token_id = token_row_id(service, b.viewer_token)
    with service.database.write() as session:
        assert not revoke_token(session, district_id=a.id, token_id=token_id, now=service.clock())

    data = await graphql_data(client, b.viewer_token, LICENSE_QUERY)
    assert data["license"]["display"] == "20 / 1000"


async def test_tokens_are_stored_only_as_a_hash(make_district, service):
    district = await make_district(active=10)
    secrets = [district.manager_token, district.viewer_token]

    with service.database.read() as session:
        rows = session.exec(select(ApiToken).where(ApiToken.district_id == district.id)).all()
        stored = [
            [str(value) for value in row.model_dump().values() if value is not None] for row in rows
        ]

    assert len(rows) == 2
    for secret in secrets:
        random_part = secret.split("_", 1)[-1]
        for values in stored:
            for value in values:
                assert secret not in value
                assert random_part not in value
        assert hash_token(secret) in {row.token_hash for row in rows}

    # Nothing else in the database holds a token either: no row of any table, and on SQLite
    # not a byte of the file.
    with service.database.read() as session:
        contents = "\n".join(
            repr(row) for table in metadata.sorted_tables for row in session.execute(table.select())
        ).encode()
    if service.database.is_sqlite:
        database_path = service.settings.database_url.removeprefix("sqlite:///")
        with open(database_path, "rb") as raw:
            contents += raw.read()
    for secret in secrets:
        assert secret.encode() not in contents
        assert secret.split("_", 1)[-1].encode() not in contents


async def test_tokens_carry_at_least_32_random_bytes(make_district):
    first = await make_district("alpha")
    second = await make_district("beta")
    secrets = [first.manager_token, first.viewer_token, second.manager_token, second.viewer_token]

    assert len(set(secrets)) == len(secrets)
    for secret in secrets:
        prefix, _, random_part = secret.partition("_")
        assert prefix == "m1t1"
        assert re.fullmatch(r"[A-Za-z0-9_-]+", random_part), secret
        decoded = base64.urlsafe_b64decode(random_part + "=" * (-len(random_part) % 4))
        assert len(decoded) >= 32


@pytest.mark.parametrize("field", sorted(READ_ONLY_QUERIES))
async def test_viewer_token_can_read(client, make_district, field):
    district = await make_district(seats=1000, active=960, threshold=50)

    data = await graphql_data(client, district.viewer_token, READ_ONLY_QUERIES[field])

    assert data[field]


async def test_viewer_token_reads_the_right_numbers(client, make_district):
    district = await make_district(seats=1000, active=960, threshold=50)

    data = await graphql_data(
        client,
        district.viewer_token,
        "{ license { display } usage { activeStudents } alerts { kind }"
        " licenseCheck { allowed reason } }",
    )

    assert data == {
        "license": {"display": "960 / 1000"},
        "usage": {"activeStudents": 960},
        "alerts": [{"kind": "LICENSES_LOW"}],
        "licenseCheck": {"allowed": True, "reason": "OK"},
    }


def assert_forbidden(response, field: str) -> None:
    assert response.status_code == 200, response.text
    body = response.json()
    errors = body["errors"]
    assert [error["extensions"]["code"] for error in errors] == ["FORBIDDEN"]
    assert errors[0]["path"] == [field]
    assert "MANAGE_SETTINGS" in errors[0]["message"]
    assert "Traceback" not in response.text
    assert body["data"] is None or body["data"].get(field) is None


async def test_viewer_token_may_not_set_the_threshold(client, make_district, service):
    district = await make_district(seats=1000, active=960, threshold=50)

    response = await graphql(client, district.viewer_token, SET_THRESHOLD, {"value": 10})

    assert_forbidden(response, "setThreshold")
    data = await graphql_data(client, district.manager_token, SETTINGS_QUERY)
    assert data["licenseSettings"]["studentsRemainingThreshold"] == 50
    # Still yellow: a threshold of 10 would have cleared the alert.
    alerts = await graphql_data(client, district.manager_token, "{ alerts { kind } }")
    assert alerts["alerts"] == [{"kind": "LICENSES_LOW"}]


async def test_viewer_token_may_not_force_a_license_update(client, make_district, issuer):
    district = await make_district(seats=1000, active=10)
    issuer.write(district.slug, seats=2000)

    response = await graphql(client, district.viewer_token, FORCE_UPDATE)

    assert_forbidden(response, "forceLicenseUpdate")
    data = await graphql_data(client, district.manager_token, "{ license { total } }")
    assert data["license"]["total"] == 1000


async def test_viewer_token_may_not_read_license_settings(client, make_district):
    district = await make_district(active=10)

    response = await graphql(client, district.viewer_token, SETTINGS_QUERY)

    assert_forbidden(response, "licenseSettings")


async def test_forbidden_field_in_a_mixed_query_leaks_nothing(client, make_district):
    district = await make_district(active=10)

    response = await graphql(
        client,
        district.viewer_token,
        "{ license { display } licenseSettings { studentsRemainingThreshold } }",
    )

    body = response.json()
    assert [error["extensions"]["code"] for error in body["errors"]] == ["FORBIDDEN"]
    # licenseSettings is non-null, so the whole data nulls out; nothing leaks either way.
    assert body["data"] is None or body["data"]["license"] == {"display": "10 / 1000"}


async def test_manager_token_can_do_everything(client, make_district, issuer):
    district = await make_district(seats=1000, active=960, threshold=50)

    for field, query in READ_ONLY_QUERIES.items():
        assert (await graphql_data(client, district.manager_token, query))[field]

    settings = await graphql_data(client, district.manager_token, SETTINGS_QUERY)
    assert settings["licenseSettings"] == {
        "studentsRemainingThreshold": 50,
        "recommendedThresholdMin": 50,
        "recommendedThresholdMax": 100,
    }

    changed = await graphql_data(client, district.manager_token, SET_THRESHOLD, {"value": 30})
    assert changed["setThreshold"] == {
        "licenseSettings": {"studentsRemainingThreshold": 30},
        "errors": [],
    }
    assert (await graphql_data(client, district.manager_token, "{ alerts { kind } }"))[
        "alerts"
    ] == []

    issuer.write(district.slug, seats=2000)
    forced = await graphql_data(client, district.manager_token, FORCE_UPDATE)
    assert forced["forceLicenseUpdate"]["errors"] == []
    assert forced["forceLicenseUpdate"]["updated"] is True
    data = await graphql_data(client, district.manager_token, "{ license { display } }")
    assert data["license"]["display"] == "960 / 2000"
