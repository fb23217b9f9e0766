"""Running the `licensing` command line as an administrator does."""

from __future__ import annotations

from typer.testing import CliRunner, Result

from app.cli import cli


def run(*args: str, expect: int = 0) -> Result:
    result = CliRunner().invoke(cli, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == expect, (
        f"`licensing {' '.join(args)}` exited {result.exit_code}, not {expect}\n"
        f"stdout: {result.stdout}\nstderr: {result.stderr}"
    )
    return result
