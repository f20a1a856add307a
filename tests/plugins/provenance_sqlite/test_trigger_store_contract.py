"""SqliteTriggerStore passes plait's trigger store contract."""

from __future__ import annotations

from pathlib import Path

import pytest

from plait.testing import TriggerStoreContract
from plait_provenance_sqlite.triggers import SqliteTriggerStore


class TestSqliteTriggerStoreContract(TriggerStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> SqliteTriggerStore:
        return SqliteTriggerStore(tmp_path / "pipeline.db")
