"""Cache hit and miss latency of ``@cached`` on the SQLite backend, next to a raw select.

``run_cache_case(n)`` times ``n`` misses (distinct arguments, fresh file) and then ``n`` hits
(the same arguments again) of a trivial function, and, as the floor, ``n`` raw ``sqlite3``
primary-key selects on an open connection: one on the cache file itself (WAL, the same
table and keys the hits read) and one on a plain file in SQLite's default journal mode.
Each figure is the median over a few repetitions, in microseconds per call. Run standalone
to print the result as JSON::

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


def _raw_select_us(path: Path, sql: str, keys: list[str], rounds: int) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        execute = conn.execute
        results = []
        for _ in range(rounds):
            t0 = time.perf_counter_ns()
            for key in keys:
                row = execute(sql, (key,)).fetchone()
            results.append((time.perf_counter_ns() - t0) / len(keys) / 1000)
            assert row is not None
        return statistics.median(results)
    finally:
        conn.close()


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


def run_cache_case(n: int = 1000) -> dict[str, Any]:
    """Median per-call microseconds of misses, hits (sync and async) and raw selects."""
    misses, hits, async_hits = [], [], []
    with tempfile.TemporaryDirectory(prefix="plait-bench-cache-") as tmp:
        directory = Path(tmp)
        db = directory / "cache.sqlite3"
        try:
            for rep in range(REPEATS):
                # a new version per repetition: every first call is a miss
                fn = cached(1.0, 2.0, db_path=db, version=rep)(trivial)
                fn(-1)  # open the backend outside the timing
                misses.append(_per_call_us(fn, n))
                hits.append(_per_call_us(fn, n))

            afn = cached(1.0, 2.0, db_path=db)(atrivial)

            async def async_hits_us() -> float:
                for i in range(n):
                    await afn(i)  # fill
                t0 = time.perf_counter_ns()
                for i in range(n):
                    await afn(i)
                return (time.perf_counter_ns() - t0) / n / 1000

            for _ in range(REPEATS):
                async_hits.append(anyio.run(async_hits_us))
            backend = fn.__plait_cache__.backend  # type: ignore[attr-defined]
            assert backend is not None
            backend.flush()
        finally:
            close_backends()

        conn = sqlite3.connect(db)
        try:
            cache_keys = [k for (k,) in conn.execute("SELECT key FROM entries LIMIT ?", (n,))]
        finally:
            conn.close()
        raw_wal = _raw_select_us(
            db, "SELECT value_json, stored_at FROM entries WHERE key = ?", cache_keys, REPEATS
        )
        plain, keys = _plain_file(directory, n)
        raw_plain = _raw_select_us(plain, "SELECT value FROM kv WHERE key = ?", keys, REPEATS)

    hit, miss = statistics.median(hits), statistics.median(misses)
    return {
        "case": f"cache: {n} misses then {n} hits of a trivial function (SqliteCache)",
        "calls": n,
        "miss_us": round(miss, 2),
        "hit_us": round(hit, 2),
        "hit_async_us": round(statistics.median(async_hits), 2),
        "raw_select_us": round(raw_wal, 2),
        "raw_select_default_journal_us": round(raw_plain, 2),
        "hit_vs_raw_select": round(hit / raw_wal, 2),
        "hit_speedup_vs_lythonic": round(LYTHONIC_US["hit"] / hit, 1),
        "miss_speedup_vs_lythonic": round(LYTHONIC_US["miss"] / miss, 1),
        "targets_met": {
            "hit_le_2x_raw_select": hit <= 2 * raw_wal,
            "hit_5x_faster_than_lythonic": LYTHONIC_US["hit"] / hit >= 5,
            "miss_10x_faster_than_lythonic": LYTHONIC_US["miss"] / miss >= 10,
        },
    }


def main(argv: list[str]) -> None:
    n = int(argv[0]) if argv else 1000
    print(json.dumps(run_cache_case(n), indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
