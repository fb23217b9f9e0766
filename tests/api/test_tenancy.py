"""One district per token: a caller sees and changes only its own district, and cannot name another."""

from __future__ import annotations

import re
from typing import Any

import pytest
import strawberry
from sqlmodel import select

from db.models import Alert, AuditEvent, License, LicenseSettings
from tests.utils.graphql import graphql, graphql_data

pytestmark = pytest.mark.anyio

EVERYTHING = """
{
  license { status used total remaining overage display level accessLevel }
  usage { activeStudents inactiveStudents staff devices }
  alerts(includeResolved: true) { kind message }
  licenseSettings { studentsRemainingThreshold recommendedThresholdMin recommendedThresholdMax }
  licenseCheck(additionalStudents: 30) { allowed reason }
}
"""
READABLE_BY_VIEWER = "\n".join(
    line for line in EVERYTHING.splitlines() if "licenseSettings" not in line
)
SET_THRESHOLD = """
mutation Set($value: Int!) {
  setThreshold(studentsRemaining: $value) { licenseSettings { studentsRemainingThreshold } errors { code } }
}
"""
FORCE_UPDATE = """
mutation { forceLicenseUpdate { license { total } updated throttled retryAfterSeconds errors { code } } }
"""


@pytest.fixture
async def two_districts(make_district):
    a = await make_district("alpha", seats=1000, active=960, threshold=50, devices=7)
    b = await make_district("beta", seats=300, active=120, threshold=25, devices=2)
    return a, b


def rows_of(service, district_id: int) -> dict[str, Any]:
    """Everything stored about a district that the API's mutations could touch."""
    with service.database.read() as session:
        return {
            "license": session.exec(select(License).where(License.district_id == district_id))
            .one()
            .model_dump(),
            "settings": session.get(LicenseSettings, district_id).model_dump(),
            "alerts": [
                row.model_dump()
                for row in session.exec(
                    select(Alert).where(Alert.district_id == district_id).order_by(Alert.id)
                )
            ],
            "audit": [
                row.model_dump()
                for row in session.exec(
                    select(AuditEvent)
                    .where(AuditEvent.district_id == district_id)
                    .order_by(AuditEvent.id)
                )
            ],
        }


async def test_each_token_reads_only_its_own_district(client, two_districts):
    a, b = two_districts

    for token in (a.manager_token, a.viewer_token):
        data = await graphql_data(client, token, READABLE_BY_VIEWER)
        assert data["license"]["display"] == "960 / 1000"
        assert data["usage"] == {
            "activeStudents": 960,
            "inactiveStudents": 0,
            "staff": 0,
            "devices": 7,
        }
        assert [alert["kind"] for alert in data["alerts"]] == ["LICENSES_LOW"]
        assert data["alerts"][0]["message"].startswith("You have 40 licenses remaining.")
        assert data["licenseCheck"] == {"allowed": True, "reason": "OK"}

    a_data = await graphql_data(client, a.manager_token, EVERYTHING)
    assert a_data["licenseSettings"]["studentsRemainingThreshold"] == 50

    b_data = await graphql_data(client, b.manager_token, EVERYTHING)
    assert b_data["license"]["display"] == "120 / 300"
    assert b_data["license"]["level"] == "GREEN"
    assert b_data["usage"]["activeStudents"] == 120
    assert b_data["usage"]["devices"] == 2
    assert b_data["alerts"] == []
    assert b_data["licenseSettings"] == {
        "studentsRemainingThreshold": 25,
        "recommendedThresholdMin": 25,
        "recommendedThresholdMax": 50,
    }


async def test_license_check_answers_for_the_callers_district(client, make_district):
    a = await make_district("alpha", seats=100, active=100)
    b = await make_district("beta", seats=1000, active=10)
    query = "{ licenseCheck(additionalStudents: 5) { allowed reason } }"

    assert (await graphql_data(client, a.viewer_token, query))["licenseCheck"] == {
        "allowed": False,
        "reason": "OVER_LIMIT",
    }
    assert (await graphql_data(client, b.viewer_token, query))["licenseCheck"] == {
        "allowed": True,
        "reason": "OK",
    }


async def test_set_threshold_with_a_token_never_changes_another_district(
    client, two_districts, service
):
    a, b = two_districts
    before = rows_of(service, b.id)
    b_before = await graphql_data(client, b.manager_token, EVERYTHING)

    changed = await graphql_data(client, a.manager_token, SET_THRESHOLD, {"value": 20})
    assert changed["setThreshold"]["errors"] == []
    # Refused (above A's 1000 seats): still audited, and only against A.
    refused = await graphql_data(client, a.manager_token, SET_THRESHOLD, {"value": 5000})
    assert [error["code"] for error in refused["setThreshold"]["errors"]] != []
    # 500 is too high for B's 300 seats but valid for A's: A's limit applies.
    valid_for_a = await graphql_data(client, a.manager_token, SET_THRESHOLD, {"value": 500})
    assert valid_for_a["setThreshold"]["errors"] == []

    assert rows_of(service, b.id) == before
    assert await graphql_data(client, b.manager_token, EVERYTHING) == b_before
    a_after = await graphql_data(client, a.manager_token, EVERYTHING)
    assert a_after["licenseSettings"]["studentsRemainingThreshold"] == 500


async def test_set_threshold_is_audited_against_the_callers_district_only(
    client, two_districts, service
):
    a, b = two_districts

    await graphql_data(client, a.manager_token, SET_THRESHOLD, {"value": 20})

    with service.database.read() as session:
        a_audit = session.exec(select(AuditEvent).where(AuditEvent.district_id == a.id)).all()
        b_audit = session.exec(select(AuditEvent).where(AuditEvent.district_id == b.id)).all()
    assert [event.action for event in a_audit if event.action == "set_threshold"] == [
        "set_threshold"
    ]
    assert all(event.action != "set_threshold" for event in b_audit)


async def test_force_update_with_a_token_never_changes_another_district(
    client, two_districts, service, issuer
):
    a, b = two_districts
    # New license files are waiting for both districts; only the caller's is fetched.
    issuer.write(a.slug, seats=2000)
    issuer.write(b.slug, seats=100)
    before = rows_of(service, b.id)
    b_before = await graphql_data(client, b.manager_token, EVERYTHING)

    forced = await graphql_data(client, a.manager_token, FORCE_UPDATE)

    assert forced["forceLicenseUpdate"]["license"] == {"total": 2000}
    assert forced["forceLicenseUpdate"]["updated"] is True
    assert rows_of(service, b.id) == before
    assert await graphql_data(client, b.manager_token, EVERYTHING) == b_before
    assert b_before["license"]["total"] == 300
    assert b_before["alerts"] == []


async def test_force_update_cooldown_is_per_district(client, two_districts, issuer):
    a, b = two_districts

    first = await graphql_data(client, a.manager_token, FORCE_UPDATE)
    again = await graphql_data(client, a.manager_token, FORCE_UPDATE)
    assert first["forceLicenseUpdate"]["throttled"] is False
    assert again["forceLicenseUpdate"]["throttled"] is True

    issuer.write(b.slug, seats=400)
    other = await graphql_data(client, b.manager_token, FORCE_UPDATE)
    assert other["forceLicenseUpdate"]["throttled"] is False
    assert other["forceLicenseUpdate"]["license"] == {"total": 400}


async def test_variables_naming_another_district_are_ignored(client, two_districts):
    a, b = two_districts

    response = await graphql(
        client,
        a.viewer_token,
        "{ license { display } }",
        {"district": b.slug, "districtId": b.id, "slug": b.slug},
    )

    assert response.status_code == 200
    assert response.json()["data"]["license"]["display"] == "960 / 1000"


async def test_a_district_argument_is_rejected_by_validation(client, two_districts):
    a, b = two_districts

    for query in (
        f'{{ license(district: "{b.slug}") {{ display }} }}',
        f"{{ license(districtId: {b.id}) {{ display }} }}",
        f'{{ usage(slug: "{b.slug}") {{ activeStudents }} }}',
    ):
        response = await graphql(client, a.viewer_token, query)
        body = response.json()
        assert body.get("data") is None
        assert "Unknown argument" in body["errors"][0]["message"]


# --- No argument in the schema lets a caller name a district -----------------------------------

INTROSPECTION = """
{
  __schema {
    queryType { name }
    mutationType { name }
    subscriptionType { name }
    types {
      name
      kind
      fields(includeDeprecated: true) { name args(includeDeprecated: true) { name } }
      inputFields(includeDeprecated: true) { name }
    }
  }
}
"""

# Anything that could name, select or switch a district (or tenant) is forbidden as an input.
FORBIDDEN_INPUT = re.compile(r"district|slug|tenant|organi[sz]ation|^org(id)?$", re.IGNORECASE)
# Root fields that would hand out other districts' data ("districts", "allLicenses" ...).
FORBIDDEN_ROOT_FIELD = re.compile(r"district|slug|tenant|^all[A-Z]", re.IGNORECASE)


def district_selectors(schema: dict[str, Any]) -> list[str]:
    """Every way the introspected schema lets a caller name a district: empty when there is none."""
    found: list[str] = []
    roots = {
        (schema.get(kind) or {}).get("name")
        for kind in ("queryType", "mutationType", "subscriptionType")
    } - {None}
    for type_ in schema["types"]:
        if type_["name"].startswith("__"):
            continue
        for field in type_["fields"] or []:
            if type_["name"] in roots and FORBIDDEN_ROOT_FIELD.search(field["name"]):
                found.append(f"root field {type_['name']}.{field['name']}")
            for arg in field["args"]:
                if FORBIDDEN_INPUT.search(arg["name"]):
                    found.append(f"argument {type_['name']}.{field['name']}({arg['name']})")
        for input_field in type_["inputFields"] or []:
            if FORBIDDEN_INPUT.search(input_field["name"]):
                found.append(f"input field {type_['name']}.{input_field['name']}")
    return found


async def test_no_argument_anywhere_names_a_district(client, make_district):
    district = await make_district()

    data = await graphql_data(client, district.manager_token, INTROSPECTION)
    schema = data["__schema"]

    # The walk really covers the roots and their arguments.
    by_name = {type_["name"]: type_ for type_ in schema["types"]}
    query_fields = {field["name"] for field in by_name[schema["queryType"]["name"]]["fields"]}
    mutation_fields = {field["name"] for field in by_name[schema["mutationType"]["name"]]["fields"]}
    assert {"license", "usage", "alerts", "licenseSettings", "licenseCheck"} <= query_fields
    assert {"setThreshold", "forceLicenseUpdate"} <= mutation_fields
    all_args = {
        arg["name"]
        for type_ in schema["types"]
        for field in type_["fields"] or []
        for arg in field["args"]
    }
    assert {"studentsRemaining", "additionalStudents", "placement"} <= all_args

    assert district_selectors(schema) == []


@strawberry.input(name="Where")
class _Where:
    district_id: int | None = None


@strawberry.type(name="Query")
class _QueryWithSelectors:
    @strawberry.field
    def license(self, slug: str | None = None) -> int:
        return 0

    @strawberry.field
    def filtered(self, where: _Where | None = None) -> int:
        return 0

    @strawberry.field
    def districts(self) -> list[int]:
        return []


@strawberry.type(name="Mutation")
class _MutationWithSelectors:
    @strawberry.mutation
    def set_threshold(self, students_remaining: int, district: str | None = None) -> int:
        return 0


def test_the_district_argument_check_catches_one_added_later():
    """The check above fails as soon as someone adds a district selector anywhere."""
    from graphql import introspection_from_schema

    from graph.schema import build_schema
    from graph.strawberry_compat import graphql_core_schema

    bad = strawberry.Schema(query=_QueryWithSelectors, mutation=_MutationWithSelectors)
    assert sorted(district_selectors(bad.introspect()["__schema"])) == [
        "argument Mutation.setThreshold(district)",
        "argument Query.license(slug)",
        "input field Where.districtId",
        "root field Query.districts",
    ]

    real = introspection_from_schema(graphql_core_schema(build_schema()))["__schema"]
    assert district_selectors(real) == []
