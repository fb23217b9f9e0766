"""Installing a plugin as pip does, without building a package: a distribution's metadata on the
import path, its entry point in the ``licensing`` group that every process's plugin manager loads
(tests/plugins/test_example_package.py installs a real package with pip)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from plugins.manager import ENTRY_POINT_GROUP


def install_plugin(site: Path, monkeypatch: pytest.MonkeyPatch, *, name: str, target: str) -> None:
    """Install the plugin ``target`` (``module`` or ``module:attribute``, importable already)
    under the entry-point ``name``, in the folder ``site`` put on the import path for the test."""
    dist_info = site / f"licensing_test_{name}-1.0.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: licensing-test-{name}\nVersion: 1.0.0\n", encoding="utf-8"
    )
    (dist_info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\n{name} = {target}\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
