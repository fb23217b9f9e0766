"""OneRoster REST vendor profiles against servers on 127.0.0.1 that behave as each vendor's does:
where the token endpoint is and how it takes the credentials, the URL layout an administrator
pastes, and the quirks (PowerSchool refuses Basic, Infinite Campus serves under /campus/api,
Aeries needs its load balancer's cookie)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

import pytest

from licensing.orchestration.plugin_host import plugin_host
from licensing.settings import HttpSettings, Settings
from licensing.storage.roster import collect_records
from plugins.builtin.oneroster_rest import (
    OneRosterConfig,
    OneRosterRestOptions,
    OneRosterRestSource,
)
from plugins.records import DistrictRef, ServerCount, SourceError
from tests.fakes.oneroster_server import FakeOneRoster, numbered_students
from tests.fakes.serve import serve

pytestmark = pytest.mark.anyio

RIVERSIDE = DistrictRef(slug="riverside", official_name="Test District", time_zone="UTC")
CAMPUS_V1P2 = "/campus/api/ims/oneroster/rostering/v1p2"
CAMPUS_V1P1 = "/campus/api/ims/oneroster/v1p1"


@pytest.fixture
def source(tmp_path: Any) -> OneRosterRestSource:
    settings = Settings(
        data_dir=tmp_path / "data",
        http=HttpSettings(
            connect_timeout_seconds=2,
            read_timeout_seconds=5,
            attempt_deadline_seconds=5,
            retries=2,
            backoff_seconds=0.01,
            max_backoff_seconds=2,
        ),
    )
    return OneRosterRestSource(plugin_host(settings))


def running(fake: FakeOneRoster) -> AbstractContextManager[str]:
    return serve(fake.app)


def credentials(fake: FakeOneRoster, **extra: Any) -> dict[str, Any]:
    return {"client_id": fake.client_id, "client_secret": fake.client_secret, **extra}


async def fetch(source: OneRosterRestSource, opts: dict[str, Any]) -> list[Any]:
    items = await collect_records(source.fetch_students(district=RIVERSIDE, options=opts))
    return [item for item in items if not isinstance(item, ServerCount)]


def token_requests(fake: FakeOneRoster) -> list[Any]:
    return [seen for seen in fake.requests if seen.method == "POST"]


# PowerSchool: the credentials go in the form body; its token endpoint refuses HTTP Basic.


def powerschool() -> FakeOneRoster:
    return FakeOneRoster(client_auth="post", token_path="/as/token.oauth2")


async def test_powerschool_profile_sends_the_credentials_in_the_body(source):
    fake = powerschool()
    with running(fake) as url:
        records = await fetch(
            source,
            credentials(
                fake, profile="powerschool", base_url=url, token_url=f"{url}/as/token.oauth2"
            ),
        )

    assert len(records) == 8
    assert [seen.status for seen in token_requests(fake)] == [200]


async def test_basic_credentials_refused_by_a_powerschool_endpoint_say_what_to_change(source):
    fake = powerschool()
    with running(fake) as url, pytest.raises(SourceError) as raised:
        await fetch(source, credentials(fake, base_url=url, token_url=f"{url}/as/token.oauth2"))

    message = str(raised.value)
    assert "refused the client id and secret, sent in HTTP Basic authentication" in message
    assert 'token_endpoint_auth_method = "client_secret_post"' in message
    assert fake.client_secret not in message
    assert fake.offsets() == []


async def test_token_endpoint_auth_method_overrides_the_profile(source):
    fake = powerschool()
    with running(fake) as url:
        records = await fetch(
            source,
            credentials(
                fake,
                base_url=url,
                token_url=f"{url}/as/token.oauth2",
                token_endpoint_auth_method="client_secret_post",
            ),
        )
    assert len(records) == 8


def test_powerschool_profile_uses_the_token_endpoint_powerschool_documents():
    options = OneRosterRestOptions.parse(
        {
            "profile": "powerschool",
            "base_url": "https://ps.riverside.example.us",
            "client_id": "id",
            "client_secret": "secret",
        }
    )
    config = OneRosterConfig.read(options.model_dump(exclude_none=True))
    assert config.token_url == "https://accounts.powerschool.com/as/token.oauth2"
    assert config.client_auth_method == "client_secret_post"


# Infinite Campus: the service lives under /campus/api; the token URL names the appName.


def campus(**extra: Any) -> FakeOneRoster:
    return FakeOneRoster(
        api_prefix="/campus/api",
        token_path="/campus/oauth2/token",
        token_query={"appName": "riverside"},
        **extra,
    )


@pytest.mark.parametrize(
    "pasted",
    [
        "{url}" + CAMPUS_V1P2,  # the OneRoster service URL Campus shows
        "{url}" + CAMPUS_V1P2 + "/",
        "{url}" + CAMPUS_V1P2 + "/users",  # an endpoint's URL
        "{url}/campus",  # the instance
        "{url}",  # the bare host
    ],
    ids=["service URL", "trailing slash", "endpoint URL", "instance", "host"],
)
async def test_infinite_campus_addresses_are_understood(source, pasted):
    fake = campus()
    with running(fake) as url:
        records = await fetch(
            source,
            credentials(
                fake,
                profile="infinite_campus",
                base_url=pasted.format(url=url),
                app_name="riverside",
            ),
        )

    assert len(records) == 8
    assert {seen.path for seen in fake.requests if seen.method == "GET"} == {
        CAMPUS_V1P2 + "/students"
    }
    (token,) = token_requests(fake)
    assert (token.path, token.query) == ("/campus/oauth2/token", {"appName": "riverside"})


async def test_infinite_campus_token_url_as_campus_shows_it(source):
    fake = campus()
    with running(fake) as url:
        records = await fetch(
            source,
            credentials(
                fake,
                profile="infinite_campus",
                base_url=url + CAMPUS_V1P2,
                token_url=f"{url}/campus/oauth2/token?appName=riverside",
            ),
        )
    assert len(records) == 8


async def test_a_campus_1_1_service_url_reads_1_1(source):
    fake = campus(v1p1_auth="oauth2")
    with running(fake) as url:
        records = await fetch(
            source,
            credentials(
                fake, profile="infinite_campus", base_url=url + CAMPUS_V1P1, app_name="riverside"
            ),
        )

    assert len(records) == 8
    assert fake.offsets(CAMPUS_V1P1 + "/students") == [0, 8]


async def test_a_service_url_with_the_old_token_default_is_named_plainly_not_http_405(source):
    """Before profiles, a pasted Campus service URL made the token request go to
    <service>/token, which answered "HTTP 405" and nothing more."""
    fake = campus()
    with running(fake) as url, pytest.raises(SourceError) as raised:
        await fetch(
            source,
            credentials(fake, base_url=url + CAMPUS_V1P2, token_url=f"{url}{CAMPUS_V1P2}/token"),
        )

    message = str(raised.value)
    assert "does not take token requests: token_url is probably not the token endpoint" in message
    assert "HTTP 405" in message


async def test_the_generic_profile_reads_a_pasted_service_url_too(source):
    """The base is what precedes /ims/...: the token goes to <base>/token, the pages to the
    service, whatever the profile."""
    fake = FakeOneRoster(api_prefix="/oneroster", token_path="/oneroster/token")
    with running(fake) as url:
        records = await fetch(
            source,
            credentials(fake, base_url=f"{url}/oneroster/ims/oneroster/rostering/v1p2/students"),
        )
    assert len(records) == 8


def test_infinite_campus_without_token_url_or_app_name_is_a_configuration_error():
    with pytest.raises(
        SourceError, match=r"Infinite Campus's token URL names the connection's appName"
    ):
        OneRosterRestOptions.parse(
            {
                "profile": "infinite_campus",
                "base_url": "https://riverside.infinitecampus.org" + CAMPUS_V1P2,
                "client_id": "id",
                "client_secret": "secret",
            }
        )


# ClassLink: direct OneRoster access is 1.1, signed with OAuth 1.0a; its proxy hands out a token.


async def test_classlink_profile_signs_1_1_requests(source):
    fake = FakeOneRoster()
    with running(fake) as url:
        records = await fetch(source, credentials(fake, profile="classlink", base_url=url))

    assert len(records) == 8
    assert fake.offsets("/ims/oneroster/v1p1/students") == [0, 8]
    assert fake.tokens_issued == 0


async def test_classlink_proxy_token_alone_means_bearer(source):
    fake = FakeOneRoster(v1p1_auth="oauth2", api_prefix="/app-57")
    with running(fake) as url:
        token = fake.issue_token()
        records = await fetch(
            source, {"profile": "classlink", "base_url": f"{url}/app-57", "token": token}
        )
    assert len(records) == 8


# Aeries: OneRoster 1.1 at <Aeries URL>/ims/oneroster/v1p1, token at <Aeries URL>/token with
# a scope, and the load balancer's cookie from the token response on every later request.


async def test_aeries_profile_keeps_the_session_cookie_and_asks_for_a_scope(source):
    fake = FakeOneRoster(
        v1p1_auth="oauth2",
        api_prefix="/aeries",
        token_path="/aeries/token",
        session_cookie=True,
        requires_scope=True,
        students=numbered_students(5),
    )
    with running(fake) as url:
        records = await fetch(
            source, credentials(fake, profile="aeries", base_url=f"{url}/aeries", page_size=2)
        )

    assert len(records) == 5
    assert fake.offsets("/aeries/ims/oneroster/v1p1/students", status=401) == []
    assert fake.granted_scopes == [
        "https://purl.imsglobal.org/spec/or/v1p1/scope/roster-core.readonly"
    ]


async def test_skyward_profile_is_the_generic_one(source):
    fake = FakeOneRoster()
    with running(fake) as url:
        records = await fetch(source, credentials(fake, profile="skyward", base_url=url))
    assert len(records) == 8
    assert fake.offsets("/ims/oneroster/rostering/v1p2/students") == [0, 8]


# Pacing, and addresses that cannot be understood.


async def test_requests_per_minute_spaces_the_requests(source):
    fake = FakeOneRoster(students=numbered_students(6))
    with running(fake) as url:
        await fetch(source, credentials(fake, base_url=url, page_size=2, requests_per_minute=600))

    pages = [seen.at for seen in fake.requests if seen.method == "GET"]
    assert len(pages) == 4
    # 600 a minute: one each 0.1 s at most. Measured where the requests arrive, one may come
    # late and the next on time on a busy machine; the four together span at least three gaps
    # (less a little slack for the first arriving late).
    assert pages[-1] - pages[0] >= 0.25


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        ({"profile": "banner"}, "profile 'banner' is not one of generic, powerschool"),
        ({"profile": "clever"}, 'Clever is a source of its own: use kind = "clever"'),
        (
            {"base_url": "https://sis.example.org/ims/oneroster/rostering/v1p2/widgets"},
            "'widgets', which is not a OneRoster collection",
        ),
        (
            {"base_url": "https://sis.example.org/ims/lti/v1"},
            "is not a OneRoster 1.1 or 1.2 address",
        ),
        (
            {"base_url": "https://sis.example.org/campus/oauth2/token?appName=x"},
            "looks like the token endpoint: put it in token_url",
        ),
        (
            {"base_url": "https://sis.example.org/ims/oneroster/v1p1", "version": "1.2"},
            'is a OneRoster 1.1 address but version = "1.2"',
        ),
        ({"token_endpoint_auth_method": "private_key_jwt"}, "token_endpoint_auth_method"),
        ({"requests_per_minute": 0}, "requests_per_minute must be a whole number above 0"),
    ],
)
def test_options_that_cannot_be_understood_are_named(opts, message):
    given = {
        "base_url": "https://sis.example.org",
        "client_id": "id",
        "client_secret": "secret",
        **opts,
    }
    with pytest.raises(SourceError, match=message.replace("(", r"\(").replace("?", r"\?")):
        OneRosterRestOptions.parse(given)
