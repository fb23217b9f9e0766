"""OneRoster drop folders: the newest complete bundle is picked up from a real SFTP server (or a
local folder), synced by the real engine with exact counts, then archived, deleted or kept; an
unpinned host key, a wrong password and partial uploads are each refused or ignored."""

from __future__ import annotations

import os
import stat
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from licensing.settings import DistrictConfig, RosterSourceConfig
from licensing.storage.roster import current_usage
from licensing.storage.tokens import Permission
from tests.fakes.sftp_server import FakeSftp, serve_sftp
from tests.plugins.test_oneroster_csv import manifest, user_v1p1, users_csv
from tests.utils.cli import run
from tests.utils.districts import token_for
from tests.utils.graphql import graphql_data

pytestmark = pytest.mark.anyio

# Files' modification times: a fixed day, an hour apart, whatever the test clock says.
DAY = 1_780_000_000.0


@pytest.fixture
def sftp(tmp_path: Path) -> Iterator[FakeSftp]:
    with serve_sftp(tmp_path / "sftp-root", tmp_path / "keys") as fake:
        (fake.root / "drop").mkdir()
        yield fake


def drop(
    folder: Path,
    name: str,
    *,
    active: int,
    staff: int = 0,
    inactive: int = 0,
    disabled: int = 0,
    hour: int = 0,
) -> Path:
    """A OneRoster 1.1 bundle with exactly these people, modified ``hour`` hours into DAY."""
    rows = [user_v1p1(f"s{number}", identifier=f"S-{number}") for number in range(active)]
    rows += [user_v1p1(f"t{number}", role="teacher") for number in range(staff)]
    rows += [user_v1p1(f"g{number}", status="tobedeleted") for number in range(inactive)]
    rows += [user_v1p1(f"d{number}", enabled="false") for number in range(disabled)]
    path = folder / name
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.csv", manifest())
        archive.writestr("users.csv", users_csv(*rows))
    touch(path, hour=hour)
    return path


def touch(path: Path, *, hour: float) -> None:
    os.utime(path, (DAY + hour * 3600, DAY + hour * 3600))


def sftp_options(fake: FakeSftp, **options: Any) -> dict[str, Any]:
    return {
        "folder": fake.url("/drop"),
        "username": fake.username,
        "password": fake.password,
        "host_key_fingerprint": fake.host_key_fingerprint,
        "settle_seconds": 0,
        **options,
    }


@pytest.fixture
def district(make_district, settings):
    """district(options) -> the district "riverside" with one source "drop" of those options."""

    async def make(options: dict[str, Any]):
        configure(settings, options)
        return await make_district("riverside", seats=100)

    return make


def configure(settings, options: dict[str, Any]) -> None:
    settings.districts["riverside"] = DistrictConfig(
        roster_sources={
            "drop": RosterSourceConfig(kind="oneroster_drop", options=options, max_drop_share=1.0)
        }
    )


async def sync(service, district):
    return await service.roster_sync.sync(district_id=district.id, source="drop", actor="test")


def used(service, district) -> int:
    with service.database.read() as session:
        return current_usage(session, district_id=district.id).active_students


def downloads(settings) -> list[str]:
    folder = Path(settings.data_dir) / "drop-folders" / "downloads"
    return sorted(os.listdir(folder)) if folder.exists() else []


# --- Which file is read -------------------------------------------------------------------------


async def test_the_newest_file_is_synced_with_exact_counts(service, settings, sftp, district):
    folder = sftp.root / "drop"
    drop(folder, "export-monday.zip", active=5, hour=1)
    drop(folder, "export-wednesday.zip", active=7, staff=2, inactive=3, disabled=1, hour=3)
    drop(folder, "export-tuesday.zip", active=6, hour=2)
    riverside = await district(sftp_options(sftp, after_sync="keep"))

    outcome = await sync(service, riverside)

    assert outcome.status == "applied", outcome.problem
    assert outcome.records == 13
    assert outcome.active_after == 7
    assert outcome.excluded == {
        "staff": 2,
        "inactive": 3,
        "disabled": 1,
        "duplicate": 0,
        "other_role": 0,
    }
    assert used(service, riverside) == 7
    assert sftp.logins == ["password"]  # one visit: a kept file needs no second
    assert downloads(settings) == []  # the private copy is gone
    # What the service keeps of a drop folder is its owner's only.
    kept = Path(settings.data_dir) / "drop-folders"
    assert stat.S_IMODE((kept / "downloads").stat().st_mode) == 0o700
    [state] = (kept / "riverside").iterdir()
    assert stat.S_IMODE(state.stat().st_mode) == 0o600


async def test_a_file_is_read_once_it_has_settled_across_two_looks(service, sftp, district, clock):
    folder = sftp.root / "drop"
    riverside = await district(sftp_options(sftp, settle_seconds=120, after_sync="keep"))
    growing = drop(folder, "export.zip", active=4, hour=1)

    first = await sync(service, riverside)
    assert first.status == "unchanged"
    assert "export.zip" in first.note and "120 s" in first.note

    # Still being uploaded: it grew since the first look, so it has to settle again.
    drop(folder, "export.zip", active=9, hour=2)
    clock.advance(seconds=121)
    assert (await sync(service, riverside)).status == "unchanged"

    clock.advance(seconds=119)  # the same size and time, but not for 120 s yet
    assert (await sync(service, riverside)).status == "unchanged"

    clock.advance(seconds=1)
    settled = await sync(service, riverside)
    assert settled.status == "applied"
    assert used(service, riverside) == 9
    assert growing.exists()


async def test_uploads_in_progress_are_ignored_by_their_names(service, sftp, district):
    folder = sftp.root / "drop"
    drop(folder, "export-1.zip", active=3, hour=1)
    for name in ("export-2.zip.part", "export-2.zip.filepart", ".export-2.zip", "export-2.tmp"):
        drop(folder, name, active=8, hour=5)
    riverside = await district(sftp_options(sftp, pattern="*", after_sync="keep"))

    assert (await sync(service, riverside)).status == "applied"
    assert used(service, riverside) == 3

    again = await sync(service, riverside)
    assert again.status == "unchanged"
    assert "in progress ignored" in again.note
    # The finished upload is renamed to its real name: read at the next look.
    (folder / "export-2.zip.part").rename(folder / "export-2.zip")
    assert (await sync(service, riverside)).status == "applied"
    assert used(service, riverside) == 8


async def test_the_pattern_picks_the_districts_files(service, sftp, district):
    folder = sftp.root / "drop"
    drop(folder, "riverside-0601.ZIP", active=4, hour=1)
    drop(folder, "oakhill-0602.zip", active=40, hour=2)
    drop(folder, "riverside-0602.csv", active=50, hour=3)
    riverside = await district(sftp_options(sftp, pattern="riverside-*.zip", after_sync="keep"))

    assert (await sync(service, riverside)).status == "applied"
    assert used(service, riverside) == 4

    nothing = await sync(service, riverside)
    assert nothing.status == "unchanged"
    assert "riverside-0601.ZIP" in nothing.note


async def test_a_file_already_read_is_not_synced_again_until_a_newer_one_comes(
    service, sftp, district
):
    folder = sftp.root / "drop"
    drop(folder, "export-1.zip", active=5, hour=1)
    riverside = await district(sftp_options(sftp, after_sync="keep"))
    assert (await sync(service, riverside)).status == "applied"

    again = await sync(service, riverside)

    assert again.status == "unchanged"
    assert again.note.startswith("Nothing new in sftp://127.0.0.1:")
    assert "export-1.zip" in again.note
    # An older file dropped late never replaces the newer roster.
    drop(folder, "export-0.zip", active=50, hour=0)
    assert (await sync(service, riverside)).status == "unchanged"
    # The same name uploaded again with new content is new.
    drop(folder, "export-1.zip", active=6, hour=2)
    assert (await sync(service, riverside)).status == "applied"
    assert used(service, riverside) == 6


async def test_an_empty_folder_is_nothing_new(service, sftp, district):
    riverside = await district(sftp_options(sftp))

    outcome = await sync(service, riverside)

    assert outcome.status == "unchanged"
    assert outcome.note == f"Nothing new in {sftp.url('/drop')}: no file matches '*.zip'."


# --- After the sync: archive, delete or keep -------------------------------------------------


async def test_after_a_sync_the_file_is_archived_in_the_processed_folder(service, sftp, district):
    folder = sftp.root / "drop"
    drop(folder, "export.zip", active=5, hour=1)
    riverside = await district(sftp_options(sftp))

    assert (await sync(service, riverside)).status == "applied"

    assert not (folder / "export.zip").exists()
    assert (folder / "processed" / "export.zip").exists()
    # The next night's export has the same name: archived beside the first, nothing lost.
    drop(folder, "export.zip", active=6, hour=25)
    assert (await sync(service, riverside)).status == "applied"
    assert sorted(os.listdir(folder / "processed")) == [
        "export-20261128T150000Z.zip",
        "export.zip",
    ]
    assert used(service, riverside) == 6
    assert (await sync(service, riverside)).status == "unchanged"


async def test_after_a_sync_the_file_is_archived_where_the_options_say(service, sftp, district):
    folder = sftp.root / "drop"
    drop(folder, "export.zip", active=5, hour=1)
    riverside = await district(sftp_options(sftp, archive_folder="/archive/riverside"))

    assert (await sync(service, riverside)).status == "applied"

    assert (sftp.root / "archive" / "riverside" / "export.zip").exists()
    assert os.listdir(folder) == []


async def test_after_a_sync_the_file_is_deleted_when_the_options_say(service, sftp, district):
    folder = sftp.root / "drop"
    drop(folder, "export-1.zip", active=5, hour=1)
    drop(folder, "export-0.zip", active=50, hour=0)
    riverside = await district(sftp_options(sftp, after_sync="delete"))

    assert (await sync(service, riverside)).status == "applied"

    assert sorted(os.listdir(folder)) == ["export-0.zip"]  # older: neither read nor touched
    assert used(service, riverside) == 5


async def test_an_archive_that_fails_is_reported_and_tried_again_at_the_next_look(
    service, sftp, district
):
    folder = sftp.root / "drop"
    drop(folder, "export.zip", active=5, hour=1)
    (folder / "processed").write_text("a file where the archive folder should be")
    riverside = await district(sftp_options(sftp))

    assert (await sync(service, riverside)).status == "applied"  # the roster is in force
    assert (folder / "export.zip").exists()

    again = await sync(service, riverside)
    assert again.status == "unchanged"  # read already: not synced twice
    assert "It could not be tidied away: export.zip could not be archived" in again.note

    (folder / "processed").unlink()
    assert (await sync(service, riverside)).status == "unchanged"
    assert os.listdir(folder / "processed") == ["export.zip"]
    assert used(service, riverside) == 5


async def test_a_failed_sync_leaves_the_file_where_it_is_to_be_read_again(
    service, settings, sftp, district
):
    folder = sftp.root / "drop"
    drop(folder, "export-1.zip", active=5, hour=1)
    riverside = await district(sftp_options(sftp))
    assert (await sync(service, riverside)).status == "applied"
    broken = folder / "export-2.zip"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    touch(broken, hour=2)

    outcome = await sync(service, riverside)

    assert outcome.status == "failed"
    message = outcome.problem.message
    assert f"{sftp.url('/drop')}/export-2.zip is not a readable zip file" in message
    assert str(settings.data_dir) not in message  # the private copy is never named
    assert broken.exists()
    assert used(service, riverside) == 5
    assert downloads(settings) == []
    assert (await sync(service, riverside)).status == "failed"  # read again, still broken


async def test_a_bundle_with_bad_rows_names_the_dropped_file_and_line(service, sftp, district):
    folder = sftp.root / "drop"
    path = folder / "export.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("manifest.csv", manifest())
        archive.writestr("users.csv", users_csv(user_v1p1("s1"), user_v1p1("s2", enabled="maybe")))
    riverside = await district(sftp_options(sftp))

    outcome = await sync(service, riverside)

    assert outcome.status == "failed"
    assert f"{sftp.url('/drop')}/export.zip/users.csv: 1 bad row(s)" in outcome.problem.message
    assert "line 3, column enabledUser" in outcome.problem.message
    assert path.exists()


# --- Connecting: host keys and logins ---------------------------------------------------------


async def test_an_unpinned_host_key_is_refused_showing_its_fingerprint(service, sftp, district):
    drop(sftp.root / "drop", "export.zip", active=5, hour=1)
    other = asyncssh.generate_private_key("ssh-ed25519").get_fingerprint("sha256")
    riverside = await district(sftp_options(sftp, host_key_fingerprint=other))

    outcome = await sync(service, riverside)

    assert outcome.status == "failed"
    message = outcome.problem.message
    assert f"offered the host key ssh-ed25519 {sftp.host_key_fingerprint}" in message
    assert f'host_key_fingerprint = "{sftp.host_key_fingerprint}"' in message
    assert sftp.logins == []  # nothing was sent to the impostor
    assert (sftp.root / "drop" / "export.zip").exists()


async def test_with_no_key_pinned_every_host_key_is_refused(service, sftp, district):
    options = sftp_options(sftp)
    del options["host_key_fingerprint"]
    riverside = await district(options)

    outcome = await sync(service, riverside)

    assert outcome.status == "failed"
    assert sftp.host_key_fingerprint in outcome.problem.message


async def test_a_known_hosts_file_pins_the_host_key(service, sftp, district, tmp_path):
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(sftp.known_hosts_line())
    drop(sftp.root / "drop", "export.zip", active=5, hour=1)
    options = sftp_options(sftp, known_hosts=str(known_hosts))
    del options["host_key_fingerprint"]
    riverside = await district(options)

    assert (await sync(service, riverside)).status == "applied"
    assert used(service, riverside) == 5


async def test_a_client_key_logs_in(service, sftp, district):
    drop(sftp.root / "drop", "export.zip", active=5, hour=1)
    options = sftp_options(sftp, private_key=str(sftp.client_key_file))
    del options["password"], options["username"]
    options["folder"] = f"sftp://{sftp.username}@127.0.0.1:{sftp.port}/drop"
    riverside = await district(options)

    outcome = await sync(service, riverside)

    assert outcome.status == "applied", outcome.problem
    assert sftp.logins == ["publickey", "publickey"]  # the look, then the archiving


async def test_a_wrong_password_is_a_clear_failure_without_the_password(service, sftp, district):
    drop(sftp.root / "drop", "export.zip", active=5, hour=1)
    riverside = await district(sftp_options(sftp, password="not-the-password"))

    outcome = await sync(service, riverside)

    assert outcome.status == "failed"
    message = outcome.problem.message
    assert message == (
        f"The SFTP server 127.0.0.1:{sftp.port} refused the login of 'riverside-sis': check "
        "options username, password, private_key and passphrase."
    )
    assert (sftp.root / "drop" / "export.zip").exists()


async def test_a_key_the_server_does_not_know_is_refused(service, sftp, district, tmp_path):
    stranger = tmp_path / "stranger_key"
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(str(stranger))
    options = sftp_options(sftp, private_key=str(stranger))
    del options["password"]
    riverside = await district(options)

    outcome = await sync(service, riverside)

    assert outcome.status == "failed"
    assert "refused the login of 'riverside-sis'" in outcome.problem.message


async def test_a_missing_folder_and_a_closed_port_are_clear_failures(service, sftp, district):
    riverside = await district(sftp_options(sftp, folder=sftp.url("/nowhere")))
    outcome = await sync(service, riverside)
    assert outcome.problem.message == f"The drop folder {sftp.url('/nowhere')} does not exist."

    configure(service.settings, sftp_options(sftp, folder="sftp://127.0.0.1:1/drop"))
    outcome = await sync(service, riverside)
    assert outcome.status == "failed"
    assert outcome.problem.message.startswith("Cannot connect to the SFTP server 127.0.0.1:1")


# --- A local watched folder -------------------------------------------------------------------


async def test_a_local_folder_follows_the_same_rules(service, settings, district, clock, tmp_path):
    folder = tmp_path / "exports"
    folder.mkdir()
    drop(folder, "export-1.zip", active=5, hour=1)
    drop(folder, "export-2.zip.part", active=9, hour=2)
    riverside = await district({"folder": str(folder), "settle_seconds": 30})

    assert (await sync(service, riverside)).status == "unchanged"  # first look
    clock.advance(seconds=30)
    outcome = await sync(service, riverside)

    assert outcome.status == "applied"
    assert outcome.records == 5 and used(service, riverside) == 5
    assert sorted(os.listdir(folder)) == ["export-2.zip.part", "processed"]
    assert os.listdir(folder / "processed") == ["export-1.zip"]
    assert (await sync(service, riverside)).status == "unchanged"
    assert downloads(settings) == []


async def test_a_local_folder_can_delete_what_it_read(service, district, tmp_path):
    folder = tmp_path / "exports"
    folder.mkdir()
    drop(folder, "export.zip", active=2, staff=1, hour=1)
    riverside = await district({"folder": str(folder), "settle_seconds": 0, "after_sync": "delete"})

    outcome = await sync(service, riverside)

    assert (outcome.status, outcome.records, outcome.active_after) == ("applied", 3, 2)
    assert os.listdir(folder) == []


async def test_data_sources_shows_a_folder_with_nothing_new_as_unchanged(
    service, sftp, district, client
):
    riverside = await district(sftp_options(sftp))
    await sync(service, riverside)
    token = token_for(service, riverside.id, Permission.MANAGE_SETTINGS)

    data = await graphql_data(client, token, "{ dataSources { name lastStatus lastError } }")

    assert data["dataSources"] == [{"name": "drop", "lastStatus": "UNCHANGED", "lastError": None}]


# --- Configuration: checked when it loads, as documented -------------------------------------

REPOSITORY = Path(__file__).resolve().parents[2]


def documented_examples() -> str:
    """The TOML examples of the drop-folder section of docs/roster-sync.md, together."""
    text = (REPOSITORY / "docs" / "roster-sync.md").read_text(encoding="utf-8")
    section = text.split("## SFTP drop folders and watched folders", 1)[1].split("\n## ", 1)[0]
    blocks = [block.split("```", 1)[0] for block in section.split("```toml\n")[1:]]
    assert len(blocks) == 2
    return "\n".join(blocks)


def check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, expect: int = 0):
    config = tmp_path / "licensing.toml"
    config.write_text(text, encoding="utf-8")
    monkeypatch.setenv("LICENSING_CONFIG", str(config))
    return run("config", "check", expect=expect)


def test_the_documented_examples_are_valid(tmp_path, monkeypatch):
    result = check(tmp_path, monkeypatch, documented_examples())

    assert "the configuration is valid (2 district(s)" in result.stdout


MISTAKES = """
[districts.riverside.roster_sources.ftp]
kind = "oneroster_drop"
options = { folder = "ftp://files.example.org/exports", password = "pw" }

[districts.riverside.roster_sources.nologin]
kind = "oneroster_drop"
options = { folder = "sftp://sis@files.example.org/exports" }

[districts.riverside.roster_sources.pin]
kind = "oneroster_drop"
options = { folder = "sftp://sis@files.example.org/exports", password = "pw", host_key_fingerprint = "MD5:12:34" }

[districts.riverside.roster_sources.local]
kind = "oneroster_drop"
options = { folder = "/srv/drop", password = "pw", after_sync = "move", pattern = "in/*.zip" }

[districts.riverside.roster_sources.secret]
kind = "oneroster_drop"
options = { folder = "sftp://sis:hunter2@files.example.org/exports" }
"""


def test_config_check_names_each_mistake_before_anything_runs(tmp_path, monkeypatch):
    result = check(tmp_path, monkeypatch, MISTAKES, expect=1)

    problems = result.stderr
    assert "source ftp, field options: folder 'ftp://files.example.org/exports': only sftp://" in (
        problems
    )
    assert (
        "source nologin, field options: The SFTP folder sftp://files.example.org:22/exports "
        in (problems)
    )
    assert "needs option password or private_key" in problems
    assert "source pin, field options.host_key_fingerprint: 'MD5:12:34' is not a SHA256" in problems
    assert (
        "source local, field options.after_sync: Input should be 'archive', 'delete' or 'keep'"
        in (problems)
    )
    assert "source local, field options.pattern: 'in/*.zip' is not a file name pattern" in problems
    assert "must not carry a password" in problems
    assert "hunter2" not in problems


def test_sftp_options_are_refused_for_a_local_folder(tmp_path, monkeypatch):
    result = check(
        tmp_path,
        monkeypatch,
        "[districts.riverside.roster_sources.local]\n"
        'kind = "oneroster_drop"\n'
        'options = { folder = "/srv/drop", password = "pw", known_hosts = "/etc/kh" }\n',
        expect=1,
    )

    assert "Options password, known_hosts are for an sftp:// folder" in result.stderr


def test_the_command_line_says_when_nothing_is_new(settings, tmp_path, monkeypatch):
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    config = tmp_path / "licensing.toml"
    config.write_text(
        f'data_dir = "{settings.data_dir}"\n'
        f'database_url = "{settings.database_url}"\n'
        "[districts.riverside.roster_sources.drop]\n"
        'kind = "oneroster_drop"\n'
        f"options = {{ folder = {str(uploads)!r}, settle_seconds = 0 }}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("LICENSING_CONFIG", str(config))
    run("district", "create", "riverside", "--name", "Riverside")

    result = run("sync", "--district", "riverside", "--source", "drop")

    assert f"riverside: drop: unchanged: Nothing new in {uploads}: no file matches" in (
        result.stderr
    )
