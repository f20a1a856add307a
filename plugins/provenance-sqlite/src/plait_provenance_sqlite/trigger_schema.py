"""The trigger tables inside a provenance file: creation, version, refusals.

They live beside the provenance tables (one file to back up, one ``--store``), with their own
version in ``plait_meta`` (key ``triggers_schema_version``), so the provenance schema and the
trigger schema migrate independently. Times are integer microseconds since the Unix epoch.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Final

from plait.errors import StoreError

__all__ = ["TRIGGER_SCHEMA_VERSION", "prepare_triggers"]

#: The trigger schema version this release writes.
TRIGGER_SCHEMA_VERSION: Final = 1
VERSION_KEY: Final = "triggers_schema_version"

CREATE_V1: Final[tuple[str, ...]] = (
    """CREATE TABLE triggers (
        name           TEXT PRIMARY KEY,
        kind           TEXT NOT NULL,
        definition     TEXT NOT NULL DEFAULT '{}',
        active         INTEGER NOT NULL,
        created_at     INTEGER NOT NULL,
        updated_at     INTEGER NOT NULL,
        activated_at   INTEGER,
        last_scheduled INTEGER,
        last_fire_at   INTEGER,
        next_fire_at   INTEGER,
        last_tick      INTEGER,
        errors         INTEGER NOT NULL DEFAULT 0,
        last_error     TEXT,
        last_error_at  INTEGER
    ) WITHOUT ROWID""",
    """CREATE TABLE trigger_fires (
        fire_id       TEXT PRIMARY KEY,
        trigger       TEXT NOT NULL,
        fired_at      INTEGER NOT NULL,
        outcome       TEXT NOT NULL,
        updated_at    INTEGER NOT NULL,
        scheduled_for INTEGER,
        payload       TEXT,
        run_id        TEXT,
        attempt       INTEGER NOT NULL DEFAULT 0,
        engine_id     TEXT,
        finished_at   INTEGER,
        error         TEXT
    )""",
    # the claim: one fire per (trigger, scheduled instant); manual fires have no instant
    """CREATE UNIQUE INDEX trigger_fires_by_instant ON trigger_fires (trigger, scheduled_for)
        WHERE scheduled_for IS NOT NULL""",
    "CREATE INDEX trigger_fires_by_trigger ON trigger_fires (trigger, fired_at)",
    """CREATE INDEX trigger_fires_open ON trigger_fires (outcome, trigger, fired_at)
        WHERE outcome IN ('requested', 'queued', 'running', 'interrupted')""",
    """CREATE TABLE trigger_engines (
        engine_id    TEXT PRIMARY KEY,
        pid          INTEGER NOT NULL,
        host         TEXT NOT NULL,
        started_at   INTEGER NOT NULL,
        heartbeat_at INTEGER NOT NULL,
        stopped_at   INTEGER
    ) WITHOUT ROWID""",
)

#: ``MIGRATIONS[n]`` upgrades trigger schema ``n`` to ``n + 1`` inside a transaction.
MIGRATIONS: Final[dict[int, Callable[[sqlite3.Connection], None]]] = {}


def _version(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM plait_meta WHERE key = ?", (VERSION_KEY,)).fetchone()
    return 0 if row is None else int(row[0])


def prepare_triggers(conn: sqlite3.Connection, path: Path) -> None:
    """Create or migrate the trigger tables of a provenance file already prepared by the
    provenance schema; refuse a newer trigger schema without writing."""
    version = _version(conn)
    if version == TRIGGER_SCHEMA_VERSION:
        return
    if version > TRIGGER_SCHEMA_VERSION:
        raise StoreError(
            f"provenance store {str(path)!r} has trigger schema version {version}, newer than "
            f"the {TRIGGER_SCHEMA_VERSION} this plait-provenance-sqlite understands; upgrade "
            "plait-provenance-sqlite (the file was not modified)"
        )
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = _version(conn)  # another process may have done it since we looked
        if version == 0:
            for statement in CREATE_V1:
                conn.execute(statement)
            version = 1
        while version < TRIGGER_SCHEMA_VERSION:
            MIGRATIONS[version](conn)
            version += 1
        conn.execute(
            "INSERT INTO plait_meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (VERSION_KEY, str(TRIGGER_SCHEMA_VERSION)),
        )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
