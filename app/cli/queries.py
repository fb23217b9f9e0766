"""`licensing queries`: register GraphQL documents clients may send by their hash (automatic
persisted queries, docs/caching.md), which a server in registered-only mode needs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from sqlmodel import select

from app.cli.common import COMMAND_LINE, fail, say, service
from db.models import District
from db.session import stored_id
from licensing.storage.persisted_queries import register_document, registered_documents

queries_cli = typer.Typer(
    help="Register the GraphQL documents clients may send by their hash.", no_args_is_help=True
)


@queries_cli.command("register", short_help="Register GraphQL documents by their hash.")
def queries_register(
    files: Annotated[
        list[Path],
        typer.Argument(metavar="FILE", hidden=True, exists=True, dir_okay=False, readable=True),
    ],
    district: Annotated[
        str | None,
        typer.Option(
            "--district",
            "-d",
            metavar="SLUG",
            help="Only for this district (default: for every district).",
        ),
    ] = None,
) -> None:
    """Register each FILE's document (one GraphQL document per file), exactly as written, after
    checking it against the schema and the document limits.

    Clients hash the same text. Prints each document's SHA-256."""
    from graph.persisted import PersistedQueries, document_hash  # strawberry: only when needed
    from graph.schema import build_schema

    built = service()
    settings = built.settings
    checker = PersistedQueries(
        schema=build_schema(settings.graphql),
        service=built,
        limits=settings.graphql,
        settings=settings.persisted_queries,
    )
    documents: list[tuple[Path, str, str]] = []
    for path in files:
        text = path.read_text(encoding="utf-8")
        sha256 = document_hash(text)
        if not checker.prepare(sha256, text).valid:
            raise fail(
                f"{path} is not a document this server can run (it does not parse, is over the "
                "limits, or asks for what the schema does not have); nothing was registered."
            )
        documents.append((path, sha256, text))
    with built.database.write() as session:
        owner = None
        if district is not None:
            row = session.exec(select(District).where(District.slug == district)).first()
            if row is None:
                raise fail(f"There is no district {district!r}.")
            owner = stored_id(row)
        for path, sha256, text in documents:
            added = register_document(
                session,
                sha256=sha256,
                document=text,
                district_id=owner,
                registered_by=COMMAND_LINE,
                now=built.clock(),
            )
            say(f"{path}: {'registered' if added else 'already registered'}")
            typer.echo(sha256)


@queries_cli.command("list", short_help="List the registered documents.")
def queries_list() -> None:
    """List the registered documents: hash, district (* for every district), first line."""
    from app.factory import tab_documents
    from graph.persisted import document_hash

    built = service()
    with built.database.read() as session:
        registered = registered_documents(session)
        slugs = {stored_id(row): row.slug for row in session.exec(select(District)).all()}
    for name, text in tab_documents().items():
        typer.echo(f"{document_hash(text)}\t*\tthe Licensing tab's {name}")
    for document in registered:
        owner = "*" if document.district_id is None else slugs.get(document.district_id, "?")
        first_line = document.document.strip().splitlines()[0] if document.document.strip() else ""
        typer.echo(f"{document.sha256}\t{owner}\t{first_line[:80]}")
