"""`licensing demo`: the demo district, and a sign-in link to its Licensing tab."""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated

import typer

from app import demo as demo_district
from app.cli.common import COMMAND_LINE, district_id, local_url, say, service
from licensing.orchestration.service import LicensingService
from licensing.storage.tokens import Permission, issue_token


def demo(
    sign_in_link: Annotated[
        bool | None,
        typer.Option(
            "--sign-in-link/--no-sign-in-link",
            help="Create a MANAGE_SETTINGS token and print a sign-in link for the Licensing tab. "
            "Default: when standard error is a terminal (as under `make run`).",
        ),
    ] = None,
) -> None:
    """Create the demo district (1000 seats, 960 active students) unless it exists."""
    built = service(upgrade=True)
    if demo_district.demo_exists(built):
        say(f"The demo district {demo_district.DEMO_SLUG!r} is already set up.")
    else:
        asyncio.run(demo_district.create_demo(built))
        say(
            f"Created the demo district {demo_district.DEMO_SLUG!r}: "
            f"{demo_district.DEMO_NAME}, 960 / 1000 licenses used, alert threshold 50."
        )
    if sign_in_link is None:
        sign_in_link = sys.stderr.isatty()
    if sign_in_link:
        print_sign_in_link(built)
    url = local_url(built.settings.host, built.settings.port)
    say(
        "Or sign in with a token:\n"
        "  TOKEN=$(.venv/bin/licensing token create --district demo --permission MANAGE_SETTINGS)\n"
        f'  curl -s {url}/graphql -H "Authorization: Bearer $TOKEN" \\\n'
        "    -H 'Content-Type: application/json' \\\n"
        '    -d \'{"query": "{ license { display level status } alerts { message } }"}\''
    )


def print_sign_in_link(built: LicensingService) -> None:
    """A fresh MANAGE_SETTINGS token for the demo, in a link's fragment (never sent to the server
    or its logs): the page exchanges it once for its session cookie and removes it from the
    address bar (docs/licensing-tab.md)."""
    config = built.settings
    _token_id, secret = issue_token(
        built.database,
        district_id=district_id(built, demo_district.DEMO_SLUG),
        name="demo sign-in link",
        permissions={Permission.MANAGE_SETTINGS},
        actor=COMMAND_LINE,
        now=built.clock(),
    )
    say(
        "Open the Licensing tab with this one-time sign-in link (once `licensing serve` runs):\n"
        f"  {local_url(config.host, config.port)}/#token={secret}\n"
    )
