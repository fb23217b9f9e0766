"""The API change policy, enforced: schema.graphql against the last released schema.

graphql-core compares the two schemas; every breaking change must be named, by its schema
coordinate (`License.lastSyncStatus`, `Query.alerts(placement:)`, `AlertKind.EXPIRED`), in a
`Breaking:` entry of the changelog written since that release. Dangerous changes (a new enum value,
a new optional argument) are reported as warnings unless an entry names them. docs/api-changes.md
is the policy, the changelog and the format this module reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

from graphql import GraphQLError, GraphQLSchema, build_schema
from graphql.utilities.find_schema_changes import (
    BreakingChangeType,
    DangerousChangeType,
    SafeChangeType,
    find_schema_changes,
)

# The first line of the released schema file, written by `release`.
RELEASED_HEADER = re.compile(
    r"^# Released schema: (?P<version>\d+\.\d+\.\d+) \((?P<date>\d{4}-\d{2}-\d{2})\)\s*$"
)
# `### 0.2.0 (unreleased)` or `### 0.1.0 (2026-11-29)`, newest first.
VERSION_HEADING = re.compile(
    r"^### (?P<version>\d+\.\d+\.\d+) \((?P<date>unreleased|\d{4}-\d{2}-\d{2})\)\s*$"
)
# `- Breaking: ...`; an indented line after it continues the entry.
ENTRY = re.compile(r"^- (?P<label>[A-Z][a-z]+): (?P<text>.+)$")
# The deprecation period of docs/api-changes.md, enforced from 0.2.0 (the contract integrators
# build on) on.
DEPRECATION_ENFORCED_FROM = (0, 2, 0)
DEPRECATION_MINOR_RELEASES = 2
DEPRECATION_MONTHS = 6
ENTRY_LABELS = ("Breaking", "Deprecated", "Dangerous", "Added", "Changed", "Fixed")
# A schema coordinate in backticks: `Type`, `Type.field`, `Type.field(arg:)`, `@directive(arg:)`.
COORDINATE = re.compile(
    r"`(@?[_A-Za-z][_0-9A-Za-z]*(?:\.[_A-Za-z][_0-9A-Za-z]*)?(?:\([_A-Za-z][_0-9A-Za-z]*:\))?)`"
)
# A coordinate inside graphql-core's description of a change.
_BARE_COORDINATE = (
    r"(@?[_A-Za-z][_0-9A-Za-z]*(?:\.[_A-Za-z][_0-9A-Za-z]*)?(?:\([_A-Za-z][_0-9A-Za-z]*:\))?)"
)

# How graphql-core (3.3) words each change, with the coordinate the change is about. A union or an
# interface list is named by the type that holds it.
_DESCRIPTIONS: dict[str, re.Pattern[str]] = {
    "TYPE_REMOVED": re.compile(rf"^(?:Standard scalar )?{_BARE_COORDINATE} was removed"),
    "TYPE_CHANGED_KIND": re.compile(rf"^{_BARE_COORDINATE} changed from "),
    "TYPE_REMOVED_FROM_UNION": re.compile(rf" was removed from union type {_BARE_COORDINATE}\.$"),
    "TYPE_ADDED_TO_UNION": re.compile(rf" was added to union type {_BARE_COORDINATE}\.$"),
    "IMPLEMENTED_INTERFACE_REMOVED": re.compile(rf"^{_BARE_COORDINATE} no longer implements "),
    "IMPLEMENTED_INTERFACE_ADDED": re.compile(
        rf" added to interfaces implemented by {_BARE_COORDINATE}\.$"
    ),
    "DIRECTIVE_REPEATABLE_REMOVED": re.compile(rf" from {_BARE_COORDINATE}\.$"),
    "DIRECTIVE_LOCATION_REMOVED": re.compile(rf" from {_BARE_COORDINATE}\.$"),
}
# Every other change names its coordinate first, after a word or two ("Field License.used was
# removed.", "A required argument Query.x(y:) was added.", "Enum value AlertKind.X was added.").
_FIRST_QUALIFIED = re.compile(
    r"(@[_A-Za-z]\w*(?:\(\w+:\))?|[_A-Za-z]\w*\.[_A-Za-z]\w*(?:\(\w+:\))?)"
)


class ChangePolicyError(Exception):
    """The changelog or the released schema cannot be read; the message says where and why."""


@dataclass(frozen=True)
class SchemaChange:
    """One difference between the released schema and the current one."""

    coordinate: str
    kind: str  # graphql-core's name for it, e.g. FIELD_REMOVED
    description: str


@dataclass(frozen=True)
class ChangelogEntry:
    label: str
    text: str
    coordinates: frozenset[str]


@dataclass(frozen=True)
class ChangelogSection:
    version: str
    released_on: date | None  # None while unreleased
    entries: tuple[ChangelogEntry, ...]

    def names(self, coordinate: str, *, label: str | None = None) -> bool:
        return any(
            coordinate in entry.coordinates and (label is None or entry.label == label)
            for entry in self.entries
        )


@dataclass(frozen=True)
class ChangeReport:
    """What changed since the baseline release, and what the changelog fails to say."""

    baseline_version: str
    baseline_released_on: date
    breaking: tuple[SchemaChange, ...]
    dangerous: tuple[SchemaChange, ...]
    safe: tuple[SchemaChange, ...]
    unlisted_breaking: tuple[SchemaChange, ...]
    unlisted_dangerous: tuple[SchemaChange, ...]
    sections_since: tuple[str, ...] = field(default=())
    # From 0.2.0: breaking changes listed, but made before their deprecation period ended.
    too_early: tuple[SchemaChange, ...] = field(default=())

    @property
    def passed(self) -> bool:
        return not (self.unlisted_breaking or self.too_early)

    def text(self) -> str:
        """The report a person reads: what fails, what to add to the changelog, the warnings."""
        since = f"since {self.baseline_version} ({self.baseline_released_on.isoformat()})"
        lines: list[str] = []
        if not (self.breaking or self.dangerous or self.safe):
            return f"No schema changes {since}.\n"
        lines.append(
            f"Schema changes {since}: {len(self.breaking)} breaking, "
            f"{len(self.dangerous)} dangerous, {len(self.safe)} safe."
        )
        if self.unlisted_breaking:
            target = self.sections_since[0] if self.sections_since else "the unreleased"
            lines.append("")
            lines.append(
                f"FAILED: {len(self.unlisted_breaking)} breaking change(s) not named in a "
                f"`Breaking:` entry of the changelog {since} (docs/api-changes.md). "
                f"Name each coordinate in the {target} section, e.g.:"
            )
            lines.extend(
                f"- Breaking: `{change.coordinate}`: {change.description}"
                for change in self.unlisted_breaking
            )
        if self.too_early:
            lines.append("")
            lines.append(
                f"FAILED: {len(self.too_early)} breaking change(s) made before the deprecation "
                f"period ended. Since 0.2.0 a coordinate is removed or changed only after a "
                f"`Deprecated:` entry in a release at least {DEPRECATION_MINOR_RELEASES} minor "
                f"releases and {DEPRECATION_MONTHS} months earlier:"
            )
            lines.extend(f"  {c.coordinate}: {c.description}" for c in self.too_early)
        listed_breaking = [c for c in self.breaking if c not in self.unlisted_breaking]
        if listed_breaking:
            lines.append("")
            lines.append("Breaking changes named in the changelog:")
            lines.extend(f"  {c.coordinate}: {c.description}" for c in listed_breaking)
        if self.unlisted_dangerous:
            lines.append("")
            lines.append(
                "WARNING: dangerous change(s) not named in the changelog (clients that do not "
                "expect them may misbehave):"
            )
            lines.extend(
                f"- Dangerous: `{change.coordinate}`: {change.description}"
                for change in self.unlisted_dangerous
            )
        return "\n".join(lines) + "\n"


def changes_between(released_sdl: str, current_sdl: str) -> list[SchemaChange]:
    """Every change from the released schema to the current one, each with its coordinate."""
    released = _build("the released schema", released_sdl)
    current = _build("schema.graphql", current_sdl)
    return [
        SchemaChange(
            coordinate=_coordinate(change.type.name, change.description),
            kind=change.type.name,
            description=change.description,
        )
        for change in find_schema_changes(released, current)
    ]


def parse_released_header(released_sdl: str) -> tuple[str, date]:
    """The version and date the released schema file records on its first line."""
    first_line = released_sdl.split("\n", 1)[0]
    match = RELEASED_HEADER.match(first_line)
    if match is None:
        raise ChangePolicyError(
            "The released schema's first line must read `# Released schema: X.Y.Z (YYYY-MM-DD)`; "
            "it is written by `licensing schema --release`."
        )
    return match["version"], date.fromisoformat(match["date"])


def parse_changelog(text: str) -> list[ChangelogSection]:
    """The changelog's version sections, newest first, as the document lists them."""
    sections: list[ChangelogSection] = []
    current: tuple[str, date | None, list[ChangelogEntry]] | None = None
    entry_lines: list[tuple[int, str]] = []

    def close_entry() -> None:
        if current is None or not entry_lines:
            return
        line_number, first = entry_lines[0]
        whole = " ".join([first, *(line.strip() for _, line in entry_lines[1:])])
        match = ENTRY.match(whole)
        if match is None or match["label"] not in ENTRY_LABELS:
            raise ChangePolicyError(
                f"Changelog line {line_number}: an entry starts `- Label: ` with a label among "
                f"{', '.join(ENTRY_LABELS)}."
            )
        current[2].append(
            ChangelogEntry(
                label=match["label"],
                text=match["text"],
                coordinates=frozenset(COORDINATE.findall(match["text"])),
            )
        )
        entry_lines.clear()

    def close_section() -> None:
        close_entry()
        if current is not None:
            sections.append(ChangelogSection(current[0], current[1], tuple(current[2])))

    for line_number, line in enumerate(text.splitlines(), start=1):
        heading = VERSION_HEADING.match(line)
        if heading is not None:
            close_section()
            released = heading["date"]
            current = (
                heading["version"],
                None if released == "unreleased" else date.fromisoformat(released),
                [],
            )
        elif line.startswith("#"):
            # Any other heading ends the changelog section before it.
            close_section()
            current = None
        elif current is None:
            continue
        elif line.startswith("- "):
            close_entry()
            entry_lines.append((line_number, line))
        elif line.startswith("  ") and entry_lines:
            entry_lines.append((line_number, line))
        elif line.strip():
            close_entry()
    close_section()
    return sections


def check_changes(
    *, current_sdl: str, released_sdl: str, changelog: str, today: date
) -> ChangeReport:
    """Compare schema.graphql with the released schema and hold the changes to the changelog.

    `today` is the day the change would ship, for the deprecation period.
    """
    baseline_version, baseline_date = parse_released_header(released_sdl)
    sections = parse_changelog(changelog)
    since = _sections_since(sections, baseline_version)
    changes = changes_between(released_sdl, current_sdl)
    breaking = tuple(c for c in changes if c.kind in BreakingChangeType.__members__)
    dangerous = tuple(c for c in changes if c.kind in DangerousChangeType.__members__)
    safe = tuple(c for c in changes if c.kind in SafeChangeType.__members__)
    unlisted_breaking = tuple(
        c for c in breaking if not any(s.names(c.coordinate, label="Breaking") for s in since)
    )
    too_early: tuple[SchemaChange, ...] = ()
    if _version(baseline_version) >= DEPRECATION_ENFORCED_FROM:
        too_early = tuple(
            c
            for c in breaking
            if c not in unlisted_breaking and not _deprecated_long_enough(c, sections, today)
        )
    return ChangeReport(
        baseline_version=baseline_version,
        baseline_released_on=baseline_date,
        breaking=breaking,
        dangerous=dangerous,
        safe=safe,
        unlisted_breaking=unlisted_breaking,
        unlisted_dangerous=tuple(
            c for c in dangerous if not any(s.names(c.coordinate) for s in since)
        ),
        sections_since=tuple(s.version for s in since),
        too_early=too_early,
    )


@dataclass(frozen=True)
class Release:
    version: str
    released_schema: str
    changelog: str
    next_version: str


def release(*, current_sdl: str, changelog: str, released_on: date) -> Release:
    """The released schema file and the changelog after releasing the unreleased section.

    The top section `### X.Y.Z (unreleased)` gets the date; a new `### X.(Y+1).0 (unreleased)`
    section opens above it. The caller checks the changes first.
    """
    lines = changelog.splitlines(keepends=True)
    for index, line in enumerate(lines):
        heading = VERSION_HEADING.match(line.rstrip("\n"))
        if heading is None:
            continue
        if heading["date"] != "unreleased":
            raise ChangePolicyError(
                f"The newest changelog section ({heading['version']}) is already released; "
                "add `### X.Y.Z (unreleased)` above it with this release's entries."
            )
        version = heading["version"]
        major, minor, _patch = _version(version)
        next_version = f"{major}.{minor + 1}.0"
        lines[index : index + 1] = [
            f"### {next_version} (unreleased)\n",
            "\n",
            f"### {version} ({released_on.isoformat()})\n",
        ]
        break
    else:
        raise ChangePolicyError("The changelog has no `### X.Y.Z (unreleased)` section to release.")
    _build("schema.graphql", current_sdl)
    header = (
        f"# Released schema: {version} ({released_on.isoformat()})\n"
        "# The baseline `licensing schema --check-changes` compares schema.graphql with.\n"
        "# Written by `licensing schema --release` (see docs/api-changes.md); never edited by hand.\n"
        "\n"
    )
    return Release(
        version=version,
        released_schema=header + current_sdl,
        changelog="".join(lines),
        next_version=next_version,
    )


def _deprecated_long_enough(
    change: SchemaChange, sections: list[ChangelogSection], today: date
) -> bool:
    """Whether a release at least two minor releases and six months ago deprecated the coordinate.

    `sections` is newest first; the newest is the release the change goes into.
    """
    if not sections:
        return False
    shipping = _version(sections[0].version)[:2]
    for index, section in enumerate(sections):
        if section.released_on is None or not section.names(change.coordinate, label="Deprecated"):
            continue
        deprecated_in = _version(section.version)[:2]
        # Minor releases after the deprecating one, up to and including the one shipping this.
        releases_since = {_version(s.version)[:2] for s in sections[:index]} - {deprecated_in}
        if (
            shipping in releases_since
            and len(releases_since) >= DEPRECATION_MINOR_RELEASES
            and _months_later(section.released_on, DEPRECATION_MONTHS) <= today
        ):
            return True
    return False


def _version(text: str) -> tuple[int, int, int]:
    major, minor, patch = (int(part) for part in text.split("."))
    return major, minor, patch


def _months_later(day: date, months: int) -> date:
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    # The 31st of August plus six months is the last day of February.
    for last_day in (day.day, 30, 29, 28):
        try:
            return date(year, month, min(day.day, last_day))
        except ValueError:
            continue
    raise AssertionError("unreachable: every month has 28 days")


def _sections_since(sections: list[ChangelogSection], baseline: str) -> list[ChangelogSection]:
    for index, section in enumerate(sections):
        if section.version == baseline:
            return sections[:index]
    raise ChangePolicyError(
        f"The changelog has no `### {baseline} (YYYY-MM-DD)` section for the released schema's "
        "version."
    )


def _build(name: str, sdl: str) -> GraphQLSchema:
    try:
        return build_schema(sdl)
    except GraphQLError as error:
        raise ChangePolicyError(f"{name} is not a valid GraphQL schema: {error.message}") from None


def _coordinate(kind: str, description: str) -> str:
    pattern = _DESCRIPTIONS.get(kind)
    match = (pattern or _FIRST_QUALIFIED).search(description)
    # A wording this module does not know: the whole description stands in, so the change is
    # still reported (and can only be listed by updating this module).
    return match.group(1) if match else description
