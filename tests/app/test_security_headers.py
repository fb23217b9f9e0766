"""Every answer carries the security headers: pages, files, API answers, errors, metrics."""

from __future__ import annotations

import httpx
import pytest

from app.factory import create_app
from app.runtime import build_service

pytestmark = pytest.mark.anyio

TAB = {"X-Requested-With": "licensing-tab"}
LICENSE_QUERY = {"query": "{ license { display } }"}


def assert_secured(response: httpx.Response) -> None:
    where = f"{response.request.method} {response.request.url.path} ({response.status_code})"
    policy = response.headers.get("content-security-policy", "")
    directives = {part.split()[0]: part.split()[1:] for part in policy.split(";") if part.strip()}
    assert directives.get("frame-ancestors") == ["'none'"], where
    assert directives.get("script-src") == ["'self'"], where
    assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy, where
    assert response.headers.get("x-content-type-options") == "nosniff", where
    assert response.headers.get("referrer-policy") == "no-referrer", where
    # Once each, even where the endpoint sets one itself.
    for name in ("content-security-policy", "x-content-type-options", "referrer-policy"):
        assert len(response.headers.get_list(name)) == 1, (where, name)


async def test_every_kind_of_answer_carries_the_headers(client, make_district, service):
    district = await make_district(active=10)
    bearer = {"Authorization": f"Bearer {district.manager_token}"}
    answers = [
        await client.get("/"),  # the tab's page
        await client.get("/licensing.js"),  # a static file
        await client.get("/licensing.css"),
        await client.get("/no-such-file"),  # 404
        await client.get("/healthz"),
        await client.get("/readyz"),
        await client.get("/metrics"),
        await client.post("/graphql", json=LICENSE_QUERY),  # 401
        await client.post("/graphql", json=LICENSE_QUERY, headers=bearer),  # 200
        await client.post("/graphql", content=b"{not json", headers=bearer),  # 400
        await client.get("/graphql", headers={"Accept": "text/html"}),  # no IDE in production
        await client.request("PUT", "/graphql"),  # 405
        await client.post("/session", json={"token": "wrong"}, headers=TAB),  # 401
        await client.post("/session", json={"token": "x"}, headers={"Origin": "https://a.test"}),
        await client.post("/session", json={"token": district.manager_token}, headers=TAB),
        await client.get("/session"),
        await client.get("/reports/active-students.csv"),  # by the cookie: a streamed file
        await client.get("/reports/active-students.csv?bad=1"),  # 400
        await client.delete("/session", headers=TAB),
        await client.get("/session"),  # 401
    ]
    statuses = {answer.status_code for answer in answers}
    assert {200, 400, 401, 403, 404, 405} <= statuses
    for answer in answers:
        assert_secured(answer)


async def test_throttled_sign_ins_carry_the_headers(client, make_district):
    await make_district(active=10)
    for _ in range(11):
        answer = await client.post("/session", json={"token": "m1t1_wrong"}, headers=TAB)
    assert answer.status_code == 429
    assert_secured(answer)


async def test_an_unexpected_failure_carries_the_headers(service, make_district, monkeypatch):
    district = await make_district(active=10)

    async def broken(_secret: str) -> None:
        raise RuntimeError("the unexpected")

    monkeypatch.setattr(service, "token_sign_in", broken)
    transport = httpx.ASGITransport(app=create_app(service), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as http:
        answer = await http.post(
            "/graphql",
            json=LICENSE_QUERY,
            headers={"Authorization": f"Bearer {district.manager_token}"},
        )
    assert answer.status_code == 500
    assert_secured(answer)


async def test_the_graphiql_page_has_its_own_policy_only_in_development(settings, clock):
    development = build_service(settings.model_copy(update={"development": True}), clock=clock)
    try:
        transport = httpx.ASGITransport(app=create_app(development))
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as http:
            ide = await http.get("/graphql", headers={"Accept": "text/html"})
            api = await http.post("/graphql", json=LICENSE_QUERY)
    finally:
        development.database.dispose()

    assert ide.status_code == 200 and "graphiql" in ide.text.lower()
    policies = ide.headers.get_list("content-security-policy")
    assert len(policies) == 1
    assert "frame-ancestors 'none'" in policies[0]
    assert "'unsafe-inline'" in policies[0]  # GraphiQL's page needs it, and only that page
    assert ide.headers["x-content-type-options"] == "nosniff"
    assert_secured(api)
