"""`licensing queries register` and `list`: the operator's registered documents."""

from __future__ import annotations

import hashlib

from sqlmodel import select

from db.models import PersistedQuery
from tests.utils.cli import run

DOCUMENT = "query Seats { license { display level } }\n"


def test_register_checks_each_document_and_prints_its_hash(tmp_path, built):
    good = tmp_path / "seats.graphql"
    good.write_text(DOCUMENT, encoding="utf-8")
    bad = tmp_path / "bad.graphql"
    bad.write_text("{ license { nope } }", encoding="utf-8")

    refused = run("queries", "register", str(good), str(bad), expect=1)
    assert "bad.graphql is not a document this server can run" in refused.stderr
    first = run("queries", "register", str(good))
    again = run("queries", "register", str(good))

    digest = hashlib.sha256(DOCUMENT.encode("utf-8")).hexdigest()
    assert first.stdout.strip() == again.stdout.strip() == digest
    assert "already registered" in again.stderr
    with built.database.read() as session:
        [row] = session.exec(select(PersistedQuery)).all()
    assert (row.sha256, row.document, row.district_id) == (digest, DOCUMENT, None)
    listed = run("queries", "list").stdout
    assert f"{digest}\t*\tquery Seats" in listed
    assert "the Licensing tab's TAB_QUERY" in listed
