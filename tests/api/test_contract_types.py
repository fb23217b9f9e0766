"""The contract's types: closed sets of values are enums, recorded values are JSON, a district
without a license still gets its data (license null, and why), and `viewer` says who is calling."""

from __future__ import annotations

import pytest

from graph.auth import SESSION_COOKIE
from licensing.storage.tokens import Permission
from tests.utils.districts import create_district, students, token_for
from tests.utils.graphql import graphql, graphql_data

pytestmark = pytest.mark.anyio

TAB = {"X-Requested-With": "licensing-tab"}

FIELD_TYPES = """query($name: String!) { __type(name: $name) {
  fields { name type { kind name ofType { kind name ofType { kind name ofType { kind name } } } } }
} }"""


def named_type(type_ref: dict) -> tuple[str, str]:
    """The kind and name under any NON_NULL and LIST wrappers."""
    while type_ref["kind"] in ("NON_NULL", "LIST"):
        type_ref = type_ref["ofType"]
    return type_ref["kind"], type_ref["name"]


@pytest.mark.parametrize(
    ("type_name", "field", "expected"),
    [
        ("Alert", "kind", ("ENUM", "AlertKind")),
        ("AuditEvent", "action", ("ENUM", "AuditAction")),
        ("AuditEvent", "outcome", ("ENUM", "AuditOutcome")),
        ("AuditEvent", "oldValue", ("SCALAR", "JSON")),
        ("AuditEvent", "newValue", ("SCALAR", "JSON")),
        ("License", "lastSyncStatus", ("ENUM", "LicenseSyncStatus")),
        ("DataSource", "lastStatus", ("ENUM", "SyncRunStatus")),
        ("DataSource", "lastSyncMode", ("ENUM", "SyncMode")),
        ("DataSource", "kind", ("SCALAR", "String")),  # open: plugins add kinds
        ("RosterStatus", "state", ("ENUM", "RosterState")),
        ("ConfirmRosterSyncPayload", "status", ("ENUM", "SyncRunStatus")),
        ("ScheduledJob", "kind", ("ENUM", "ScheduledJobKind")),
        ("ScheduledJob", "lastOutcome", ("ENUM", "ScheduledJobOutcome")),
        ("ActiveStudent", "role", ("ENUM", "RosterRole")),
        ("ActiveStudent", "status", ("ENUM", "EnrollmentStatus")),
        ("UserError", "code", ("ENUM", "ErrorCode")),
        ("ApiToken", "permissions", ("ENUM", "Permission")),
        ("LicenseUnavailable", "reason", ("ENUM", "LicenseUnavailableReason")),
        ("License", "expiresAt", ("SCALAR", "Date")),
        ("Alert", "raisedAt", ("SCALAR", "DateTime")),
    ],
)
async def test_the_schema_types_each_closed_set_as_an_enum(
    client, make_district, type_name, field, expected
):
    district = await make_district()

    data = await graphql_data(client, district.viewer_token, FIELD_TYPES, {"name": type_name})

    fields = {entry["name"]: entry["type"] for entry in data["__type"]["fields"]}
    assert named_type(fields[field]) == expected


ALL_OF_THE_TAB = """{
  license { display }
  licenseUnavailable { reason message lastAttemptAt lastError }
  usage { activeStudents staff }
  alerts { kind }
  licenseSettings { studentsRemainingThreshold maximumThreshold }
  licenseCheck(additionalStudents: 1) { allowed reason }
  forecast { explanation }
  viewer { district { slug } }
}"""


async def test_a_district_without_a_license_gets_its_data_with_license_null_and_why(
    client, service
):
    district_id = create_district(service, slug="new", roster=students(12))
    token = token_for(service, district_id, Permission.MANAGE_SETTINGS)

    response = await graphql(client, token, ALL_OF_THE_TAB)

    body = response.json()
    assert response.status_code == 200
    assert "errors" not in body, body["errors"]
    data = body["data"]
    assert data["license"] is None
    unavailable = data["licenseUnavailable"]
    assert (unavailable["reason"], unavailable["lastAttemptAt"]) == ("NOT_REQUESTED", None)
    assert unavailable["message"].startswith("No license has been received for this district")
    assert "Force License Update" in unavailable["message"]
    assert data["usage"]["activeStudents"] == 12
    assert data["licenseSettings"]["studentsRemainingThreshold"] == 50
    assert data["licenseCheck"] == {"allowed": False, "reason": "NO_LICENSE"}
    assert data["forecast"] is None  # no limit to project
    assert data["viewer"]["district"]["slug"] == "new"


async def test_a_failed_license_request_is_the_reason_given(client, service):
    district_id = create_district(service, slug="new", roster=students(3))
    token = token_for(service, district_id, Permission.MANAGE_SETTINGS)

    pressed = await graphql_data(
        client,
        token,
        "mutation { forceLicenseUpdate { updated license { display } errors { code message } } }",
    )
    after = await graphql_data(client, token, ALL_OF_THE_TAB)

    payload = pressed["forceLicenseUpdate"]
    assert payload["license"] is None and payload["updated"] is False
    [error] = payload["errors"]
    unavailable = after["licenseUnavailable"]
    assert unavailable["reason"] == "UPDATE_FAILED"
    assert unavailable["lastAttemptAt"] is not None
    assert unavailable["lastError"] == error["message"]
    assert error["message"].rstrip(".") in unavailable["message"]
    assert str(service.settings.data_dir) not in unavailable["message"]
    assert after["license"] is None and after["usage"]["activeStudents"] == 3


async def test_setting_the_threshold_without_a_license_is_answered_in_the_payload(client, service):
    district_id = create_district(service, slug="new")
    token = token_for(service, district_id, Permission.MANAGE_SETTINGS)

    data = await graphql_data(
        client,
        token,
        "mutation { setThreshold(studentsRemaining: 10) { licenseSettings "
        "{ studentsRemainingThreshold } license { display } errors { code } } }",
    )

    assert data["setThreshold"] == {
        "licenseSettings": {"studentsRemainingThreshold": 50},
        "license": None,
        "errors": [{"code": "LICENSE_NOT_AVAILABLE"}],
    }


async def test_with_a_license_there_is_no_reason(client, make_district):
    district = await make_district(active=5)

    data = await graphql_data(
        client, district.viewer_token, "{ license { display } licenseUnavailable { reason } }"
    )

    assert data == {"license": {"display": "5 / 1000"}, "licenseUnavailable": None}


async def test_a_field_the_token_may_not_read_is_null_and_the_rest_still_answers(
    client, make_district
):
    district = await make_district(active=5)

    response = await graphql(
        client,
        district.viewer_token,
        "{ license { display } usage { activeStudents } "
        "licenseSettings { studentsRemainingThreshold } dataSources { name } "
        "licenseCheck(additionalStudents: -1) { allowed } }",
    )

    body = response.json()
    assert body["data"] == {
        "license": {"display": "5 / 1000"},
        "usage": {"activeStudents": 5},
        "licenseSettings": None,
        "dataSources": None,
        "licenseCheck": None,
    }
    codes = {tuple(error["path"]): error["extensions"]["code"] for error in body["errors"]}
    assert codes == {
        ("licenseSettings",): "FORBIDDEN",
        ("dataSources",): "FORBIDDEN",
        ("licenseCheck",): "INVALID_ADDITIONAL_STUDENTS",
    }


VIEWER = "{ viewer { district { slug name timeZone } token { name permissions expiresAt } } }"


async def test_viewer_for_a_bearer_token(client, service):
    district_id = create_district(
        service, slug="riverside", name="Riverside Unified", time_zone="America/Chicago"
    )
    manager = token_for(service, district_id, Permission.MANAGE_SETTINGS, name="admin console")
    viewer = token_for(service, district_id, Permission.VIEW_LICENSE, name="monitoring")

    as_manager = await graphql_data(client, manager, VIEWER)
    as_viewer = await graphql_data(client, viewer, VIEWER)

    district = {"slug": "riverside", "name": "Riverside Unified", "timeZone": "America/Chicago"}
    assert as_manager["viewer"] == {
        "district": district,
        "token": {
            "name": "admin console",
            "permissions": ["MANAGE_SETTINGS", "VIEW_LICENSE"],  # with what it implies
            "expiresAt": None,
        },
    }
    assert as_viewer["viewer"] == {
        "district": district,
        "token": {"name": "monitoring", "permissions": ["VIEW_LICENSE"], "expiresAt": None},
    }


async def test_viewer_for_the_tabs_session_is_the_token_that_signed_in(client, service):
    district_id = create_district(service, slug="riverside", name="Riverside Unified")
    token = token_for(service, district_id, Permission.VIEW_LICENSE, name="front office")
    signed_in = await client.post("/session", json={"token": token}, headers=TAB)
    assert signed_in.status_code == 200, signed_in.text
    assert client.cookies.get(SESSION_COOKIE)

    response = await client.post("/graphql", json={"query": VIEWER}, headers=TAB)

    assert response.status_code == 200, response.text
    assert response.json()["data"]["viewer"]["token"] == {
        "name": "front office",
        "permissions": ["VIEW_LICENSE"],
        "expiresAt": None,
    }
    assert response.json()["data"]["viewer"]["district"]["slug"] == "riverside"


async def test_enum_values_reach_the_client_as_names(client, make_district):
    district = await make_district(active=3)

    data = await graphql_data(
        client,
        district.manager_token,
        "{ license { lastSyncStatus } dataSources { name lastStatus lastSyncMode } "
        "activeStudents(first: 1) { edges { node { role status } } } }",
    )

    assert data["license"] == {"lastSyncStatus": "UPDATED"}
    assert data["dataSources"] == [
        {"name": "local", "lastStatus": "APPLIED", "lastSyncMode": "FULL"}
    ]
    assert data["activeStudents"]["edges"][0]["node"] == {"role": "STUDENT", "status": "ACTIVE"}
