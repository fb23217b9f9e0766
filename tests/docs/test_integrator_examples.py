"""Every example of the integrators' guide runs, as a reader would run it, against the service
served on 127.0.0.1 with a seeded district; and the guide shows each example file exactly.

The examples are the files in docs/examples/; docs/integrators.md holds each one in a code block
after an `<!-- example: NAME -->` line, and the first test fails when a block and its file differ.
The curl scripts need curl (skipped without it, except in CI); the typed client needs
ariadne-codegen, which lives in its own environment (.venv-codegen, made by `make test`) because
it pins graphql-core below the version the service needs.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.factory import create_app
from licensing.orchestration.service import LicensingService
from licensing.settings import DistrictConfig, RateLimitSettings, Settings, WebhookConfig
from licensing.storage.tokens import Permission
from tests.fakes.serve import serve
from tests.utils.clock import FakeClock
from tests.utils.districts import (
    TestDistrict,
    create_district,
    public_key_text,
    students,
    token_for,
)
from tests.utils.graphql import graphql_data
from tests.utils.server_process import free_port

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples"
GUIDE = ROOT / "docs" / "integrators.md"
GENERATED = "licensing_client"  # ariadne-codegen's output, never committed
IN_CI = os.environ.get("CI") == "true"

SLUG = "demo"
SEATS, ACTIVE, THRESHOLD = 300, 230, 50  # 70 licenses left: no alert until 20 more students
WEBHOOK_SECRET = "a-secret-shared-with-the-receiver"
# Limits against a hang, not measurements: a loaded 2-core CI machine takes tens of seconds to start
# each `licensing` command a script runs.
SCRIPT_TIMEOUT_SECONDS = 300
LINE_TIMEOUT_SECONDS = 60

# A budget the rate-limit example exhausts within a few requests: each dashboard read costs 9
# points and 10 come back every second, so each 429 asks for a wait of 1 s.
TINY_BUDGET = RateLimitSettings(bucket_size=30, restore_rate=10)


class WallClock(FakeClock):
    """The real time: the examples sleep for real (Retry-After) and receivers check signatures
    against their own clock."""

    def __call__(self) -> datetime:
        return datetime.now(UTC)


@pytest.fixture
def clock() -> FakeClock:
    return WallClock()


@pytest.fixture
def rate_limit(request: pytest.FixtureRequest) -> RateLimitSettings:
    return getattr(request, "param", RateLimitSettings())


@pytest.fixture
def settings(
    tmp_path: Path, signing_key: Any, new_database_url: Any, rate_limit: RateLimitSettings
) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=new_database_url(migrated=True),
        license_public_keys=[public_key_text(signing_key)],
        rate_limit=rate_limit,
    )


@pytest.fixture
async def district(make_district: Any) -> TestDistrict:
    return await make_district(SLUG, seats=SEATS, active=ACTIVE, threshold=THRESHOLD)


@pytest.fixture
def api(service: LicensingService, district: TestDistrict) -> Iterator[str]:
    """The service over real TCP, websockets included: http://127.0.0.1:PORT."""
    with serve(create_app(service), websockets=True) as base_url:
        yield base_url


def tokens_the_script_creates() -> dict[str, str]:
    """Permission -> the token name create_tokens.sh gives it, read from the script."""
    script = (EXAMPLES / "create_tokens.sh").read_text(encoding="utf-8")
    found = re.findall(r'--permission (\w+) --name "([^"]+)"', script)
    assert {permission for permission, _name in found} == {"VIEW_LICENSE", "MANAGE_SETTINGS"}
    return dict(found)


@pytest.fixture
def tokens(service: LicensingService, district: TestDistrict) -> dict[str, str]:
    """Tokens like the two create_tokens.sh makes (same names and permissions), created in this
    process: the script itself runs once, in test_create_tokens_script_prints_two_working_tokens."""
    return {
        permission: token_for(service, district.id, Permission(permission), name=name)
        for permission, name in tokens_the_script_creates().items()
    }


async def test_create_tokens_script_prints_two_working_tokens(
    api: str, settings: Settings, district: TestDistrict, tmp_path: Path
) -> None:
    env = example_env(
        LICENSING_DATABASE_URL=settings.database_url, LICENSING_DATA_DIR=str(settings.data_dir)
    )
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    output = run_example("create_tokens.sh", env=env, cwd=tmp_path)

    found = dict(re.findall(r"^(VIEW_LICENSE|MANAGE_SETTINGS) token: +(\S+)$", output, re.M))
    assert set(found) == {"VIEW_LICENSE", "MANAGE_SETTINGS"}, output
    names = tokens_the_script_creates()
    async with httpx.AsyncClient(base_url=api) as client:
        for permission, token in found.items():
            viewer = await graphql_data(client, token, "{ viewer { token { name permissions } } }")
            assert viewer["viewer"]["token"]["name"] == names[permission]
            assert permission in viewer["viewer"]["token"]["permissions"]


# --- The guide and the files -------------------------------------------------------------------


def included_examples() -> dict[str, str]:
    """NAME -> the code block after `<!-- example: NAME -->` in the guide."""
    pattern = re.compile(r"<!-- example: (\S+) -->\n```[a-z]*\n(.*?)```\n", re.S)
    return dict(pattern.findall(GUIDE.read_text(encoding="utf-8")))


def example_files() -> set[str]:
    return {
        path.name
        for path in EXAMPLES.iterdir()
        if path.is_file() and path.suffix in {".sh", ".py", ".graphql", ".toml"}
    }


def test_the_guide_shows_every_example_file_exactly() -> None:
    included = included_examples()

    assert set(included) == example_files()
    for name, block in included.items():
        assert block == (EXAMPLES / name).read_text(encoding="utf-8"), (
            f"docs/integrators.md's block for {name} differs from docs/examples/{name}"
        )


# --- Running them ------------------------------------------------------------------------------


def example_env(**extra: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("LICENSING_")}
    return env | extra


def require_curl() -> None:
    if shutil.which("curl") is None:
        if IN_CI:
            pytest.fail("curl is missing: CI must run the curl examples")
        pytest.skip("curl is not installed: the curl examples cannot run")


def run_example(name: str, *, env: dict[str, str], cwd: Path | None = None) -> str:
    script = EXAMPLES / name
    command = ["sh", str(script)] if script.suffix == ".sh" else [sys.executable, str(script)]
    result = subprocess.run(
        command,
        env=env,
        cwd=cwd or EXAMPLES,
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT_SECONDS,
    )
    assert result.returncode == 0, (
        f"{name} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    )
    return result.stdout


def client_env(api: str, token: str) -> dict[str, str]:
    return example_env(M1T1_API=api, M1T1_TOKEN=token)


def start_example(name: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(EXAMPLES / name)],
        env=env,
        cwd=EXAMPLES,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def next_line(process: subprocess.Popen[str], timeout: float = LINE_TIMEOUT_SECONDS) -> str:
    """The example's next line of output, failing after ``timeout`` seconds of silence."""
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    assert ready, f"no output within {timeout} s"
    line = process.stdout.readline()
    assert line, f"the example ended (exit status {process.wait()})"
    return line.rstrip("\n")


def stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    process.wait(10)
    if process.stdout is not None:
        process.stdout.close()


def cross_the_threshold(service: LicensingService, district: TestDistrict) -> None:
    """30 more students: 40 licenses left, below the threshold of 50: LICENSES_LOW is raised."""
    service.apply_roster(
        district.id,
        source="local",
        records=students(30, start=ACTIVE + 1, prefix=f"{SLUG}-"),
        replace=False,
    )


async def test_curl_dashboard_shows_the_viewer_and_the_license(api, tokens) -> None:
    require_curl()

    output = run_example("dashboard.sh", env=client_env(api, tokens["VIEW_LICENSE"]))

    viewer, dashboard = (json.loads(line)["data"] for line in output.splitlines())
    assert viewer["viewer"]["district"]["slug"] == SLUG
    assert viewer["viewer"]["token"]["permissions"] == ["VIEW_LICENSE"]
    assert dashboard["license"]["display"] == f"{ACTIVE} / {SEATS}"
    assert dashboard["licenseUnavailable"] is None


async def test_curl_conditional_get_is_answered_304(api, tokens) -> None:
    require_curl()

    output = run_example("conditional_get.sh", env=client_env(api, tokens["VIEW_LICENSE"]))

    assert re.search(r'^first answer: ETag W/"[^"]+"$', output, re.M), output
    assert "second answer: HTTP 304" in output


async def test_curl_persisted_query_registers_once_then_runs_by_hash(api, tokens) -> None:
    require_curl()

    output = run_example("persisted_query.sh", env=client_env(api, tokens["VIEW_LICENSE"]))

    lines = output.splitlines()
    assert "PERSISTED_QUERY_NOT_FOUND" in lines[0]
    assert lines[1].startswith("registered: ") and f"{ACTIVE} / {SEATS}" in lines[1]
    assert lines[2].startswith("hash again: ") and f"{ACTIVE} / {SEATS}" in lines[2]


async def test_httpx_dashboard(api, tokens) -> None:
    output = run_example("dashboard.py", env=client_env(api, tokens["VIEW_LICENSE"]))

    assert (
        "Signed in to Test District (demo) as 'dashboard (read-only)', may VIEW_LICENSE" in output
    )
    assert f"Licenses: {ACTIVE} / {SEATS} (GREEN, ACTIVE)" in output
    assert f"Active students: {ACTIVE}" in output


async def test_httpx_dashboard_without_a_license_says_why(service) -> None:
    # A district whose license source has never answered: `license` is null, not an error.
    district_id = create_district(service, slug="newcomer", roster=students(5))
    token = token_for(service, district_id, Permission.VIEW_LICENSE)
    with serve(create_app(service)) as api:
        output = run_example("dashboard.py", env=client_env(api, token))

    assert "No license yet (NOT_REQUESTED)" in output
    assert "Active students: 5" in output


async def test_httpx_paging_through_every_active_student_and_refetching_one(api, tokens) -> None:
    output = run_example("active_students.py", env=client_env(api, tokens["MANAGE_SETTINGS"]))

    assert f"{ACTIVE} active students" in output
    assert re.search(rf"^Refetched {SLUG}-000001 \(ACTIVE\): ", output, re.M), output


async def test_httpx_etag_and_persisted_query(api, tokens) -> None:
    output = run_example("cached_client.py", env=client_env(api, tokens["VIEW_LICENSE"]))

    assert output.splitlines()[:5] == [
        "server did not know the hash: sending the document once",
        output.splitlines()[1],
        f"license {ACTIVE} / {SEATS}",
        "304 Not Modified: reusing the last answer",
        f"license {ACTIVE} / {SEATS}",
    ]
    assert output.splitlines()[1].startswith('200 with ETag W/"')


@pytest.mark.parametrize("rate_limit", [TINY_BUDGET], indirect=True)
async def test_httpx_waits_retry_after_on_429_and_finishes(api, tokens) -> None:
    env = client_env(api, tokens["VIEW_LICENSE"]) | {"REQUESTS": "6"}

    started = time.monotonic()
    output = run_example("rate_limited.py", env=env)

    assert "429 RATE_LIMITED: waiting 1 s" in output
    assert f"done: {ACTIVE} active students" in output
    assert output.count("cost 9, ") == 6
    assert time.monotonic() - started >= 1


async def test_subscription_example_receives_the_alert_when_the_threshold_is_crossed(
    service, district, api, tokens
) -> None:
    follower = start_example("subscribe_alerts.py", client_env(api, tokens["VIEW_LICENSE"]))
    try:
        assert next_line(follower) == "alerts now: none"
        cross_the_threshold(service, district)
        assert next_line(follower) == "alerts now: LICENSES_LOW (WARNING)"
    finally:
        stop(follower)


async def test_webhook_receiver_example_verifies_and_takes_the_alert(
    service, district, api
) -> None:
    port = free_port()
    receiver = start_example(
        "webhook_receiver.py", example_env(M1T1_WEBHOOK_SECRET=WEBHOOK_SECRET, PORT=str(port))
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        assert next_line(receiver) == f"listening on {url}"
        service.settings.districts[SLUG] = DistrictConfig(
            webhooks=[WebhookConfig(url=url, secret=WEBHOOK_SECRET)]
        )
        cross_the_threshold(service, district)
        assert await service.dispatch_notifications() == 1

        assert await service.deliver_webhooks() == 1
        assert next_line(receiver) == (
            "verified alert_raised LICENSES_LOW for demo: "
            "You have 40 licenses remaining. Consider purchasing additional licenses."
        )

        forged = httpx.post(
            url,
            content=b'{"event": "alert_raised"}',
            headers={"X-Manage1to1-Signature": f"t={int(time.time())},v1=00"},
        )
        assert forged.status_code == 401
        assert next_line(receiver) == "refused: bad signature"
    finally:
        stop(receiver)


def ariadne_codegen() -> str:
    found = ROOT / ".venv-codegen" / "bin" / "ariadne-codegen"
    if found.exists():
        return str(found)
    on_path = shutil.which("ariadne-codegen")
    if on_path:
        return on_path
    if IN_CI:
        pytest.fail("ariadne-codegen is missing: `make test` installs it in .venv-codegen")
    pytest.skip("ariadne-codegen is not installed (make .venv-codegen/.installed)")


async def test_typed_client_generated_from_the_schema_pages_through_every_student(
    api, tokens, tmp_path
) -> None:
    codegen = ariadne_codegen()
    # The committed configuration, run from docs/examples/ as the guide says, but generating
    # into this test's folder: the generated package is never written into the tree.
    config = (EXAMPLES / "ariadne-codegen.toml").read_text(encoding="utf-8")
    config = config.replace('target_package_path = "."', f'target_package_path = "{tmp_path}"')
    assert str(tmp_path) in config
    (tmp_path / "ariadne-codegen.toml").write_text(config, encoding="utf-8")
    generated = subprocess.run(
        [codegen, "--config", str(tmp_path / "ariadne-codegen.toml")],
        cwd=EXAMPLES,
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT_SECONDS,
    )
    assert generated.returncode == 0, generated.stdout + generated.stderr
    assert (tmp_path / GENERATED / "client.py").exists()

    env = client_env(api, tokens["MANAGE_SETTINGS"]) | {"PYTHONPATH": str(tmp_path)}
    output = run_example("typed_client.py", env=env, cwd=tmp_path)

    assert output.splitlines() == [
        "District Test District",
        f"Licenses {ACTIVE} / {SEATS}: plenty left",
        f"{ACTIVE} active students",
    ]
