"""What an administrator sees when they get a command wrong, and every command's --help."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from app.cli import cli
from licensing.storage.tokens import Permission, authenticate
from tests.utils.cli import run

LICENSING = str(Path(sys.executable).parent / "licensing")
TYPE_PLACEHOLDER = re.compile(r"<(bool|str|int|float|path|list|text)\b")


def command_paths() -> list[list[str]]:
    """Every command and command group, as the words that name it (the root is [])."""
    paths: list[list[str]] = []

    def walk(command, path: list[str]) -> None:
        paths.append(path)
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            walk(sub, [*path, name])

    walk(get_command(cli), [])
    return paths


def one_error_line(stderr: str) -> str:
    """The one `Error:` line of a failed command's output; fails on a traceback."""
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, stderr
    return errors[0]


# --help


@pytest.mark.parametrize("path", command_paths(), ids=lambda path: " ".join(path) or "licensing")
def test_help_fits_80_columns_without_type_placeholders_or_broken_words(path):
    result = CliRunner().invoke(cli, [*path, "--help"], env={"COLUMNS": "80"})

    assert result.exit_code == 0, result.output
    text = result.stdout
    assert not TYPE_PLACEHOLDER.search(text), text
    for line in text.splitlines():
        assert len(line) <= 80, line
        assert not line.endswith("-"), f"a word is broken at the line's end:\n{text}"
        if not line.startswith("Usage:"):
            assert not line.endswith("..."), f"a summary is cut short:\n{text}"


def test_roster_help_lists_deactivate_and_reactivate():
    listed = run("roster", "--help").stdout
    summary = run("--help").stdout

    for command in ("import", "deactivate", "reactivate"):
        assert re.search(rf"^\s+{command}\s+\w", listed, flags=re.MULTILINE), listed
    assert re.search(r"^\s+roster\s+.*deactivate and reactivate", summary, flags=re.MULTILINE)


def test_an_arguments_meaning_is_in_the_help():
    assert "FILE is a CSV file with a header row" in run("roster", "import", "--help").stdout
    assert "TOKEN_ID is the token's number" in run("token", "revoke", "--help").stdout


# Usage mistakes: one line, exit status 2


@pytest.mark.parametrize(
    ("arguments", "said"),
    [
        (["serve", "--port", "0"], "'--port'"),
        (["serve", "--port", "65536"], "'--port'"),
        (["serve", "--port", "eighty"], "'--port'"),
        (["serve", "--workers", "0"], "'--workers'"),
        (["serve", "--workers", "65"], "'--workers'"),
        (["token", "create", "-d", "demo", "-p", "ADMIN"], "'--permission'"),
        (["roster", "import", "-d", "demo"], "FILE"),
    ],
)
def test_a_bad_option_value_is_one_error_line_with_usage_status(arguments, said):
    result = CliRunner().invoke(cli, arguments, env={"COLUMNS": "80"})

    assert result.exit_code == 2, result.output
    assert said in one_error_line(result.stderr)


@pytest.mark.parametrize("spelling", ["manage_settings", "Manage_Settings", "MANAGE_SETTINGS"])
def test_permission_is_accepted_in_any_letter_case(spelling, built):
    run("demo")

    secret = run("token", "create", "-d", "demo", "-p", spelling).stdout.strip()

    with built.database.read() as session:
        principal = authenticate(session, secret=secret, now=built.clock())
    assert principal is not None
    assert Permission.MANAGE_SETTINGS in principal.permissions


# A folder where a file belongs


def test_importing_a_folder_says_so(tmp_path):
    run("demo")
    folder = tmp_path / "exports"
    folder.mkdir()

    result = run("roster", "import", str(folder), "-d", "demo", expect=1)

    assert "is a folder; give the roster's CSV file" in one_error_line(result.stderr)


def test_writing_the_schema_into_a_folder_is_refused(tmp_path):
    result = run("schema", "--write", str(tmp_path), expect=2)

    assert "is a directory" in one_error_line(result.stderr)


def test_license_issue_with_a_folder_for_its_key_is_a_usage_mistake(tmp_path):
    run("demo")

    result = run("license", "issue", "-d", "demo", "--seats", "5", "--key", str(tmp_path), expect=2)

    assert "'--key'" in one_error_line(result.stderr)


def test_license_issue_with_a_file_that_holds_no_key_says_so(tmp_path):
    run("demo")
    key = tmp_path / "key.pem"
    key.write_text("not a PEM file\n")

    result = run("license", "issue", "-d", "demo", "--seats", "5", "--key", str(key), expect=1)

    assert "is not an unencrypted PEM private key" in one_error_line(result.stderr)


# The database URL


@pytest.mark.parametrize(
    ("url", "status", "said"),
    [
        ("not a url", 2, "database_url is not a database URL"),
        ("mysql://licensing@db.internal/licensing", 2, "is not installed"),
        (
            "postgresql+psycopg://licensing:s3cret-pw@127.0.0.1:1/licensing",
            1,
            "Cannot connect to the database at postgresql+psycopg://licensing:***@127.0.0.1:1",
        ),
    ],
)
def test_a_database_that_cannot_be_used_is_one_error_line(monkeypatch, url, status, said):
    monkeypatch.setenv("LICENSING_DATABASE_URL", url)

    result = run("district", "list", expect=status)

    line = one_error_line(result.stderr)
    assert said in line
    assert "s3cret-pw" not in result.stderr


# The real entry point: no traceback for bad input


def licensing(*arguments: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LICENSING, *arguments],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_configuration_file_that_is_not_toml_is_one_line_from_the_real_command(tmp_path):
    (tmp_path / "licensing.toml").write_text('port = "8000\n')

    finished = licensing("district", "list", cwd=tmp_path)

    assert finished.returncode == 2
    assert "Cannot read the configuration" in one_error_line(finished.stderr)
    assert finished.stderr.count("\n") == 1


def test_a_missing_configuration_file_is_one_line_from_the_real_command(tmp_path):
    finished = licensing(
        "district", "list", cwd=tmp_path, LICENSING_CONFIG=str(tmp_path / "missing.toml")
    )

    assert finished.returncode == 2
    assert "LICENSING_CONFIG names" in one_error_line(finished.stderr)


# The curl hint and the sign-in link


def test_demo_prints_the_configured_address(monkeypatch):
    monkeypatch.setenv("LICENSING_HOST", "0.0.0.0")
    monkeypatch.setenv("LICENSING_PORT", "8123")

    result = run("demo", "--sign-in-link")

    assert "curl -s http://127.0.0.1:8123/graphql" in result.stderr
    assert "http://127.0.0.1:8123/#token=" in result.stderr
    assert ":8000" not in result.stderr
