"""`licensing license issue`: signed license files."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from app import demo as demo_district
from app.cli.common import DistrictOption, district_id, fail, say, service
from licensing.storage import signing

license_cli = typer.Typer(help="Issue signed license files.", no_args_is_help=True)


@license_cli.command("issue", short_help="Sign a license and write the district's license file.")
def license_issue(
    district: DistrictOption,
    seats: Annotated[int, typer.Option(min=0, metavar="SEATS", help="Licensed seats.")],
    expires: Annotated[
        str | None,
        typer.Option(
            metavar="DATE", help="Last valid day, YYYY-MM-DD (default: keep the current)."
        ),
    ] = None,
    deactivated: Annotated[
        bool, typer.Option(show_default=False, help="Issue a deactivated license.")
    ] = False,
    key: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE", dir_okay=False, help="Ed25519 private key (PEM); default: the demo key."
        ),
    ] = None,
) -> None:
    """Sign a license and write it where the district's license file is read.

    The demo's key stands in for the licensing service's: after issuing, press Force License
    Update to see the new license.
    """
    built = service()
    target = district_id(built, district)
    key_path = key or demo_district.demo_paths(built.settings).signing_key
    if not key_path.exists():
        raise fail(f"No signing key at {key_path}.")
    state = built.read_district_state(target)
    snapshot = state.snapshot
    held = snapshot.license
    try:
        expires_on = date.fromisoformat(expires) if expires else None
    except ValueError:
        raise fail(f"--expires {expires!r} is not a date like 2027-06-30.") from None
    if expires_on is None:
        if held is None:
            raise fail("This district has no license yet: give --expires.")
        expires_on = held.expires_on
    terms = signing.LicenseTerms(
        license_id=held.license_id if held else f"M1T1-{district.upper()}-0001",
        district=district,
        licensed_to=held.licensed_to if held else snapshot.district.official_name,
        legal_entity_name=held.legal_entity_name if held else snapshot.district.legal_entity_name,
        total=seats,
        created_on=held.created_on if held else built.clock().date(),
        expires_on=expires_on,
        deactivated=deactivated,
        overage_allowance=held.overage_allowance if held else 0.0,
        issued_at=built.clock(),
    )
    try:
        private_key = signing.load_signing_key(key_path)
    except ValueError as error:
        raise fail(f"{error}.") from None
    path = demo_district.issue_license_file(
        built.settings,
        private_key=private_key,
        district_slug=district,
        terms=terms,
        key_id=key_path.stem if key else demo_district.DEMO_KEY_ID,
    )
    say(
        f"Wrote a signed license for {seats} seats to {path}. Press Force License Update to apply it."
    )
