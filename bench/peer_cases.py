"""The peers' side of the benchmark cases, and the floors plait is measured against.

Same shape as :mod:`plait_cases`: each function is an async context manager that builds
(untimed) and yields one repetition. Peers are imported inside the functions, so this
module imports without them (the test suite does not install peers).

- lythonic 0.0.28: chain, chain with ``DagProvenance``, fan-out, map, cache;
- Apache Hamilton: the chain, as a module of N functions whose parameter names chain;
- joblib.Memory and diskcache's ``memoize``: cache hits and misses;
- floors: a raw ``sqlite3`` primary-key select (cache) and a bare
  ``anyio.to_thread.run_sync`` loop (sync nodes, in :mod:`plait_cases`).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import tempfile
import threading
import time
import types
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from plait_cases import Run, cache_hits, cache_misses, cached_price


# ---------------------------------------------------------------------------- lythonic
def _lythonic_nodes() -> Any:
    """lythonic's node functions, decorated with its own ``@inline`` (built once, on demand)."""
    if _LYTH_NODES:
        return _LYTH_NODES[0]
    from lythonic.compose.namespace import inline

    @inline
    def chain_src(x: int) -> int:
        return x

    @inline
    def chain_step(v: int) -> int:
        return v + 1

    @inline
    def fan_src(x: int) -> int:
        return x

    async def fan_branch(v: int) -> float:
        await asyncio.sleep(0.01)
        return v * 1.0

    @inline
    def fan_sink(xs: list[float]) -> float:
        return sum(xs)

    @inline
    def map_src(m: int) -> list[int]:
        return list(range(m))

    @inline
    def map_elem(v: int) -> int:
        return v * v

    nodes = types.SimpleNamespace(
        **{
            f.__name__: f
            for f in (chain_src, chain_step, fan_src, fan_branch, fan_sink, map_src, map_elem)
        }
    )
    _LYTH_NODES.append(nodes)
    return nodes


_LYTH_NODES: list[Any] = []


@asynccontextmanager
async def lythonic_chain(n: int, *, sqlite: bool = False) -> AsyncIterator[Run]:
    from lythonic.compose.dag_provenance import DagProvenance
    from lythonic.compose.dag_runner import DagRunner
    from lythonic.compose.namespace import Dag

    f = _lythonic_nodes()
    with tempfile.TemporaryDirectory(prefix="lyth-bench-") as tmp:
        dag = Dag()
        prev = dag.node(f.chain_src, label="n0")
        for i in range(1, n):
            nxt = dag.node(f.chain_step, label=f"n{i}")
            prev >> nxt
            prev = nxt
        prov = DagProvenance(Path(tmp) / "dags.db") if sqlite else None
        runner = DagRunner(dag, provenance=prov)

        async def once() -> None:
            result = await runner.run(source_inputs={"n0": {"x": 0}}, dag_nsref="bench:chain")
            assert result.status == "completed", result
            assert result.outputs[f"n{n - 1}"] == n - 1, result.outputs

        yield once


@asynccontextmanager
async def lythonic_fanout(width: int) -> AsyncIterator[Run]:
    from lythonic.compose.namespace import Dag

    f = _lythonic_nodes()
    dag = Dag()
    src = dag.node(f.fan_src)
    sink = dag.node(f.fan_sink)
    for i in range(width):
        src >> dag.node(f.fan_branch, label=f"b{i}") >> sink

    async def once() -> None:
        result = await dag(x=1)
        assert result.status == "completed", result
        assert result.outputs["fan_sink"] == float(width), result.outputs

    yield once


@asynccontextmanager
async def lythonic_map(m: int) -> AsyncIterator[Run]:
    from lythonic.compose.dag_runner import DagRunner
    from lythonic.compose.namespace import Dag

    f = _lythonic_nodes()
    sub = Dag()
    sub.node(f.map_elem)
    dag = Dag()
    dag.node(f.map_src) >> dag.map(sub, label="each")
    runner = DagRunner(dag, provenance=None)

    async def once() -> None:
        result = await runner.run(source_inputs={"map_src": {"m": m}}, dag_nsref="bench:map")
        assert result.status == "completed", result
        assert len(result.outputs["each"]) == m

    yield once


def _lythonic_cached(directory: Path) -> Callable[..., Any]:
    from lythonic.compose.engine import StorageConfig
    from lythonic.compose.namespace import Namespace, NsCacheConfig

    directory.mkdir(parents=True, exist_ok=True)
    ns = Namespace()
    nsref = "bench:cached_price"
    config = NsCacheConfig(nsref=nsref, min_ttl=1.0, max_ttl=2.0)
    ns.register(cached_price, nsref=nsref, config=config)
    ns.mount(StorageConfig(cache_db=directory / "cache.db"))
    return ns.get(nsref)


def lythonic_cache_misses(calls: int) -> Any:
    return cache_misses(_lythonic_cached, calls)


def lythonic_cache_hits(calls: int) -> Any:
    return cache_hits(_lythonic_cached, calls)


# ---------------------------------------------------------------------------- Apache Hamilton
_HAMILTON_STACK = 512 * 1024 * 1024


def _hamilton_module(n: int) -> types.ModuleType:
    """A module ``n0(x)``, ``n1(n0)``, ... ``n{n-1}(n{n-2})``: parameter names chain."""
    mod = types.ModuleType(f"plait_bench_hamilton_chain_{n}")
    lines = ["def n0(x: int) -> int:\n    return x\n"]
    lines += [f"def n{i}(n{i - 1}: int) -> int:\n    return n{i - 1} + 1\n" for i in range(1, n)]
    # Hamilton finds a module's functions through inspect.getmodule, i.e. sys.modules
    sys.modules[mod.__name__] = mod
    exec(compile("".join(lines), mod.__name__, "exec"), mod.__dict__)
    return mod


def _in_big_stack(fn: Callable[[], Any]) -> tuple[Any, float]:
    """Run ``fn`` in a thread with a large stack and recursion limit; (result, seconds).

    Hamilton walks the graph recursively: past ~900 nodes it needs a raised recursion
    limit, and a 10,000 chain a larger C stack than the main thread has.
    """
    box: dict[str, Any] = {}

    def target() -> None:
        t0 = time.perf_counter()
        try:
            box["result"] = fn()
        except BaseException as exc:  # re-raised in the caller
            box["error"] = exc
        box["seconds"] = time.perf_counter() - t0

    old_limit, old_stack = sys.getrecursionlimit(), threading.stack_size()
    sys.setrecursionlimit(max(old_limit, 200_000))
    threading.stack_size(_HAMILTON_STACK)
    try:
        thread = threading.Thread(target=target, name="hamilton-bench")
        thread.start()
    finally:
        threading.stack_size(old_stack)
    thread.join()
    sys.setrecursionlimit(old_limit)
    if "error" in box:
        raise box["error"]
    return box["result"], box["seconds"]


@asynccontextmanager
async def hamilton_chain(n: int) -> AsyncIterator[Run]:
    """Hamilton's default driver (dict result) on the chain; ``dr.execute`` is timed."""
    from hamilton import driver

    mod = _hamilton_module(n)
    try:
        dr, _ = _in_big_stack(lambda: driver.Builder().with_modules(mod).build())
        final = f"n{n - 1}"

        async def once() -> float:
            out, seconds = _in_big_stack(lambda: dr.execute([final], inputs={"x": 0}))
            assert out[final] == n - 1, out
            return seconds

        yield once
    finally:
        sys.modules.pop(mod.__name__, None)


# ---------------------------------------------------------------------------- Dask delayed
def _dask_inc(v: int) -> int:
    return v + 1


def _dask_branch(v: int) -> float:
    time.sleep(0.01)  # a blocking 10 ms: Dask's local schedulers run plain functions
    return v * 1.0


def _dask_sum(xs: list[float]) -> float:
    return sum(xs)


@asynccontextmanager
async def dask_chain(n: int, scheduler: str = "threads") -> AsyncIterator[Run]:
    """``dask.delayed`` chain of ``n`` ``v + 1`` calls, computed on a local scheduler
    (``threads``: the default pool; ``sync``: in the calling thread)."""
    from dask import delayed

    node = delayed(_dask_inc, pure=True)(-1)
    for _ in range(1, n):
        node = delayed(_dask_inc, pure=True)(node)

    async def once() -> None:
        out = node.compute(scheduler=scheduler)
        assert out == n - 1, out

    yield once


@asynccontextmanager
async def dask_fanout(width: int, scheduler: str = "threads") -> AsyncIterator[Run]:
    """One source, ``width`` branches sleeping 10 ms, one sink, as ``dask.delayed``; the
    threaded scheduler's pool has as many threads as CPUs (its default)."""
    from dask import delayed

    src = delayed(int, pure=True)(1)
    sink = delayed(_dask_sum, pure=True)(
        [delayed(_dask_branch, pure=True)(src, dask_key_name=f"b{i}") for i in range(width)]
    )

    async def once() -> None:
        out = sink.compute(scheduler=scheduler)
        assert out == float(width), out

    yield once


# ---------------------------------------------------------------------------- joblib, diskcache
def joblib_cache_misses(calls: int) -> Any:
    return cache_misses(_joblib_cached, calls)


def joblib_cache_hits(calls: int) -> Any:
    return cache_hits(_joblib_cached, calls)


def _joblib_cached(directory: Path) -> Callable[..., Any]:
    from joblib import Memory

    return Memory(location=str(directory), verbose=0).cache(cached_price)


class _Diskcaches:
    """diskcache ``Cache`` objects opened by a case, closed when it ends."""

    def __init__(self) -> None:
        self.open: list[Any] = []

    def make(self, directory: Path) -> Callable[..., Any]:
        from diskcache import Cache

        cache = Cache(str(directory))
        self.open.append(cache)
        return cache.memoize()(cached_price)

    def close(self) -> None:
        for cache in self.open:
            cache.close()
        self.open.clear()


def diskcache_cache_misses(calls: int) -> Any:
    caches = _Diskcaches()
    return cache_misses(caches.make, calls, caches.close)


def diskcache_cache_hits(calls: int) -> Any:
    caches = _Diskcaches()
    return cache_hits(caches.make, calls, caches.close)


# ---------------------------------------------------------------------------- raw sqlite floor
class RawSqliteFloor:
    """The floor: one table, a primary-key select per call, insert + commit on a miss."""

    def __init__(self) -> None:
        self.conns: list[sqlite3.Connection] = []

    def make(self, directory: Path) -> Callable[..., Any]:
        directory.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(directory / "floor.sqlite3")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # as the cache backends: no fsync per commit
        conn.execute("CREATE TABLE IF NOT EXISTS cache (key TEXT PRIMARY KEY, value TEXT)")
        self.conns.append(conn)

        def call(ticker: str, day: int) -> Any:
            key = f"{ticker}:{day}"
            row = conn.execute("SELECT value FROM cache WHERE key = ?", (key,)).fetchone()
            if row is not None:
                return json.loads(row[0])
            value = cached_price(ticker, day)
            conn.execute("INSERT INTO cache VALUES (?, ?)", (key, json.dumps(value)))
            conn.commit()
            return value

        return call

    def close(self) -> None:
        for conn in self.conns:
            conn.close()
        self.conns.clear()


def sqlite_cache_misses(calls: int) -> Any:
    floor = RawSqliteFloor()
    return cache_misses(floor.make, calls, floor.close)


def sqlite_cache_hits(calls: int) -> Any:
    floor = RawSqliteFloor()
    return cache_hits(floor.make, calls, floor.close)


# ---------------------------------------------------------------------------- commit floors
_NODE_COLUMNS = (
    "row_no INTEGER PRIMARY KEY, run_id TEXT, label TEXT, status TEXT, inputs TEXT, "
    "output TEXT, started_at INTEGER, finished_at INTEGER, history TEXT"
)


def _floor_connection(path: Path, synchronous: str) -> sqlite3.Connection:
    """Autocommit, WAL, the given ``synchronous`` level, no checkpoints: the store's
    settings without anything the store does."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute(f"CREATE TABLE nodes ({_NODE_COLUMNS})")
    conn.execute(
        "CREATE TABLE runs (run_no INTEGER PRIMARY KEY, run_id TEXT, dag TEXT, status TEXT, "
        "inputs TEXT, outputs TEXT, started_at INTEGER, finished_at INTEGER)"
    )
    return conn


def _insert_node(conn: sqlite3.Connection, row_no: int, run_id: str, i: int, v: int) -> None:
    t0 = time.time_ns() // 1000
    t1 = time.time_ns() // 1000
    conn.execute(
        "INSERT INTO nodes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            row_no,
            run_id,
            f"n{i}",
            "completed",
            json.dumps({"v": v - 1} if i else {"x": 0}),
            json.dumps(v),
            t0,
            t1,
            f'["running",{t0}],["completed",{t1}]',
        ),
    )


@asynccontextmanager
async def sqlite_commit_floor(n: int, synchronous: str = "normal") -> AsyncIterator[Run]:
    """The floor of a chain recorded one commit per node: ``v + 1`` and one autocommitted
    ``INSERT`` of a node-sized row (JSON inputs, output, times, history), in raw ``sqlite3``
    with WAL and ``synchronous=NORMAL`` (or ``FULL``: an fsync per commit), as plait's
    store. No checkpoints at all (plait's store checkpoints every 4,000 commits), no
    records, no hooks: what one durable row per node costs by itself on this machine."""
    with tempfile.TemporaryDirectory(prefix="floor-bench-") as tmp:
        conn = _floor_connection(Path(tmp) / "floor.sqlite3", synchronous)
        runs = 0

        async def once() -> None:
            nonlocal runs
            runs += 1
            run_id = f"{runs:032x}"
            v = -1
            for i in range(n):  # n0 returns its input 0, every later node v + 1
                v = v + 1
                _insert_node(conn, (runs << 32) + i, run_id, i, v)
            assert v == n - 1

        try:
            yield once
        finally:
            conn.close()


@asynccontextmanager
async def sqlite_run_floor(runs: int) -> AsyncIterator[Run]:
    """The floor of a durable one-node run: three autocommitted statements (the run's row
    as running, the node's row, the run's row completed), WAL, ``synchronous=NORMAL``."""
    with tempfile.TemporaryDirectory(prefix="floor-bench-") as tmp:
        conn = _floor_connection(Path(tmp) / "floor.sqlite3", "normal")
        done = 0

        async def once() -> None:
            nonlocal done
            for x in range(runs):
                done += 1
                run_id = f"{done:032x}"
                t0 = time.time_ns() // 1000
                conn.execute(
                    "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (done, run_id, "bench_one", "running", json.dumps({"x": x}), None, t0, None),
                )
                _insert_node(conn, done << 32, run_id, 0, x + 1)
                conn.execute(
                    "UPDATE runs SET status = ?, outputs = ?, finished_at = ? WHERE run_no = ?",
                    ("completed", json.dumps({"one": x + 1}), time.time_ns() // 1000, done),
                )
            row = conn.execute("SELECT status, outputs FROM runs WHERE run_no = ?", (done,))
            assert row.fetchone() == ("completed", json.dumps({"one": runs})), done

        try:
            yield once
        finally:
            conn.close()
