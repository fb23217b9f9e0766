"""Checking the whole configuration at once: the settings, and every district's sources' options
against the options model of the source they configure.

``licensing config check`` prints every problem; every command that builds the service stops at
start-up on the first list of problems, so a misconfigured source never waits for its first fetch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from licensing.settings import Settings, config_file
from plugins.manager import PluginManager, UnknownSourceError
from plugins.sources import SourceOptions


@dataclass(frozen=True)
class ConfigProblem:
    """One mistake in the configuration: where it is (district, source, field) and what."""

    message: str
    district: str | None = None
    source: str | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = [
            f"{label} {value}"
            for label, value in (
                ("district", self.district),
                ("source", self.source),
                ("field", self.field),
            )
            if value
        ]
        return f"{', '.join(where) or 'configuration'}: {self.message}"


def settings_problems(error: ValidationError) -> list[ConfigProblem]:
    """Each problem of the settings' ValidationError, placed by district and source."""
    problems = []
    for issue in error.errors():
        loc = [str(part) for part in issue["loc"]]
        message = issue["msg"].removeprefix("Value error, ")
        if len(loc) >= 4 and loc[0] == "districts" and loc[2] == "roster_sources":
            problems.append(ConfigProblem(message, loc[1], loc[3], ".".join(loc[4:]) or None))
        elif len(loc) >= 2 and loc[0] == "districts":
            problems.append(ConfigProblem(message, loc[1], None, ".".join(loc[2:]) or None))
        else:
            problems.append(ConfigProblem(message, field=".".join(loc) or None))
    return problems


def source_problems(settings: Settings, plugins: PluginManager) -> list[ConfigProblem]:
    """Every district's license source and roster sources: provided by a plugin, and with
    options their source's ``options_model`` accepts."""
    problems: list[ConfigProblem] = []
    for slug, district in sorted(settings.districts.items()):
        name = district.license_source
        try:
            license_source: Any = plugins.license_source(name)
        except UnknownSourceError as error:
            problems.append(ConfigProblem(str(error), slug, name, "license_source"))
        else:
            problems += _option_problems(
                license_source, district.license_options, slug, name, "license_options"
            )
        for source_name, config in sorted(district.roster_sources.items()):
            try:
                roster_source: Any = plugins.roster_source(config.kind)
            except UnknownSourceError as error:
                problems.append(ConfigProblem(str(error), slug, source_name, "kind"))
            else:
                problems += _option_problems(
                    roster_source, config.options, slug, source_name, "options"
                )
    return problems


def _option_problems(
    source: Any, options: Mapping[str, Any], slug: str, source_name: str, table: str
) -> Iterable[ConfigProblem]:
    model = getattr(source, "options_model", None)
    if not (isinstance(model, type) and issubclass(model, SourceOptions)):
        return []  # a source written before options models: it checks its own options
    try:
        model.model_validate(dict(options), context={"district_slug": slug})
    except ValidationError as error:
        return [
            ConfigProblem(
                issue["msg"].removeprefix("Value error, "),
                slug,
                source_name,
                ".".join([table, *(str(part) for part in issue["loc"])]),
            )
            for issue in error.errors()
        ]
    return []


def configuration_file() -> str:
    """The configuration file read, as the administrator named it, or what is used instead."""
    found = config_file()
    return str(found) if found is not None else "(no configuration file: defaults and variables)"
