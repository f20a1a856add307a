"""The durable paths against their SQLite floors, in CPU time per unit of work.

Cases (each the median of the repetitions, CPU time of the whole process, so a shared
machine's load moves the figures less than wall time would):

- ``one_node_held``: a run of a one-node ``@inline`` DAG, the runner (and its
  ``SqliteProvenance``) held open across runs, per run. Its floor is three commits (the
  run starting, the node, the run ending): ``floor_three_commits``.
- ``one_node_per_run``: the same run when the runner opens and closes the store itself.
- ``map_sqlite``: a map of 1,000 elements over a one-node ``@inline`` sub-DAG, recorded,
  per element (every element's sub-run and node committed when it completes).
- ``chain_sqlite``: a chain of 1,000 ``@inline`` nodes, recorded, runner held open, per
  node; ``chain_floor``: one autocommitted ``INSERT`` of a node-sized row per node in raw
  ``sqlite3`` (the bench's ``commit floor``).
- ``cache_miss``: a miss of ``@cached`` on the SQLite cache (compute, store), per call;
  ``cache_miss_floor``: a primary-key select, an insert and a commit in raw ``sqlite3``.

Run standalone to print JSON (``reps`` defaults to 7)::

    python bench/bench_durable.py
    python bench/bench_durable.py 11 one_node_held map_sqlite
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

from plait import Dag, DagRunner, inline

sys.path.insert(0, str(Path(__file__).parent))
from peer_cases import RawSqliteFloor, sqlite_commit_floor
from plait_cases import build_chain, build_map, cached_price, time_calls

ONE_NODE_RUNS = 300
MAP = 1000
CHAIN = 1000
MISSES = 1000


@inline
def one(x: int) -> int:
    return x + 1


def _prov(path: Path) -> Any:
    from plait_provenance_sqlite import SqliteProvenance

    return SqliteProvenance(path)


def _cpu(fn: Callable[[], None]) -> float:
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


async def _one_node(directory: Path, held: bool) -> float:
    dag = Dag("one_node")
    dag.node(one)
    runner = DagRunner(dag, provenance=_prov(directory / "one.sqlite3"))
    runs = ONE_NODE_RUNS if held else ONE_NODE_RUNS // 3

    async def many() -> float:
        await runner.run({"one": {"x": 1}})  # warm-up: the file, its schema
        t0 = time.process_time()
        for _ in range(runs):
            result = await runner.run({"one": {"x": 1}})
        elapsed = time.process_time() - t0
        assert result.outputs["one"] == 2, result.error
        return elapsed

    if held:
        async with runner:
            elapsed = await many()
    else:
        elapsed = await many()
    return elapsed * 1e6 / runs


async def _floor_three_commits(directory: Path) -> float:
    """Three autocommitted statements per run: a run row in, a node row in, the run row
    updated (WAL, synchronous=NORMAL, as the store)."""
    conn = sqlite3.connect(directory / "floor3.sqlite3", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute(
        "CREATE TABLE runs (run_no INTEGER PRIMARY KEY, run_id TEXT UNIQUE, status TEXT, "
        "started_at INTEGER, updated_at INTEGER, history TEXT)"
    )
    conn.execute(
        "CREATE TABLE nodes (row_no INTEGER PRIMARY KEY, run_id TEXT, label TEXT, "
        "status TEXT, inputs TEXT, output TEXT, started_at INTEGER, finished_at INTEGER, "
        "history TEXT)"
    )
    t0 = time.process_time()
    for i in range(ONE_NODE_RUNS):
        now = time.time_ns() // 1000
        run_id = f"{i:032x}"
        conn.execute(
            "INSERT INTO runs VALUES (?, ?, 'running', ?, ?, ?)",
            (i, run_id, now, now, f'["running",{now},1]'),
        )
        conn.execute(
            "INSERT INTO nodes VALUES (?, ?, 'one', 'completed', ?, ?, ?, ?, ?)",
            (
                i << 32,
                run_id,
                json.dumps({"x": 1}),
                json.dumps(2),
                now,
                now,
                f'["running",{now}],["completed",{now}]',
            ),
        )
        conn.execute(
            "UPDATE runs SET status = 'completed', updated_at = ?, history = history || ? "
            "WHERE run_no = ?",
            (now, f',["completed",{now},1]', i),
        )
    elapsed = time.process_time() - t0
    conn.close()
    return elapsed * 1e6 / ONE_NODE_RUNS


async def _map(directory: Path) -> float:
    runner = DagRunner(build_map(), provenance=_prov(directory / "map.sqlite3"))
    async with runner:
        await runner.run({"map_src": {"m": 10}})
        t0 = time.process_time()
        result = await runner.run({"map_src": {"m": MAP}})
        elapsed = time.process_time() - t0
    assert len(result.outputs["each"]) == MAP, result.error
    return elapsed * 1e6 / MAP


async def _chain(directory: Path) -> float:
    runner = DagRunner(build_chain(CHAIN), provenance=_prov(directory / "chain.sqlite3"))
    async with runner:
        await runner.run({"n0": {"x": 0}})
        t0 = time.process_time()
        result = await runner.run({"n0": {"x": 0}})
        elapsed = time.process_time() - t0
    assert result.outputs[f"n{CHAIN - 1}"] == CHAIN - 1, result.error
    return elapsed * 1e6 / CHAIN


async def _chain_floor(directory: Path) -> float:
    del directory
    async with sqlite_commit_floor(CHAIN) as once:
        await once()
        t0 = time.process_time()
        await once()
        return (time.process_time() - t0) * 1e6 / CHAIN


def _misses(fn: Callable[..., Any]) -> float:
    fn(ticker="warm", day=-1)
    return _cpu(lambda: time_calls(fn, MISSES)) * 1e6 / MISSES


async def _cache_miss(directory: Path) -> float:
    from plait.cache import cached, close_backends

    db_path = directory / "cache.sqlite3"
    try:
        return _misses(cached(min_ttl=1.0, max_ttl=2.0, db_path=db_path)(cached_price))
    finally:
        close_backends()


async def _cache_miss_floor(directory: Path) -> float:
    """The bench's floor (``peer_cases.RawSqliteFloor``): a primary-key select, then an
    insert and a commit (WAL, synchronous=NORMAL)."""
    floor = RawSqliteFloor()
    try:
        return _misses(floor.make(directory))
    finally:
        floor.close()


CASES: dict[str, Callable[[Path], Any]] = {
    "one_node_held": lambda d: _one_node(d, held=True),
    "one_node_per_run": lambda d: _one_node(d, held=False),
    "floor_three_commits": _floor_three_commits,
    "map_sqlite": _map,
    "chain_sqlite": _chain,
    "chain_floor": _chain_floor,
    "cache_miss": _cache_miss,
    "cache_miss_floor": _cache_miss_floor,
}
RATIOS = (
    ("one_node_held", "floor_three_commits"),
    ("chain_sqlite", "chain_floor"),
    ("cache_miss", "cache_miss_floor"),
)


def main(argv: list[str]) -> None:
    reps = int(argv[0]) if argv else 7
    names = argv[1:] or list(CASES)
    times: dict[str, list[float]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory(prefix="plait-durable-") as tmp:
        for rep in range(reps):
            for name in names:  # interleaved: drift on the machine hits every case
                directory = Path(tmp) / f"{name}-{rep}"
                directory.mkdir()
                times[name].append(anyio.run(CASES[name], directory))
    out: dict[str, Any] = {"repetitions": reps, "cpu_us": {}}
    for name, values in times.items():
        out["cpu_us"][name] = round(statistics.median(values), 2)
    for case, floor in RATIOS:
        if case in times and floor in times:
            out[f"{case} / {floor}"] = round(out["cpu_us"][case] / out["cpu_us"][floor], 2)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
