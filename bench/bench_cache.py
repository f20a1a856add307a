"""Cache hit and miss latency of ``@cached`` on the SQLite backend, next to a raw select.

``run_cache_case(n)`` times ``n`` misses (distinct arguments, fresh file) and then ``n`` hits
(the same arguments again) of a trivial function, and, as the floor, ``n`` raw ``sqlite3``
primary-key selects on an open connection: one on the cache file itself (WAL, the same
table and keys the hits read) and one on a plain file in SQLite's default journal mode.
Figures are microseconds per call (min and median over a few repetitions; hits and raw
selects alternate so both see the same machine load). Run standalone to print JSON::

    python bench/bench_cache.py          # n = 1000
    python bench/bench_cache.py 5000

Targets (issue 4): a hit at most 2x the raw select; a miss well under lythonic's ~1.2 ms.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

from plait.cache import cached, close_backends

REPEATS = 5
LYTHONIC_US = {"hit": 70.0, "miss": 1200.0}


def trivial(x: int, scale: int = 2) -> int:
    return x * scale


async def atrivial(x: int, scale: int = 2) -> int:
    return x * scale


def _per_call_us(fn: Callable[[int], Any], n: int) -> float:
    t0 = time.perf_counter_ns()
    for i in range(n):
        fn(i)
    return (time.perf_counter_ns() - t0) / n / 1000


def _select_us(conn: sqlite3.Connection, sql: str, keys: list[str]) -> float:
    execute = conn.execute
    t0 = time.perf_counter_ns()
    for key in keys:
        execute(sql, (key,)).fetchone()
    return (time.perf_counter_ns() - t0) / len(keys) / 1000


def _plain_file(directory: Path, n: int) -> tuple[Path, list[str]]:
    path = directory / "raw.sqlite3"
    keys = [f"k{i}" for i in range(n)]
    conn = sqlite3.connect(path)
    try:
        conn.execute("CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.executemany("INSERT INTO kv VALUES (?, ?)", [(k, str(i)) for i, k in enumerate(keys)])
        conn.commit()
    finally:
        conn.close()
    return path, keys


def _summary(samples: list[float]) -> dict[str, float]:
    return {"min": round(min(samples), 2), "median": round(statistics.median(samples), 2)}


def run_cache_case(n: int = 1000) -> dict[str, Any]:
    """Per-call microseconds of misses, hits (sync and async) and raw selects.

    Hits and the raw selects are timed in alternating rounds so that both see the same
    machine load; ``min`` is the figure least disturbed by other processes.
    """
    misses: list[float] = []
    hits: list[float] = []
    async_hits: list[float] = []
    raw: list[float] = []
    raw_plain: list[float] = []
    with tempfile.TemporaryDirectory(prefix="plait-bench-cache-") as tmp:
        directory = Path(tmp)
        db = directory / "cache.sqlite3"
        plain, plain_keys = _plain_file(directory, n)
        try:
            fns = []
            for rep in range(REPEATS):
                # a new version per repetition: every first call is a miss
                fn = cached(1.0, 2.0, db_path=db, version=rep)(trivial)
                fn(-1)  # open the backend outside the timing
                misses.append(_per_call_us(fn, n))
                fns.append(fn)
            afn = cached(1.0, 2.0, db_path=db)(atrivial)

            async def async_hits_us() -> float:
                for i in range(n):
                    await afn(i)  # fill (misses the first time)
                t0 = time.perf_counter_ns()
                for i in range(n):
                    await afn(i)
                return (time.perf_counter_ns() - t0) / n / 1000

            backend = fns[0].__plait_cache__.backend  # type: ignore[attr-defined]
            backend.flush()
            conn = sqlite3.connect(db, isolation_level=None)
            conn_plain = sqlite3.connect(plain, isolation_level=None)
            try:
                cache_keys = [
                    k
                    for (k,) in conn.execute(
                        "SELECT key FROM entries WHERE callable_id = ? LIMIT ?",
                        (fns[0].callable_id, n),
                    )
                ]
                sql = "SELECT value_json, stored_at FROM entries WHERE key = ?"
                for rep in range(REPEATS):
                    hits.append(_per_call_us(fns[rep], n))
                    raw.append(_select_us(conn, sql, cache_keys))
                    async_hits.append(anyio.run(async_hits_us))
                    raw_plain.append(
                        _select_us(conn_plain, "SELECT value FROM kv WHERE key = ?", plain_keys)
                    )
            finally:
                conn.close()
                conn_plain.close()
        finally:
            close_backends()

    hit, miss, floor = min(hits), statistics.median(misses), min(raw)
    return {
        "case": f"cache: {n} misses then {n} hits of a trivial function (SqliteCache)",
        "calls": n,
        "miss_us": _summary(misses),
        "hit_us": _summary(hits),
        "hit_async_us": _summary(async_hits),
        "raw_select_us": _summary(raw),
        "raw_select_default_journal_us": _summary(raw_plain),
        "hit_vs_raw_select": round(hit / floor, 2),
        "hit_speedup_vs_lythonic": round(LYTHONIC_US["hit"] / hit, 1),
        "miss_speedup_vs_lythonic": round(LYTHONIC_US["miss"] / miss, 1),
        "targets_met": {
            "hit_le_2x_raw_select": hit <= 2 * floor,
            "hit_5x_faster_than_lythonic": LYTHONIC_US["hit"] / hit >= 5,
            "miss_10x_faster_than_lythonic": LYTHONIC_US["miss"] / miss >= 10,
        },
    }


def main(argv: list[str]) -> None:
    n = int(argv[0]) if argv else 1000
    print(json.dumps(run_cache_case(n), indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
