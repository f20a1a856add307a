"""plait-cache-sqlite: the SQLite TTL cache backend for plait (backend name ``sqlite``)."""

from __future__ import annotations

from plait_cache_sqlite.backend import APPLICATION_ID, SCHEMA_VERSION, SqliteCache

__all__ = ["APPLICATION_ID", "SCHEMA_VERSION", "SqliteCache"]
