"""`licensing schema`: the GraphQL schema's SDL."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from app.cli.common import say


def schema(
    write: Annotated[
        Path | None, typer.Option(metavar="FILE", help="Write the SDL to this file.")
    ] = None,
) -> None:
    """Print the GraphQL schema (SDL), or write it to a file."""
    from graph.schema import schema_sdl

    sdl = schema_sdl()
    if write is None:
        sys.stdout.write(sdl)
    else:
        write.write_text(sdl)
        say(f"Wrote {write}.")
