"""Local files that hold district data or keys are created for their owner only.

The service's data folder, the SQLite database in it and the private signing key hold student
names and secrets; on a shared host the usual umask (022) would make them readable by every user.
Folders and files that already exist are left as the operator set them.
"""

from __future__ import annotations

import os
from contextlib import suppress
from pathlib import Path

PRIVATE_DIRECTORY_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def make_private_directory(path: Path) -> None:
    """Create ``path`` and any missing folders above it, each owner-only (0700)."""
    missing: list[Path] = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        with suppress(FileExistsError):  # another process made it meanwhile
            folder.mkdir(mode=PRIVATE_DIRECTORY_MODE)


def create_private_file(path: Path) -> None:
    """Create ``path`` empty and owner-only (0600), with its folder, unless it exists."""
    make_private_directory(path.parent)
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, PRIVATE_FILE_MODE))
