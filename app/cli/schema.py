"""`licensing schema`: the GraphQL schema's SDL."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from app.cli.common import fail, say


def schema(
    write: Annotated[
        Path | None,
        typer.Option(metavar="FILE", dir_okay=False, help="Write the SDL to this file."),
    ] = None,
) -> None:
    """Print the GraphQL schema (SDL), or write it to a file."""
    from graph.schema import schema_sdl

    sdl = schema_sdl()
    if write is None:
        sys.stdout.write(sdl)
    else:
        try:
            write.write_text(sdl)
        except OSError as error:
            raise fail(f"Cannot write {write}: {error.strerror}.") from None
        say(f"Wrote {write}.")
