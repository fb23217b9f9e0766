"""mypy finds no type error in the application packages ([tool.mypy] in pyproject.toml).

It runs as a test so that `make test` checks types beside the other tests instead of before them.
`make lint` runs the same check on its own.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mypy import api

REPOSITORY = Path(__file__).resolve().parents[2]


def test_mypy_finds_no_type_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    # The configuration names the packages relative to the repository.
    monkeypatch.chdir(REPOSITORY)
    report, errors, exit_status = api.run([])

    assert exit_status == 0, f"mypy found type errors:\n{report}{errors}"
