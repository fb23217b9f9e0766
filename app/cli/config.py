"""`licensing config check`."""

from __future__ import annotations

import typer
from pydantic import ValidationError

from app.cli.common import say
from licensing.orchestration.config_check import (
    ConfigProblem,
    configuration_file,
    settings_problems,
    source_problems,
)
from licensing.orchestration.plugin_host import load_plugins
from licensing.settings import Settings

config_cli = typer.Typer(help="Check the configuration.", no_args_is_help=True)


@config_cli.command("check", short_help="Check the settings and every source's options.")
def config_check() -> None:
    """Check the configuration: the settings and every district's every source's options.

    Lists every problem at once (exit status 1), or says what was checked (exit status 0).
    """
    file = configuration_file()
    problems: list[ConfigProblem] = []
    try:
        checked = Settings()
    except ValidationError as error:
        problems = settings_problems(error)
    except Exception as error:  # a TOML syntax error, a missing file named by LICENSING_CONFIG
        problems = [ConfigProblem(f"cannot read the configuration: {error}")]
    else:
        try:
            problems = source_problems(checked, load_plugins(checked))
        except Exception as error:  # a plugin that fails to load is a configuration problem too
            problems = [ConfigProblem(f"the plugins cannot be loaded: {error}")]
    if problems:
        say(f"{file}: {len(problems)} problem(s):")
        for problem in problems:
            say(f"  {file}: {problem}")
        raise typer.Exit(1)
    sources = sum(len(district.roster_sources) + 1 for district in checked.districts.values())
    typer.echo(
        f"{file}: the configuration is valid ({len(checked.districts)} district(s), "
        f"{sources} source(s) checked)."
    )
