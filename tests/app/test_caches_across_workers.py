"""Kept answers and cached sign-ins under `licensing serve --workers 2`, changed from outside.

Each worker keeps answers and live tokens in its own memory (docs/caching.md). Here the
changes come from the command line, another process, while both workers have answered the same
query and signed the same token in many times: the next requests, whichever worker takes them,
must show the change, and a revoked token must be refused by all of them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.utils.cli import run
from tests.utils.server_process import ServerProcess, licensing_serve

pytestmark = pytest.mark.servers

WORKERS = 2
# Requests on fresh connections after each step: enough that both workers take some.
REQUESTS = 24
QUERY = "query Usage { usage { activeStudents } viewer { token { name } } }"


@pytest.fixture
def server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, new_database_url: Any
) -> Iterator[ServerProcess]:
    config = tmp_path / "licensing.toml"
    config.write_text(
        f"database_url = {json.dumps(new_database_url('caches'))}\n"
        f"data_dir = {json.dumps(str(tmp_path / 'data'))}\n"
        "scheduler_enabled = false\n"
        # Every request with the revoked token below is a failed sign-in of this address.
        "[sign_in]\nfailures_per_address = 1000\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("LICENSING_CONFIG", str(config))
    run("db", "upgrade")
    run("district", "create", "riverside", "--name", "Riverside Unified School District")
    with licensing_serve(
        workers=WORKERS, env=dict(os.environ), log_path=tmp_path / "serve.log", cwd=tmp_path
    ) as served:
        yield served


def token(name: str) -> str:
    created = run(
        "token", "create", "--district", "riverside", "--permission", "VIEW_LICENSE",
        "--name", name,
    )  # fmt: skip
    return created.stdout.strip()


def answers(server: ServerProcess, secret: str) -> list[httpx.Response]:
    """REQUESTS answers to the query, each on a new connection (any worker may take it)."""
    return [
        httpx.post(
            f"{server.base_url}/graphql",
            json={"query": QUERY},
            headers={"Authorization": f"Bearer {secret}"},
            timeout=30,
        )
        for _ in range(REQUESTS)
    ]


def active_students(responses: list[httpx.Response]) -> set[int]:
    assert {response.status_code for response in responses} == {200}
    return {response.json()["data"]["usage"]["activeStudents"] for response in responses}


def test_a_roster_import_and_a_revocation_reach_every_worker_at_once(
    server: ServerProcess, tmp_path: Path
):
    reader, other = token("reader"), token("other")
    assert active_students(answers(server, reader)) == {0}
    assert active_students(answers(server, other)) == {0}

    roster = tmp_path / "students.csv"
    roster.write_text("id,role,status,enabled\nN1,student,active,true\nN2,student,active,true\n")
    run("roster", "import", str(roster), "--district", "riverside")
    assert active_students(answers(server, reader)) == {2}

    listed = run("token", "list", "--district", "riverside").stdout
    reader_id = next(line.split()[0] for line in listed.splitlines() if "reader" in line)
    run("token", "revoke", reader_id, "--district", "riverside")

    assert {response.status_code for response in answers(server, reader)} == {401}
    assert active_students(answers(server, other)) == {2}
