"""What the benchmark scripts share: their result section as markdown, printed raw or rendered.

Each script builds one markdown section (a heading, a sentence on what was measured, a table,
the verdict against its target). ``--markdown`` prints it as it is, for bench/run.py to collect;
without it the section is rendered for a terminal with rich.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rich.console import Console
from rich.markdown import Markdown


def markdown_table(
    headers: Sequence[str], rows: Iterable[Sequence[object]], *, numeric: Sequence[bool]
) -> str:
    """A markdown table; columns flagged in ``numeric`` are right-aligned."""
    lines = [
        "| " + " | ".join(headers) + " |",
        "| " + " | ".join("---:" if right else "---" for right in numeric) + " |",
    ]
    lines.extend("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows)
    return "\n".join(lines)


def show(section: str, *, as_markdown: bool) -> None:
    """Print the section on standard output: raw markdown, or rendered for a terminal."""
    if as_markdown:
        print(section.strip() + "\n", flush=True)
    else:
        Console().print(Markdown(section))
