"""SqliteCache passes plait's cache backend contract."""

from __future__ import annotations

from pathlib import Path

import pytest

from plait.testing import CacheBackendContract
from plait_cache_sqlite import SqliteCache


class TestSqliteCacheContract(CacheBackendContract):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> SqliteCache:
        return SqliteCache(tmp_path / "cache.sqlite3")
