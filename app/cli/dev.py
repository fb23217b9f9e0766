"""`licensing dev`: tools for developing against this service."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app import demo as demo_district
from app.cli.common import fail, say, settings
from licensing.storage import signing

dev_cli = typer.Typer(help="Tools for developing against this service.", no_args_is_help=True)


@dev_cli.command("license-server", short_help="Serve the licensing-server contract on loopback.")
def dev_license_server(
    host: Annotated[
        str,
        typer.Option(metavar="HOST", help="Loopback interface only: 127.0.0.1, localhost or ::1."),
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(min=1, max=65535, metavar="PORT", help="Port to listen on.")
    ] = 8765,
    key: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE", dir_okay=False, help="Ed25519 private key (PEM); default: the demo key."
        ),
    ] = None,
    licenses: Annotated[
        Path | None,
        typer.Option(
            metavar="FOLDER",
            file_okay=False,
            help="Folder of <slug>.license files; default: <data_dir>/licenses.",
        ),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(metavar="KEY", help="The API key to accept; default: a new random one."),
    ] = None,
) -> None:
    """Serve the licensing-server contract on loopback, for development.

    Serves the terms of each <slug>.license file in the folder, signed anew on every request.

    See docs/licensing-server.md.
    """
    import secrets

    import uvicorn

    from app.dev_license_server import create_license_server
    from plugins.fields import is_loopback

    if not is_loopback(host):
        raise fail(
            f"--host {host!r} refused: the development licensing server listens on loopback "
            "only (127.0.0.1, localhost or ::1).",
            code=2,
        )
    config = settings()
    key_path = key or demo_district.demo_paths(config).signing_key
    if not key_path.exists():
        raise fail(f"No signing key at {key_path}. Run `licensing demo` first, or pass --key.")
    try:
        private_key = signing.load_signing_key(key_path)
    except ValueError as error:
        raise fail(f"{error}.") from None
    folder = (licenses or config.data_dir / "licenses").resolve()
    accepted = api_key or secrets.token_urlsafe(32)
    app = create_license_server(
        signing_key=private_key,
        licenses=folder,
        api_keys={accepted: "*"},
        key_id=key_path.stem if key else demo_district.DEMO_KEY_ID,
    )
    url = f"http://{'[::1]' if host == '::1' else host}:{port}"
    say(
        f"Development licensing server at {url}, serving {folder}/<slug>.license, signed with "
        f"{key_path}. Point a district at it in licensing.toml:\n\n"
        "  [districts.demo]\n"
        '  license_source = "licensing_server"\n'
        f'  license_options = {{ url = "{url}", api_key = "{accepted}" }}\n'
    )
    uvicorn.run(app, host=host, port=port, log_level="info")
