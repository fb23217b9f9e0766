"""`licensing config check` reports every mistake of the configuration at once, and a misconfigured
source stops the service at start-up rather than at its first fetch."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.utils.cli import run


def configure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> Path:
    config = tmp_path / "licensing.toml"
    config.write_text(text, encoding="utf-8")
    monkeypatch.setenv("LICENSING_CONFIG", str(config))
    return config


THREE_MISTAKES = """
[districts.riverside]
license_source = "licensing_server"
license_options = { url = "https://licensing.example.org" }

[districts.riverside.roster_sources.sis]
kind = "clever"
options = { token = "t0ken", page_size = 0 }

[districts.oakhill.roster_sources.export]
kind = "oneroster_csv"
options = { path = "/srv/exports/oakhill.zip", allow_delta = true, delimeter = ";" }
"""


def test_config_check_reports_every_mistake_at_once(tmp_path, monkeypatch):
    config = configure(tmp_path, monkeypatch, THREE_MISTAKES)

    result = run("config", "check", expect=1)

    lines = [line.strip() for line in result.stderr.splitlines()]
    assert lines[0] == f"{config}: 3 problem(s):"
    problems = lines[1:]
    assert len(problems) == 3
    assert all(line.startswith(f"{config}: district ") for line in problems)
    # Each names its district, source and field, and says what is wrong.
    [server] = [line for line in problems if "source licensing_server" in line]
    assert "district riverside" in server and "field license_options" in server
    assert '"api_key"' in server
    [clever] = [line for line in problems if "source sis" in line]
    assert "district riverside" in clever and "page_size" in clever
    [export] = [line for line in problems if "source export" in line]
    assert "district oakhill" in export and "field options.delimeter" in export
    assert "Extra inputs are not permitted" in export


def test_config_check_reports_an_unknown_vendor_profile(tmp_path, monkeypatch):
    config = configure(
        tmp_path,
        monkeypatch,
        "[districts.riverside.roster_sources.sis]\n"
        'kind = "oneroster_rest"\n'
        'options = { profile = "power_school", base_url = "https://sis.example.org", '
        'client_id = "id", client_secret = "secret" }\n',
    )

    result = run("config", "check", expect=1)

    assert f"{config}: 1 problem(s):" in result.stderr
    assert "district riverside, source sis" in result.stderr
    assert "profile 'power_school' is not one of generic, powerschool, infinite_campus" in (
        result.stderr
    )


def test_config_check_reports_settings_and_source_mistakes_alike(tmp_path, monkeypatch):
    configure(
        tmp_path,
        monkeypatch,
        'default_time_zone = "Mars/Olympus"\n'
        "[districts.riverside]\n"
        "stale_after_days = 0\n"
        "[districts.riverside.roster_sources.sis]\n"
        'kind = "no_such_source"\n',
    )

    result = run("config", "check", expect=1)

    text = result.stderr
    assert "2 problem(s)" in text
    assert "field default_time_zone: unknown IANA time zone 'Mars/Olympus'" in text
    assert "district riverside, field stale_after_days" in text


def test_a_valid_configuration_passes_with_a_summary(tmp_path, monkeypatch):
    config = configure(
        tmp_path,
        monkeypatch,
        "[districts.riverside.roster_sources.sis]\n"
        'kind = "clever"\n'
        'options = { token = "t0ken" }\n',
    )

    result = run("config", "check")

    assert result.stdout.strip() == (
        f"{config}: the configuration is valid (1 district(s), 2 source(s) checked)."
    )


def test_a_misconfigured_source_stops_every_command_at_start_up(tmp_path, monkeypatch):
    configure(
        tmp_path,
        monkeypatch,
        "[districts.riverside.roster_sources.sis]\n"
        'kind = "clever"\n'
        'options = { token = "t0ken", page_sise = 100 }\n',
    )

    result = run("district", "list", expect=2)

    assert "Invalid configuration" in result.stderr
    assert "district riverside, source sis, field options.page_sise" in result.stderr
    assert "licensing config check" in result.stderr


def test_config_check_reports_bad_schedules_and_quiet_hours(tmp_path, monkeypatch):
    configure(
        tmp_path,
        monkeypatch,
        'license_refresh_schedule = "0 */6 * *"\n'
        'quiet_hours = "7am-4pm"\n'
        "[districts.riverside]\n"
        'quiet_hours = "16:00-16:00"\n'
        "[districts.riverside.roster_sources.sis]\n"
        'kind = "clever"\n'
        'options = { token = "t0ken" }\n'
        'schedule = "0 2 30 2 *"\n',
    )

    result = run("config", "check", expect=1)

    text = result.stderr
    assert "4 problem(s)" in text
    assert "field license_refresh_schedule: '0 */6 * *' is not a cron expression of five" in text
    assert "field quiet_hours: '7am-4pm' is not a period of the day; write it as HH:MM-HH:MM" in (
        text
    )
    assert "district riverside, field quiet_hours: '16:00-16:00' starts and ends" in text
    assert "district riverside, source sis, field schedule: '0 2 30 2 *' never matches" in text


def test_the_replaced_interval_settings_name_their_replacement(tmp_path, monkeypatch):
    configure(
        tmp_path,
        monkeypatch,
        "license_refresh_interval_seconds = 21600\n"
        "[districts.riverside.roster_sources.sis]\n"
        'kind = "clever"\n'
        'options = { token = "t0ken" }\n'
        "sync_interval_hours = 24\n",
    )

    result = run("config", "check", expect=1)

    text = result.stderr
    assert "2 problem(s)" in text
    assert (
        "field license_refresh_interval_seconds: license_refresh_interval_seconds is no longer "
        "read" in text
    )
    assert 'Write license_refresh_schedule = "0 */6 * * *" (every 6 hours, on the hour)' in text
    assert "district riverside, source sis, field sync_interval_hours:" in text
    assert 'Write schedule = "0 2 * * *" (every day at 02:00)' in text


def test_a_replaced_interval_variable_stops_the_service_with_its_replacement(tmp_path, monkeypatch):
    monkeypatch.setenv("LICENSING_LICENSE_REFRESH_INTERVAL_SECONDS", "3600")

    result = run("district", "list", expect=2)

    assert "license_refresh_interval_seconds is no longer read" in result.stderr
    assert 'license_refresh_schedule = "0 * * * *"' in result.stderr
