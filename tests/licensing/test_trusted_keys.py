"""Which keys are trusted to sign licenses, and what happens when a key file is broken."""

from __future__ import annotations

import pytest

from licensing.storage import signing
from tests.utils.districts import public_key_text

pytestmark = pytest.mark.anyio


def test_configured_keys_and_key_files_are_both_trusted(tmp_path, signing_key):
    other = signing.Ed25519PrivateKey.generate()
    (tmp_path / "vendor-2027.pub").write_text(public_key_text(other) + "\n")

    keys = signing.trusted_keys([public_key_text(signing_key)], tmp_path)

    assert [key.key_id for key in keys] == ["configured-1", "vendor-2027"]


async def test_a_broken_key_file_is_named_in_the_log_and_the_last_good_license_is_kept(
    make_district, service, settings, caplog
):

    district = await make_district(seats=500, active=10)
    settings.trusted_keys_dir.mkdir(parents=True, exist_ok=True)
    broken = settings.trusted_keys_dir / "broken.pub"
    broken.write_text("not a key")

    outcome = await service.license_updater.refresh(district_id=district.id, actor="test")

    assert outcome.problem is not None
    assert outcome.problem.code == "BAD_TRUSTED_KEY"
    # The administrator is told what to do; the file's path on the server is for the log.
    assert str(broken) not in outcome.problem.message
    assert "not a valid key" in outcome.problem.message
    assert str(broken) in outcome.detail
    assert str(broken) in caplog.text
    state = service.read_district_state(district.id)
    assert state.license is not None and state.license.total == 500
    assert state.license.stale
