"""The demo district is the product doc's "Approaching License Limit" scenario."""

from __future__ import annotations

import pytest
from sqlmodel import select

from app.demo import create_demo, demo_paths
from db.models import District
from licensing.storage.tokens import Permission
from tests.utils.districts import token_for
from tests.utils.graphql import graphql_data

pytestmark = pytest.mark.anyio


@pytest.fixture
async def demo_token(service):
    await create_demo(service)
    with service.database.read() as session:
        district = session.exec(select(District).where(District.slug == "demo")).one()
    return token_for(service, district.id, Permission.MANAGE_SETTINGS)


async def test_demo_shows_960_of_1000_with_the_low_licenses_alert(client, demo_token):
    data = await graphql_data(
        client,
        demo_token,
        """{ license { display level status licensedTo legalEntityName accessLevel }
             usage { activeStudents inactiveStudents staff devices }
             alerts(placement: LICENSE_BANNER) { kind message }
             licenseSettings { studentsRemainingThreshold } }""",
    )

    assert data["license"]["display"] == "960 / 1000"
    assert data["license"]["level"] == "YELLOW"
    assert data["license"]["status"] == "ACTIVE"
    assert data["license"]["accessLevel"] == "FULL"
    assert data["license"]["licensedTo"] != data["license"]["legalEntityName"]
    assert data["usage"]["activeStudents"] == 960
    assert data["usage"]["staff"] > 0
    assert data["usage"]["inactiveStudents"] > 0
    assert data["usage"]["devices"] > 960
    assert data["alerts"] == [
        {
            "kind": "LICENSES_LOW",
            "message": "You have 40 licenses remaining. Consider purchasing additional licenses.",
        }
    ]
    assert data["licenseSettings"]["studentsRemainingThreshold"] == 50


async def test_demo_license_is_a_real_signed_file(service, demo_token):
    paths = demo_paths(service.settings)
    assert paths.public_key.exists()
    assert service.settings.license_file_for("demo").exists()
    # The signing key is private to its owner.
    assert paths.signing_key.stat().st_mode & 0o077 == 0
