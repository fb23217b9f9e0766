"""`licensing report quarantined`: the rows a roster sync could not classify, for the
administrator to fix at their source; and what `licensing sync` says about them."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from tests.utils.cli import run

BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "oneroster" / "v1p1-unclassifiable-rows"
COLUMNS = ["source", "run", "file", "line", "reason", "source_id"]


def configure(tmp_path: Path) -> None:
    (tmp_path / "licensing.toml").write_text(
        "[districts.riverside.roster_sources.sis]\n"
        'kind = "oneroster_csv"\n'
        f"options = {{ path = {json.dumps(str(BUNDLE))} }}\n"
    )
    run("district", "create", "riverside", "--name", "Riverside Unified School District")


def test_a_sync_holding_quarantined_rows_says_so_and_the_report_lists_them(tmp_path):
    configure(tmp_path)

    held = run("sync", "--district", "riverside", "--source", "sis", expect=1)
    assert "riverside: sis: held: 2 of the 20 rows 'sis' gave (10%)" in held.stderr
    assert "0 warning(s), 2 row(s) quarantined (not counted)" in held.stderr

    result = run("report", "quarantined", "--district", "riverside")

    lines = list(csv.reader(io.StringIO(result.stdout_bytes.decode("utf-8"), newline="")))
    assert lines[0] == COLUMNS
    run_id = lines[1][1]
    assert lines[1:] == [
        [
            "sis",
            run_id,
            "users.csv",
            "20",
            "no sourcedId: the row cannot be told apart from others",
            "",
        ],
        ["sis", run_id, "users.csv", "21", "no role: the row cannot be classified", "s-98"],
    ]
    assert result.stderr == f"Exported 2 quarantined row(s) from sis run {run_id} (held).\n"

    as_json = run("report", "quarantined", "--district", "riverside", "--format", "json")
    first = json.loads(as_json.stdout.splitlines()[0])
    assert first == {
        "source": "sis",
        "run": int(run_id),
        "file": "users.csv",
        "line": 20,
        "reason": "no sourcedId: the row cannot be told apart from others",
        "source_id": None,
    }

    output = tmp_path / "quarantined.csv"
    run("report", "quarantined", "--district", "riverside", "--run", run_id, "-o", str(output))
    assert output.read_text(encoding="utf-8").count("users.csv") == 2


def test_an_unknown_run_is_named_without_a_traceback(tmp_path):
    configure(tmp_path)

    result = run("report", "quarantined", "--district", "riverside", "--run", "999", expect=1)

    assert "There is no sync run 999." in result.stderr


def test_before_any_sync_the_report_is_a_header_only(tmp_path):
    configure(tmp_path)

    result = run("report", "quarantined", "--district", "riverside")

    assert result.stdout_bytes == (",".join(COLUMNS) + "\r\n").encode()
    assert "Exported 0 quarantined row(s) from no sync yet." in result.stderr


def test_an_imported_bundle_is_held_the_same_way(tmp_path):
    configure(tmp_path)

    held = run(
        "roster",
        "import",
        str(BUNDLE),
        "--district",
        "riverside",
        "--source",
        "oneroster_csv",
        "--replace",
        expect=1,
    )

    assert "0 warning(s), 2 row(s) quarantined (not counted)" in held.stderr
    assert (
        "Nothing imported yet: 2 of the 20 rows 'oneroster_csv' gave (10%) could not be "
        "classified (no id or no role) and were quarantined" in held.stderr
    )
