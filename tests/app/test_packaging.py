"""What `pip install` of a release puts on a production host (docs/deploy.md, "Installing the
service"): everything `licensing serve` needs, outside the source tree."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

# One pip at a time: the example plugin's install shares this xdist group.
pytestmark = pytest.mark.xdist_group("pip")

REPOSITORY = Path(__file__).resolve().parents[2]


def test_the_wheel_carries_the_licensing_tab_and_the_migrations(tmp_path: Path) -> None:
    built = subprocess.run(
        [
            *[sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps"],
            *["--wheel-dir", str(tmp_path), str(REPOSITORY)],
        ],
        check=False,
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr[-4000:]
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    # app/factory.py serves web/ from beside the app package; a wheel without it cannot start.
    for page in ("index.html", "licensing.js", "api.js", "operations.js", "licensing.css"):
        assert f"web/{page}" in names
    migrations = {name for name in names if name.startswith("db/migrations/versions/")}
    shipped = {
        f"db/migrations/versions/{path.name}"
        for path in (REPOSITORY / "db/migrations/versions").glob("*.py")
    }
    assert shipped and shipped <= migrations
    assert "db/migrations/script.py.mako" in names
