"""Fixtures for triggers and the engine: a real SQLite file per test, a manual clock."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from plait.engine import Engine
from plait.plugins import PluginHost
from plait.triggers import ManualClock, Trigger
from plait_provenance_sqlite import SqliteProvenance
from plait_provenance_sqlite.triggers import SqliteTriggerStore

sys.path.insert(0, str(Path(__file__).parent))

START = datetime(2026, 3, 27, 12, 0, tzinfo=UTC)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "pipeline.db"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def make_engine(db: Path, clock: ManualClock, host: PluginHost) -> Callable[..., Engine]:
    def make(triggers: list[Trigger], **kwargs: Any) -> Engine:
        kwargs.setdefault("clock", clock)
        kwargs.setdefault("host", host)
        kwargs.setdefault("store", SqliteTriggerStore(db))
        kwargs.setdefault("provenance", SqliteProvenance(db))
        return Engine(triggers, **kwargs)

    return make
