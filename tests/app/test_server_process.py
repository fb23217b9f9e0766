"""What a `licensing serve` worker process sets up before it serves (app/runtime.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette

from app.factory import create_served_app
from app.runtime import SERVER_GC_THRESHOLDS


@pytest.fixture
def python_gc_thresholds() -> Iterator[tuple[int, int, int]]:
    """This test process's thresholds, put back afterwards."""
    thresholds = gc.get_threshold()
    yield thresholds
    gc.set_threshold(*thresholds)


def test_a_served_worker_collects_garbage_less_often_than_python_does_by_default(
    python_gc_thresholds: tuple[int, int, int],
) -> None:
    app = create_served_app()

    assert isinstance(app, Starlette)
    assert gc.get_threshold() == SERVER_GC_THRESHOLDS
    young, _, full = SERVER_GC_THRESHOLDS
    assert young > python_gc_thresholds[0] and full > python_gc_thresholds[2]
