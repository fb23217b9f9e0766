"""The `licensing` command line, run as an administrator runs it, against a database in tmp_path."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool
from sqlmodel import select

from db.models import AuditEvent, ChangeEvent, District
from licensing.orchestration.service import LicensingService
from licensing.storage.roster import UsageCounts, current_usage
from licensing.storage.tokens import Permission, authenticate
from tests.utils.cli import run

REPOSITORY = Path(__file__).resolve().parents[2]
GOOD_ROSTER = "id,role,status,enabled\nN1,student,active,true\nN2,student,active,TRUE\n"


@pytest.fixture
def demo() -> None:
    run("demo")


def demo_id(service: LicensingService) -> int:
    with service.database.read() as session:
        return session.exec(select(District).where(District.slug == "demo")).one().id


def demo_usage(service: LicensingService) -> UsageCounts:
    with service.database.read() as session:
        return current_usage(session, district_id=demo_id(service))


def execute(database: str, sql: str) -> None:
    """Change the database (its URL) behind the service's back."""
    engine = create_engine(database, poolclass=NullPool)
    with engine.begin() as connection:
        connection.exec_driver_sql(sql)
    engine.dispose()


def count_rows(database: str, table: str) -> int:
    engine = create_engine(database, poolclass=NullPool)
    with engine.connect() as connection:
        count = connection.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one()
    engine.dispose()
    return count


def create_token(*permissions: str) -> str:
    arguments = ["token", "create", "--district", "demo"]
    for permission in permissions:
        arguments += ["--permission", permission]
    result = run(*arguments)
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    return lines[0]


# demo


def test_demo_creates_the_demo_district_once(built):
    first = run("demo")
    assert "Created the demo district 'demo'" in first.stderr
    assert "token create --district demo" in first.stderr
    assert first.stdout == ""
    assert demo_usage(built).active_students == 960

    second = run("demo")

    assert "already set up" in second.stderr
    assert demo_usage(built).active_students == 960


# token


def test_token_create_prints_the_token_alone_and_it_signs_in(demo, built):
    result = run("token", "create", "--district", "demo", "--permission", "MANAGE_SETTINGS")

    lines = result.stdout.splitlines()
    assert len(lines) == 1
    [token] = lines
    assert result.stdout == token + "\n"
    assert re.fullmatch(r"m1t1_[A-Za-z0-9_-]{43}", token)
    assert token not in result.stderr
    assert "cannot be shown again" in result.stderr
    with built.database.read() as session:
        principal = authenticate(session, secret=token, now=built.clock())
    assert principal is not None
    assert principal.district_slug == "demo"
    assert principal.permissions == {Permission.MANAGE_SETTINGS, Permission.VIEW_LICENSE}


def test_a_view_license_token_may_only_view(demo, built):
    token = create_token("VIEW_LICENSE")

    with built.database.read() as session:
        principal = authenticate(session, secret=token, now=built.clock())
    assert principal is not None
    assert principal.permissions == {Permission.VIEW_LICENSE}


def test_each_token_is_new(demo):
    assert create_token("VIEW_LICENSE") != create_token("VIEW_LICENSE")


def test_token_create_needs_a_known_permission(demo, database):
    result = run("token", "create", "--district", "demo", "--permission", "SUPERUSER", expect=2)

    assert result.stdout == ""
    assert count_rows(database, "api_token") == 0


def test_token_list_shows_tokens_without_their_secret(demo):
    manager = create_token("MANAGE_SETTINGS")
    run("token", "create", "-d", "demo", "-p", "VIEW_LICENSE", "--name", "Help desk reporting")

    result = run("token", "list", "--district", "demo")

    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].split("\t")[:4] == ["1", manager[:11] + "…", "MANAGE_SETTINGS", "active"]
    assert lines[1].split("\t")[2:] == ["VIEW_LICENSE", "active", "Help desk reporting"]
    assert manager not in result.stdout
    assert manager[11:] not in result.stdout


def test_token_revoke_stops_the_token_at_once(demo, built):
    token = create_token("MANAGE_SETTINGS")

    result = run("token", "revoke", "1", "--district", "demo")

    assert "Revoked token 1" in result.stderr
    with built.database.read() as session:
        assert authenticate(session, secret=token, now=built.clock()) is None
    listing = run("token", "list", "--district", "demo").stdout
    assert "\trevoked " in listing
    assert "\tactive\t" not in listing


def test_creating_and_revoking_a_token_is_in_the_audit_log_once_each(demo, built):
    create_token("VIEW_LICENSE")
    run("token", "revoke", "1", "--district", "demo")
    run("token", "revoke", "1", "--district", "demo", expect=1)  # no longer active: no entry

    with built.database.read() as session:
        events = session.exec(
            select(AuditEvent)
            .where(AuditEvent.action.in_(["token_created", "token_revoked"]))
            .order_by(AuditEvent.id)
        ).all()
    assert [(event.action, event.actor) for event in events] == [
        ("token_created", "command line"),
        ("token_revoked", "command line"),
    ]
    assert json.loads(events[0].new_value) == {
        "id": 1,
        "name": "VIEW_LICENSE token",
        "permissions": "VIEW_LICENSE",
    }


def test_revoking_a_token_that_is_not_active_is_an_error(demo):
    create_token("MANAGE_SETTINGS")
    run("token", "revoke", "1", "--district", "demo")

    again = run("token", "revoke", "1", "--district", "demo", expect=1)
    missing = run("token", "revoke", "7", "--district", "demo", expect=1)

    assert "no active token 1" in again.stderr
    assert "no active token 7" in missing.stderr


def test_a_token_number_no_row_can_have_is_refused_before_the_database(demo):
    create_token("MANAGE_SETTINGS")

    huge = run("token", "revoke", "3000000000", "--district", "demo", expect=2)

    said = " ".join(huge.stderr.replace("│", " ").split())
    assert "less than or equal to 2147483647" in said
    assert "Traceback" not in huge.stderr + huge.stdout


@pytest.mark.parametrize(
    "command",
    [
        ("token", "create", "--district", "nowhere", "--permission", "VIEW_LICENSE"),
        ("token", "list", "--district", "nowhere"),
        ("token", "revoke", "1", "--district", "nowhere"),
        ("roster", "import", "roster.csv", "--district", "nowhere"),
        ("license", "issue", "--district", "nowhere", "--seats", "10"),
        ("sync", "--district", "nowhere"),
    ],
)
def test_an_unknown_district_is_a_clear_error(demo, database, tmp_path, command):
    (tmp_path / "roster.csv").write_text(GOOD_ROSTER)

    result = run(*command, expect=1)

    assert "Error: There is no district 'nowhere'" in result.stderr
    assert result.stdout == ""
    assert count_rows(database, "api_token") == 0


def test_commands_set_up_an_empty_database_themselves(empty_database):
    result = run("token", "list", "--district", "demo", expect=1)

    assert "There is no district 'demo'" in result.stderr
    assert count_rows(empty_database, "district") == 0


def test_commands_ask_for_an_upgrade_on_an_older_database(database):
    run("db", "upgrade")
    execute(database, "UPDATE alembic_version SET version_num = '0000'")

    result = run("token", "list", "--district", "demo", expect=1)

    assert "licensing db upgrade" in result.stderr


# roster import


def test_roster_import_of_a_good_file_changes_the_active_count(demo, built, tmp_path):
    path = tmp_path / "new-students.csv"
    path.write_text(GOOD_ROSTER)

    result = run("roster", "import", str(path), "--district", "demo")

    assert "Imported 2 record(s). Active students: 960 -> 962." in result.stderr
    assert demo_usage(built).active_students == 962


def test_roster_import_replace_makes_the_file_the_whole_roster(demo, built, tmp_path):
    path = tmp_path / "roster.csv"
    path.write_text(GOOD_ROSTER)

    held = run("roster", "import", str(path), "--district", "demo", "--replace", expect=1)
    assert "would stop counting 960 of the 960 active students of 'local'" in held.stderr
    assert demo_usage(built).active_students == 960
    run_id = re.search(r"--run (\d+)", held.stderr).group(1)

    run("sync", "confirm", "--district", "demo", "--source", "local", "--run", run_id)

    usage = demo_usage(built)
    assert usage.active_students == 2
    assert usage.inactive_students == 0
    assert usage.staff == 0


@pytest.mark.parametrize(
    "content, expected",
    [
        (
            "id,role,status,enabled,graduation_year\n"
            "N1,student,active,true,2031\n"
            "N2,student,active,yes,2031\n"
            ",student,active,true,2031\n"
            "N4,student,active,true,20x5\n",
            [
                "line 3, column enabled: 'yes' is not true or false",
                "line 4, column id: the id is empty",
                "line 5, column graduation_year: '20x5' is not a four-digit year",
            ],
        ),
        (
            "id,role,status\nN1,student,active\nN2,wizard,active\nN3,student,sleeping\n",
            ["line 3, column role: role 'wizard'", "line 4, column status: status 'sleeping'"],
        ),
        ("id,colour\nN1,red\n", ["line 1, column colour: unknown column"]),
    ],
)
@pytest.mark.parametrize("replace", [[], ["--replace"]])
def test_roster_import_of_a_bad_file_imports_nothing(
    demo, built, database, tmp_path, content, expected, replace
):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    before = demo_usage(built)
    records_before = count_rows(database, "roster_record")

    result = run("roster", "import", str(path), "--district", "demo", *replace, expect=1)

    assert "nothing imported" in result.stderr
    for line in expected:
        assert line in result.stderr
    assert demo_usage(built) == before
    assert count_rows(database, "roster_record") == records_before


def audit_events(service: LicensingService) -> list[AuditEvent]:
    with service.database.read() as session:
        return session.exec(select(AuditEvent).order_by(AuditEvent.id)).all()


def roster_change_events(service: LicensingService) -> list[ChangeEvent]:
    with service.database.read() as session:
        return session.exec(select(ChangeEvent).where(ChangeEvent.topic == "roster_sync")).all()


def test_roster_import_replace_with_a_header_only_file_is_held_and_audited(demo, built, tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("id,role,status\n")

    held = run("roster", "import", str(path), "--district", "demo", "--replace", expect=1)

    assert "held" in held.stderr and "960 of the 960" in held.stderr
    assert demo_usage(built).active_students == 960
    event = audit_events(built)[-1]
    assert (event.action, event.outcome, event.actor) == ("roster_import", "held", "command line")
    assert '"source": "local"' in event.new_value and '"source_active": 0' in event.new_value
    assert '"used": 960' in event.old_value
    assert len(roster_change_events(built)) == 2  # the demo's own import, then this one


def test_roster_import_and_deactivate_are_audited_and_noted_for_live_updates(demo, built, tmp_path):
    path = tmp_path / "new-students.csv"
    path.write_text(GOOD_ROSTER)

    run("roster", "import", str(path), "--district", "demo")
    run("roster", "deactivate", "N1", "--district", "demo")

    imported, deactivated = audit_events(built)[-2:]
    assert (imported.action, imported.outcome) == ("roster_import", "applied")
    assert json.loads(imported.old_value)["used"] == 960
    assert json.loads(imported.new_value)["used"] == 962
    assert (deactivated.action, deactivated.outcome) == ("deactivate_students", "applied")
    assert json.loads(deactivated.new_value)["used"] == 961
    assert len(roster_change_events(built)) == 3
    assert demo_usage(built).active_students == 961


def test_roster_import_of_a_missing_file_is_an_error(demo, tmp_path):
    result = run("roster", "import", str(tmp_path / "missing.csv"), "-d", "demo", expect=1)

    assert "No such file" in result.stderr


# db


def test_db_upgrade_twice_is_fine(empty_database):
    first = run("db", "upgrade")
    second = run("db", "upgrade")

    assert "Database at revision" in first.stderr
    assert first.stderr == second.stderr
    assert count_rows(empty_database, "alembic_version") == 1


def test_db_upgrade_keeps_existing_rows(demo, built):
    run("db", "upgrade")

    assert demo_usage(built).active_students == 960


def test_db_check_passes_after_demo(demo):
    result = run("db", "check")

    assert "Counts agree with a recount for 1 district(s)." in result.stderr


def test_db_check_fails_when_a_row_is_changed_behind_the_services_back(demo, database):
    execute(
        database,
        "UPDATE roster_record SET lifecycle = 'graduated' WHERE id = ("
        "SELECT min(id) FROM roster_record "
        "WHERE role = 'student' AND lifecycle = 'active' AND enabled)",
    )

    result = run("db", "check", expect=1)

    assert "demo: active_students is 960 but a recount gives 959" in result.stderr
    assert "demo: inactive_students is 88 but a recount gives 89" in result.stderr


# configuration


def test_a_bad_environment_value_is_named(monkeypatch):
    monkeypatch.setenv("LICENSING_PORT", "abc")

    result = run("db", "upgrade", expect=2)

    assert "Invalid configuration" in result.stderr
    assert re.search(r"^\s+port: ", result.stderr, flags=re.MULTILINE)


@pytest.mark.parametrize(
    "toml, key",
    [
        ('colour = "blue"\n', "colour"),
        ("port = 70000\n", "port"),
        ('default_time_zone = "Mars/Base"\n', "default_time_zone"),
        ("[graphql]\nmax_aliases = 0\n", "graphql.max_aliases"),
        ('[districts.demo]\nlicence_source = "license_file"\n', "districts.demo.licence_source"),
        ('license_public_keys = ["not-a-key"]\n', "license_public_keys"),
    ],
)
def test_a_bad_configuration_file_value_is_named(tmp_path, toml, key):
    (tmp_path / "licensing.toml").write_text(toml)

    result = run("db", "upgrade", expect=2)

    assert "Invalid configuration" in result.stderr
    assert re.search(rf"^\s+{re.escape(key)}(\.\d+)?: ", result.stderr, flags=re.MULTILINE), (
        result.stderr
    )


def test_a_configuration_file_that_is_not_toml_is_reported(tmp_path):
    (tmp_path / "licensing.toml").write_text('port = "8000\n')

    result = run("db", "upgrade", expect=2)

    assert "Cannot read the configuration" in result.stderr
    assert "line 1" in result.stderr


def test_licensing_config_must_name_an_existing_file(tmp_path, monkeypatch):
    monkeypatch.setenv("LICENSING_CONFIG", str(tmp_path / "elsewhere.toml"))

    result = run("db", "upgrade", expect=2)

    assert "LICENSING_CONFIG" in result.stderr


def test_licensing_config_names_the_file_to_read(tmp_path, monkeypatch):
    (tmp_path / "licensing.toml").write_text("port = 70000\n")
    (tmp_path / "other.toml").write_text("port = 8080\n")
    monkeypatch.setenv("LICENSING_CONFIG", str(tmp_path / "other.toml"))

    run("db", "upgrade")


def test_the_example_configuration_is_valid_and_documented(tmp_path):
    example = (REPOSITORY / "licensing.example.toml").read_text(encoding="utf-8")
    shutil.copy(REPOSITORY / "licensing.example.toml", tmp_path / "licensing.toml")

    run("db", "upgrade")

    documented = (REPOSITORY / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert f"```toml\n{example}```" in documented


def test_every_setting_is_documented():
    from licensing.settings import (
        DistrictConfig,
        GraphQLLimits,
        HttpSettings,
        PersistedQuerySettings,
        RosterSourceConfig,
        Settings,
        SignInSettings,
    )

    documented = (REPOSITORY / "docs" / "configuration.md").read_text(encoding="utf-8")
    tables = ("graphql", "http", "districts")
    names = [name for name in Settings.model_fields if name not in tables]
    names += [f"graphql.{name}" for name in GraphQLLimits.model_fields]
    names += [f"http.{name}" for name in HttpSettings.model_fields]
    names += [f"sign_in.{name}" for name in SignInSettings.model_fields]
    names += [f"persisted_queries.{name}" for name in PersistedQuerySettings.model_fields]
    names += list(DistrictConfig.model_fields)
    names += list(RosterSourceConfig.model_fields)
    for name in names:
        assert f"| `{name}` |" in documented, f"{name} is not in the settings tables"


# schema


def test_schema_prints_the_sdl():
    result = run("schema")

    assert "type Query {" in result.stdout
    assert "type Mutation {" in result.stdout
    assert result.stderr == ""


def test_schema_write_writes_a_file(tmp_path):
    target = tmp_path / "schema.graphql"

    result = run("schema", "--write", str(target))

    assert "type Query {" in target.read_text()
    assert result.stdout == ""


# license issue and sync


def test_license_issue_then_sync_applies_the_new_total(demo, built):
    issued = run("license", "issue", "--district", "demo", "--seats", "1100")
    assert "1100 seats" in issued.stderr
    # Issuing writes the file; the license held changes only when it is read.
    assert built.read_district_state(demo_id(built)).license.total == 1000

    synced = run("sync", "--district", "demo")

    assert "demo: license updated." in synced.stderr
    license = built.read_district_state(demo_id(built)).license
    assert license.total == 1100
    assert license.display == "960 / 1100"
    assert "demo: license unchanged." in run("sync").stderr


def test_sync_reports_a_failing_source_and_keeps_the_license(demo, built):
    built.settings.license_file_for("demo").unlink()

    result = run("sync", "--district", "demo", expect=1)

    assert "demo: license not refreshed: There is no license file yet." in result.stderr
    # The operator's terminal also says where the file was looked for.
    assert f"demo: detail: No license file at {built.settings.license_file_for('demo')}" in (
        result.stderr
    )
    license = built.read_district_state(demo_id(built)).license
    assert license.total == 1000
    assert license.stale


def test_license_issue_checks_its_expiry_date(demo):
    result = run("license", "issue", "-d", "demo", "--seats", "1100", "--expires", "June", expect=1)

    assert "--expires 'June' is not a date" in result.stderr


def test_help_lists_every_command():
    result = run("--help")

    for command in ("serve", "demo", "sync", "schema", "token", "roster", "db", "license"):
        assert command in result.stdout
