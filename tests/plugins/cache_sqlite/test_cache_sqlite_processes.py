"""Several processes hammering one cache file: nothing lost, nothing torn."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from plait_cache_sqlite import SqliteCache

HAMMER = textwrap.dedent(
    """
    import json, sys, time
    from plait import cached

    db, mode, start, rounds = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
    # max_ttl 0: every call computes and writes; otherwise mostly hits
    ttl = (0, 0) if mode == "write" else (1, 2)

    @cached(*ttl, db_path=db, version=1)
    def value(key: int) -> dict[str, int]:
        return {"key": key, "square": key * key, "pad": 7}

    while time.time() < start:
        time.sleep(0.001)
    for i in range(rounds):
        got = value(i % 25)
        assert got == {"key": i % 25, "square": (i % 25) ** 2, "pad": 7}, got
    print(json.dumps({"callable_id": value.callable_id}))
    # no explicit close: counters must be flushed at interpreter exit
    """
)


def run_hammers(tmp_path: Path, db: Path, modes: list[str], rounds: int) -> list[str]:
    script = tmp_path / "hammer.py"
    script.write_text(HAMMER)
    start = time.time() + 1.0  # every process starts hammering at the same moment
    # load only this plugin: the children need nothing else, and start faster
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "PLAIT_LOAD_PLUGINS": "cache-sqlite"}
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(db), mode, str(start), str(rounds)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for mode in modes
    ]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert err == ""
        outputs.append(json.loads(out)["callable_id"])
    return outputs


@pytest.mark.slow
def test_processes_hammering_the_same_keys(tmp_path: Path) -> None:
    db = tmp_path / "shared" / "cache.sqlite3"
    rounds = 400
    ids = run_hammers(tmp_path, db, ["write", "write", "read", "read"], rounds)
    assert len(set(ids)) == 1
    cid = ids[0]

    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        rows = conn.execute(
            "SELECT callable_id, value_json FROM entries ORDER BY value_json"
        ).fetchall()
    finally:
        conn.close()
    assert len(rows) == 25  # one entry per key, whichever process wrote it last
    for row_cid, value_json in rows:
        value = json.loads(value_json)
        assert row_cid == cid
        assert value == {"key": value["key"], "square": value["key"] ** 2, "pad": 7}

    with SqliteCache(db) as cache:
        counts = cache.stats()[cid]
    # every call of every process was counted exactly once and persisted at exit
    assert counts["hits"] + counts["misses"] + counts["refreshes"] == 4 * rounds
    assert counts["misses"] >= 2 * rounds  # the writers never hit (max_ttl 0)
    assert counts["entries"] == 25


@pytest.mark.slow
def test_processes_racing_to_create_the_file(tmp_path: Path) -> None:
    """The file is built aside and linked into place: no process sees it half made."""
    db = tmp_path / "fresh" / "cache.sqlite3"
    run_hammers(tmp_path, db, ["read"] * 6, 5)
    assert not [p for p in db.parent.iterdir() if p.name.endswith(".tmp")]
    with SqliteCache(db) as cache:
        (counts,) = cache.stats().values()
    assert counts["hits"] + counts["misses"] == 30
    assert counts["entries"] == 5
