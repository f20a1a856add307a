"""A refused file is never modified: not its bytes, and not the ``-wal`` its last writer left.

The writer is a real process that dies without closing its connection, so the newest state
of the file (its schema version, its application id) lives only in the ``-wal``; closing a
read-write connection to it would merge that into the file and delete the ``-wal``.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from plait.errors import StoreError
from plait_provenance_sqlite import APPLICATION_ID, SCHEMA_VERSION, SqliteProvenance

# path, application_id, user_version: tables like ours, every change left in the -wal
LEAVE_A_WAL = textwrap.dedent(
    """
    import os, sqlite3, sys
    path, app_id, version = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute("CREATE TABLE plait_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    for table in ("runs", "node_executions", "edge_traversals"):
        conn.execute(f"CREATE TABLE {table} (x)")
    conn.execute(f"PRAGMA application_id = {app_id}")
    conn.execute(f"PRAGMA user_version = {version}")
    conn.execute("INSERT INTO runs VALUES ('precious')")
    os._exit(0)  # no close: no checkpoint
    """
)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leave_a_wal(path: Path, app_id: int, version: int) -> dict[str, str]:
    subprocess.run(
        [sys.executable, "-c", LEAVE_A_WAL, str(path), str(app_id), str(version)], check=True
    )
    wal = path.with_name(path.name + "-wal")
    assert wal.stat().st_size > 0
    return {"file": digest(path), "wal": digest(wal)}


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("app_id", "version", "message"),
    [
        (APPLICATION_ID, SCHEMA_VERSION + 1, f"schema version {SCHEMA_VERSION + 1}, newer"),
        (0x12345678, 1, "not a plait provenance store"),
    ],
    ids=["newer-schema", "foreign"],
)
async def test_a_refused_store_and_its_wal_are_unchanged(
    tmp_path: Path, app_id: int, version: int, message: str
) -> None:
    db = tmp_path / "prov.sqlite3"
    before = leave_a_wal(db, app_id, version)
    prov = SqliteProvenance(db)
    with pytest.raises(StoreError, match=message) as info:
        await prov.open()
    assert str(db) in str(info.value) and "not modified" in str(info.value)
    with pytest.raises(StoreError, match=message):
        await prov.list_runs()  # a query opens on demand, and refuses the same way
    await prov.aclose()
    wal = db.with_name(db.name + "-wal")
    assert {"file": digest(db), "wal": digest(wal)} == before
