"""The dashboard query through the real app: license, usage and alerts as the product doc shows them."""

from __future__ import annotations

import pytest

from plugins.records import StudentRecord
from tests.utils.districts import students
from tests.utils.graphql import graphql, graphql_data

pytestmark = pytest.mark.anyio

DASHBOARD = """
{
  license { status licensedTo legalEntityName used total remaining overage display level
            accessLevel createdAt expiresAt daysUntilExpiration stale }
  usage { activeStudents inactiveStudents staff devices }
  alerts { id kind severity message placements raisedAt resolvedAt }
}
"""


async def test_approaching_license_limit_scenario(client, make_district):
    """1000 licenses, 960 used, threshold 50: yellow, 40 remaining, the exact alert message."""
    district = await make_district(seats=1000, active=960, threshold=50)

    data = await graphql_data(client, district.manager_token, DASHBOARD)

    license = data["license"]
    assert license["display"] == "960 / 1000"
    assert (license["used"], license["total"], license["remaining"]) == (960, 1000, 40)
    assert license["level"] == "YELLOW"
    assert license["status"] == "ACTIVE"
    assert [alert["message"] for alert in data["alerts"]] == [
        "You have 40 licenses remaining. Consider purchasing additional licenses."
    ]
    assert data["alerts"][0]["placements"] == ["DASHBOARD", "LICENSE_BANNER", "SYSTEM_INDICATOR"]


async def test_487_of_1000_leaves_513_and_is_green(client, make_district):
    district = await make_district(seats=1000, active=487)

    data = await graphql_data(client, district.viewer_token, DASHBOARD)

    assert data["license"]["display"] == "487 / 1000"
    assert data["license"]["remaining"] == 513
    assert data["license"]["level"] == "GREEN"
    assert data["alerts"] == []


async def test_alerts_start_at_950_of_1000_with_threshold_50(client, make_district, service):
    district = await make_district(seats=1000, active=949, threshold=50)
    assert (await graphql_data(client, district.viewer_token, DASHBOARD))["alerts"] == []

    from licensing.storage.roster_changes import apply_roster

    with service.database.write() as session:
        apply_roster(
            session,
            district_id=district.id,
            source="local",
            records=students(1, start=5000),
            replace=False,
            now=service.clock(),
        )

    data = await graphql_data(client, district.viewer_token, DASHBOARD)
    assert data["license"]["display"] == "950 / 1000"
    assert data["license"]["level"] == "YELLOW"
    assert [alert["kind"] for alert in data["alerts"]] == ["LICENSES_LOW"]
    assert data["alerts"][0]["message"].startswith("You have 50 licenses remaining.")


async def test_1000_of_1000_is_red_with_limit_reached(client, make_district):
    district = await make_district(seats=1000, active=1000)

    data = await graphql_data(client, district.viewer_token, DASHBOARD)

    assert data["license"]["level"] == "RED"
    assert data["license"]["remaining"] == 0
    assert [alert["kind"] for alert in data["alerts"]] == ["LICENSE_LIMIT_REACHED"]


async def test_license_count_seems_wrong_only_active_students_count(client, make_district):
    """Staff, inactive students and devices never count; a student in two schools counts once."""
    roster = [
        *students(40, prefix="staff-", role="teacher"),
        *students(30, prefix="grad-", status="graduated"),
        *students(10, prefix="moved-", status="transferred"),
        *students(5, prefix="off-", enabled=False),
        # The same student reported by two schools under two records sharing a person key.
        StudentRecord(source_id="twin-a", person_key="person-7", schools=("North",)),
        StudentRecord(source_id="twin-b", person_key="person-7", schools=("South",)),
    ]
    district = await make_district(seats=100, active=20, roster=roster, devices=300)

    data = await graphql_data(client, district.viewer_token, DASHBOARD)

    assert data["license"]["used"] == 21
    assert data["usage"] == {
        "activeStudents": 21,
        "inactiveStudents": 45,
        "staff": 40,
        "devices": 300,
    }


async def test_get_is_allowed_for_queries(client, make_district):
    district = await make_district(active=10)

    response = await client.get(
        "/graphql",
        params={"query": "{ license { display } }"},
        headers={"Authorization": f"Bearer {district.viewer_token}"},
    )

    assert response.status_code == 200
    assert response.json()["data"]["license"]["display"] == "10 / 1000"


async def test_mutations_are_refused_over_get(client, make_district):
    district = await make_district(active=10)

    response = await client.get(
        "/graphql",
        params={"query": "mutation { setThreshold(studentsRemaining: 10) { errors { code } } }"},
        headers={"Authorization": f"Bearer {district.manager_token}"},
    )

    assert response.status_code in (400, 405)
    settings = await graphql_data(
        client, district.manager_token, "{ licenseSettings { studentsRemainingThreshold } }"
    )
    assert settings["licenseSettings"]["studentsRemainingThreshold"] == 50


async def test_no_license_yet_is_said_without_an_error(client, service):
    from licensing.storage.tokens import Permission
    from tests.utils.districts import create_district, token_for

    district_id = create_district(service, slug="new")
    token = token_for(service, district_id, Permission.VIEW_LICENSE)

    response = await graphql(client, token, "{ license { display } licenseUnavailable { reason } }")

    assert response.status_code == 200
    body = response.json()
    assert "errors" not in body
    assert body["data"] == {"license": None, "licenseUnavailable": {"reason": "NOT_REQUESTED"}}
