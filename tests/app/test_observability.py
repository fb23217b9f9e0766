"""What operators see: request ids in responses and log lines, JSON logs, and /metrics."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.observability import (
    RequestIdFilter,
    log_formatter,
    request_id_var,
    resolved_log_format,
)
from licensing.orchestration.service import LicensingService
from licensing.settings import DistrictConfig, RosterSourceConfig, Settings
from tests.utils.graphql import graphql_data
from tests.utils.server_process import (
    free_port,
    licensing_serve,
    start_licensing,
    stop_process_group,
)

pytestmark = pytest.mark.anyio

GENERATED_ID = re.compile(r"[0-9a-f]{32}")
FORCE_UPDATE = "mutation { forceLicenseUpdate { updated throttled errors { code } } }"
ROSTER_HEADER = "id,role,status,enabled\n"


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a /metrics answer; 0 when the series does not exist yet."""
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and all(found.labels.get(k) == v for k, v in labels.items()):
                return found.value
    return 0.0


async def scrape(client: httpx.AsyncClient) -> str:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """The service's log lines while the test runs, as `licensing serve` writes them (JSON)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(log_formatter("json"))
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("licensing")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(level)


def records(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


# --- Request ids -----------------------------------------------------------------------------


async def test_a_sane_request_id_is_echoed(client):
    response = await client.get("/healthz", headers={"X-Request-ID": "lb-7f3a:01.b_2"})

    assert response.headers["X-Request-ID"] == "lb-7f3a:01.b_2"


async def test_a_request_id_is_generated_when_none_is_sent(client):
    first = await client.get("/healthz")
    second = await client.get("/graphql")  # any route, any answer

    assert GENERATED_ID.fullmatch(first.headers["X-Request-ID"])
    assert GENERATED_ID.fullmatch(second.headers["X-Request-ID"])
    assert first.headers["X-Request-ID"] != second.headers["X-Request-ID"]


@pytest.mark.parametrize(
    "sent",
    ["x" * 129, "two words", '"},{"level":"CRITICAL', "id/with/slashes", ""],
    ids=["too-long", "space", "json-injection", "slashes", "empty"],
)
async def test_an_insane_request_id_is_replaced(client, sent):
    response = await client.get("/healthz", headers={"X-Request-ID": sent})

    assert GENERATED_ID.fullmatch(response.headers["X-Request-ID"])


# --- Log lines -------------------------------------------------------------------------------


async def test_a_masked_error_is_logged_with_the_request_id(
    client, make_district, monkeypatch, log_lines
):
    district = await make_district()

    async def broken(self, district_id, additional_students):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(LicensingService, "license_check", broken)

    response = await client.post(
        "/graphql",
        json={"query": "{ licenseCheck { allowed } }"},
        headers={"Authorization": f"Bearer {district.manager_token}", "X-Request-ID": "req-42"},
    )

    assert response.headers["X-Request-ID"] == "req-42"
    [error] = [line for line in records(log_lines) if line["level"] == "ERROR"]
    assert error["logger"] == "licensing.graphql"
    assert error["request_id"] == "req-42"
    assert "secret internals" in error["exc_info"]


async def test_one_access_line_per_request_without_query_or_token(client, make_district, log_lines):
    district = await make_district()
    query = "{ license { display } }"

    response = await client.get(
        "/graphql",
        params={"query": query},
        headers={"Authorization": f"Bearer {district.manager_token}"},
    )

    assert response.status_code == 200
    [access] = [line for line in records(log_lines) if line["logger"] == "licensing.access"]
    assert access["method"] == "GET"
    assert access["path"] == "/graphql"
    assert access["status"] == 200
    assert access["duration_ms"] >= 0
    assert access["request_id"] == response.headers["X-Request-ID"]
    assert access["message"].startswith("GET /graphql 200 ")
    assert district.manager_token not in json.dumps(access)
    assert "display" not in json.dumps(access)


def test_json_lines_carry_level_logger_message_and_request_id():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(log_formatter("json"))
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("tests.observability.json")
    logger.addHandler(handler)
    try:
        token = request_id_var.set("abc-123")
        logger.warning("Refused %s", "a license", extra={"code": "BAD_SIGNATURE"})
        request_id_var.reset(token)
        logger.warning("Outside any request")
    finally:
        logger.removeHandler(handler)

    during, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert during["level"] == "WARNING"
    assert during["logger"] == "tests.observability.json"
    assert during["message"] == "Refused a license"
    assert during["request_id"] == "abc-123"
    assert during["code"] == "BAD_SIGNATURE"
    assert during["pid"] == os.getpid()
    assert "timestamp" in during
    assert "request_id" not in outside


def test_text_lines_show_the_request_id_or_a_dash():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(log_formatter("text"))
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("tests.observability.text")
    logger.addHandler(handler)
    try:
        token = request_id_var.set("abc-123")
        logger.warning("during")
        request_id_var.reset(token)
        logger.warning("outside")
    finally:
        logger.removeHandler(handler)

    during, outside = stream.getvalue().splitlines()
    assert during.endswith("WARNING tests.observability.text [abc-123] during")
    assert outside.endswith("WARNING tests.observability.text [-] outside")


def test_text_lines_end_with_the_records_key_fields():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(log_formatter("text"))
    logger = logging.getLogger("tests.observability.fields")
    logger.addHandler(handler)
    try:
        logger.warning("Refused", extra={"district": "riverside", "code": "BAD_SIGNATURE"})
    finally:
        logger.removeHandler(handler)

    [line] = stream.getvalue().splitlines()
    assert line.endswith("[-] Refused district=riverside code=BAD_SIGNATURE")
    assert re.match(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", line)  # starts with the time


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("configured", "stream", "environ", "written"),
    [
        ("auto", Terminal(), {}, "text"),
        ("auto", io.StringIO(), {}, "json"),  # a pipe, a file, a container's log
        ("auto", Terminal(), {"INVOCATION_ID": "6f1c"}, "json"),  # systemd
        ("auto", Terminal(), {"JOURNAL_STREAM": "8:12345"}, "json"),  # systemd's journal
        ("json", Terminal(), {}, "json"),
        ("text", io.StringIO(), {"INVOCATION_ID": "6f1c"}, "text"),
    ],
)
def test_auto_log_format_is_text_in_a_terminal_and_json_under_a_service_manager(
    configured, stream, environ, written
):
    assert resolved_log_format(configured, stream=stream, environ=environ) == written


def test_log_format_auto_is_the_default_and_any_case_is_accepted(monkeypatch):
    assert Settings().log_format == "auto"
    monkeypatch.setenv("LICENSING_LOG_FORMAT", "Text")
    assert Settings().log_format == "text"


# --- Metrics ---------------------------------------------------------------------------------


async def test_graphql_requests_are_counted_by_route_template(client, make_district):
    district = await make_district("riverside")
    labels = {"method": "POST", "route": "/graphql", "status": "200"}
    before = await scrape(client)

    await graphql_data(client, district.viewer_token, "{ license { display } }")
    await graphql_data(client, district.viewer_token, "{ usage { activeStudents } }")

    after = await scrape(client)
    counted = "licensing_http_requests_total"
    assert sample(after, counted, **labels) == sample(before, counted, **labels) + 2
    timed = "licensing_http_request_duration_seconds_count"
    assert sample(after, timed, route="/graphql") == sample(before, timed, route="/graphql") + 2
    # Nothing about tenants or callers.
    assert "riverside" not in after
    assert district.viewer_token not in after


async def test_any_path_is_counted_under_its_route_template_not_its_url(client):
    labels = {"method": "GET", "route": "/{path}", "status": "404"}
    before = await scrape(client)

    await client.get("/no-such-page-7d1e.html")

    after = await scrape(client)
    counted = "licensing_http_requests_total"
    assert sample(after, counted, **labels) == sample(before, counted, **labels) + 1
    assert "no-such-page-7d1e" not in after


async def test_roster_sync_outcomes_are_counted_by_plugin(client, service, make_district, tmp_path):
    district = await make_district("riverside")
    roster = tmp_path / "roster.csv"
    service.settings.districts["riverside"] = DistrictConfig(
        roster_sources={"sis": RosterSourceConfig(kind="local", options={"path": str(roster)})}
    )
    name = "licensing_roster_syncs_total"
    before = await scrape(client)

    roster.write_text(ROSTER_HEADER + "".join(f"N{n},student,active,true\n" for n in range(10)))
    applied = await service.roster_sync.sync(district_id=district.id, source="sis", actor="t")
    roster.write_text(ROSTER_HEADER)  # every student gone at once: held for confirmation
    held = await service.roster_sync.sync(district_id=district.id, source="sis", actor="t")
    roster.unlink()
    failed = await service.roster_sync.sync(district_id=district.id, source="sis", actor="t")

    assert [applied.status, held.status, failed.status] == ["applied", "held", "failed"]
    after = await scrape(client)
    for outcome in ("applied", "held", "failed"):
        assert (
            sample(after, name, outcome=outcome, plugin="local")
            == sample(before, name, outcome=outcome, plugin="local") + 1
        ), outcome
    assert '"sis"' not in after  # the district's own name for its source is not a label


async def test_license_refresh_outcomes_are_counted(client, make_district, issuer, clock, service):
    district = await make_district("riverside")
    name = "licensing_license_refreshes_total"
    forced = {"action": "force_license_update"}
    before = await scrape(client)

    issuer.write(district.slug, seats=1100)
    pressed = [(await graphql_data(client, district.manager_token, FORCE_UPDATE))]
    pressed.append(await graphql_data(client, district.manager_token, FORCE_UPDATE))
    clock.advance(seconds=61)
    pressed.append(await graphql_data(client, district.manager_token, FORCE_UPDATE))
    clock.advance(seconds=61)
    service.settings.license_file_for(district.slug).unlink()
    pressed.append(await graphql_data(client, district.manager_token, FORCE_UPDATE))

    payloads = [data["forceLicenseUpdate"] for data in pressed]
    assert [(p["updated"], p["throttled"]) for p in payloads] == [
        (True, False),
        (False, True),
        (False, False),
        (False, False),
    ]
    after = await scrape(client)
    for outcome in ("updated", "throttled", "unchanged", "failed"):
        assert (
            sample(after, name, outcome=outcome, **forced)
            == sample(before, name, outcome=outcome, **forced) + 1
        ), outcome


# --- Several workers -------------------------------------------------------------------------


def serve_environment(tmp_path: Path, database_url: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(
        LICENSING_DATA_DIR=str(tmp_path / "data"),
        LICENSING_DATABASE_URL=database_url,
        LICENSING_SCHEDULER_ENABLED="false",
        LICENSING_LOG_FORMAT="json",
    )
    return env


def json_lines(log: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.splitlines() if line.startswith("{")]


def served_healthz(log: str) -> list[dict[str, Any]]:
    return [
        line
        for line in json_lines(log)
        if line.get("logger") == "licensing.access" and line.get("path") == "/healthz"
    ]


# The tests that start server processes run by themselves, beside the other tests, which run at
# a lower priority (marker "servers"): competing with other tests on equal terms, their SQLite
# writes could wait out the busy timeout.
@pytest.mark.servers
async def test_metrics_are_summed_over_two_workers(tmp_path, new_database_url):
    env = serve_environment(tmp_path, new_database_url("serve"))
    counted = {"method": "GET", "route": "/healthz", "status": "200"}
    with licensing_serve(workers=2, env=env, log_path=tmp_path / "serve.log", cwd=tmp_path) as up:
        # Fresh connections, many at once, until both workers have answered some.
        no_keepalive = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=up.base_url, limits=no_keepalive) as http:
            sent = 0
            for _batch in range(25):
                answers = await asyncio.gather(*(http.get("/healthz") for _ in range(16)))
                assert all(answer.status_code == 200 for answer in answers)
                sent += len(answers)
                if len({line["pid"] for line in served_healthz(up.log())}) >= 2:
                    break
            assert len({line["pid"] for line in served_healthz(up.log())}) == 2, up.log()

            # A worker counts a request just after answering it: wait for the last ones.
            deadline = time.monotonic() + 10
            while (
                sample(
                    (await http.get("/metrics")).text, "licensing_http_requests_total", **counted
                )
                < sent
                and time.monotonic() < deadline
            ):
                await asyncio.sleep(0.05)
            scrapes = [(await http.get("/metrics")).text for _ in range(6)]

        log = up.log()
        assert [sample(text, "licensing_http_requests_total", **counted) for text in scrapes] == [
            sent
        ] * 6
        accessed = [line for line in json_lines(log) if line.get("logger") == "licensing.access"]
        assert len({line["pid"] for line in accessed if line["path"] == "/metrics"}) >= 1
        assert all(GENERATED_ID.fullmatch(line["request_id"]) for line in accessed)
    [kept_in] = [
        line["message"]
        for line in json_lines(log)
        if line["message"].startswith("Metrics of every worker are kept in ")
    ]
    directory = Path(kept_in.removeprefix("Metrics of every worker are kept in ").rstrip("."))
    assert not directory.exists()


@pytest.mark.servers
def test_worker_serves_its_metrics_on_the_configured_port(tmp_path, new_database_url):
    port = free_port()
    env = serve_environment(tmp_path, new_database_url("worker"))
    env.update(LICENSING_WORKER_METRICS_PORT=str(port), LICENSING_HOST="127.0.0.1")
    process = start_licensing(["worker"], env=env, log_path=tmp_path / "worker.log", cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (tmp_path / "worker.log").read_text()
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()
                time.sleep(0.1)
        # Every thread, the metrics server's and the database's among them, yields the
        # processor (worker_niceness, 10 by default): on Linux each thread has its own.
        niceness = {
            int(stat.read_text().rpartition(")")[2].split()[16])
            for stat in Path(f"/proc/{process.pid}/task").glob("*/stat")
        }
    finally:
        stop_process_group(process)

    assert niceness == {10}
    assert response.status_code == 200
    assert "# TYPE licensing_license_refreshes_total counter" in response.text
    assert "# TYPE licensing_roster_syncs_total counter" in response.text
    started = json_lines((tmp_path / "worker.log").read_text())
    assert any(line["message"].startswith("Scheduler running as ") for line in started)
