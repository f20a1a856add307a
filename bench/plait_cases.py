"""plait's side of every benchmark case.

Each ``plait_*`` function is a *setup*: an async context manager that builds what the case
needs (untimed, apart from ``build_s`` which the runner measures around it) and yields a
zero-argument coroutine function that performs one repetition and checks its result. A
repetition returns ``None`` (the runner times it from outside) or the seconds it measured
itself, when part of its work (a fresh cache, say) must stay out of the timing.

The case definitions follow the peer driver (``/work/shared/peers/lythonic_bench.py``) so
that both libraries do the same work.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio

from plait import Dag, DagRunner, inline

Run = Callable[[], Awaitable[float | None]]


# ---------------------------------------------------------------------------- node functions
@inline
def chain_src(x: int) -> int:
    return x


@inline
def chain_step(v: int) -> int:
    return v + 1


def thread_src(x: int) -> int:
    return x


def thread_step(v: int) -> int:
    return v + 1


@inline
def fan_src(x: int) -> int:
    return x


async def fan_branch(v: int) -> float:
    await anyio.sleep(0.01)
    return v * 1.0


@inline
def fan_sink(xs: list[float]) -> float:
    return sum(xs)


@inline
def one(x: int) -> int:
    return x + 1


@inline
def map_src(m: int) -> list[int]:
    return list(range(m))


@inline
def map_elem(v: int) -> int:
    return v * v


def cached_price(ticker: str, day: int) -> dict[str, Any]:
    """The cached callable of the cache cases: a cheap body, so the cache machinery dominates."""
    return {"ticker": ticker, "day": day, "px": day * 1.5}


# ---------------------------------------------------------------------------- DAG builders
def build_chain(n: int, *, threaded: bool = False) -> Dag:
    """``n0 >> n1 >> ... >> n{n-1}``: trivial steps, ``@inline`` unless ``threaded``."""
    src, step = (thread_src, thread_step) if threaded else (chain_src, chain_step)
    dag = Dag("bench_chain")
    prev = dag.node(src, label="n0")
    for i in range(1, n):
        prev = prev >> dag.node(step, label=f"n{i}")
    return dag


def build_fanout(width: int) -> Dag:
    """One source, ``width`` async branches sleeping 10 ms, one fan-in sink."""
    dag = Dag("bench_fanout")
    src = dag.node(fan_src)
    sink = dag.node(fan_sink)
    for i in range(width):
        src >> dag.node(fan_branch, label=f"b{i}") >> sink
    return dag


def build_map() -> Dag:
    """A source making ``list(range(m))`` and a MapNode squaring each element."""
    sub = Dag("bench_square")
    sub.node(map_elem)
    dag = Dag("bench_map")
    dag.node(map_src) >> dag.map(sub, label="each")
    return dag


def build_one() -> Dag:
    """One ``@inline`` node: what a durable run costs beyond its node."""
    dag = Dag("bench_one")
    dag.node(one)
    return dag


def _sqlite_provenance(directory: Path, synchronous: str = "normal") -> Any:
    from plait_provenance_sqlite import SqliteProvenance

    return SqliteProvenance(directory / "provenance.sqlite3", synchronous=synchronous)


# ---------------------------------------------------------------------------- setups
@asynccontextmanager
async def plait_chain(
    n: int, *, sqlite: bool = False, threaded: bool = False, synchronous: str = "normal"
) -> AsyncIterator[Run]:
    """A chain of ``n`` trivial nodes (inline, or on the default ``thread`` executor);
    ``synchronous="full"`` makes the SQLite store fsync every commit (survives power loss)."""
    with tempfile.TemporaryDirectory(prefix="plait-bench-") as tmp:
        dag = build_chain(n, threaded=threaded)
        dag.plan()  # compile and validate now: part of the build, not of a run
        # held open across runs, as a service would: the store's open and its WAL
        # checkpoint on close are per-run costs, not per-node ones
        prov = _sqlite_provenance(Path(tmp), synchronous) if sqlite else None
        async with DagRunner(dag, provenance=prov) as runner:

            async def once() -> None:
                result = await runner.run(source_inputs={"n0": {"x": 0}})
                assert result.status == "completed", result.error
                assert result.outputs[f"n{n - 1}"] == n - 1, result.outputs

            yield once


@asynccontextmanager
async def plait_fanout(width: int) -> AsyncIterator[Run]:
    dag = build_fanout(width)
    dag.plan()
    runner = DagRunner(dag)

    async def once() -> None:
        result = await runner.run(source_inputs={"fan_src": {"x": 1}})
        assert result.status == "completed", result.error
        assert result.outputs["fan_sink"] == float(width), result.outputs

    yield once


@asynccontextmanager
async def plait_map(m: int, *, sqlite: bool = False) -> AsyncIterator[Run]:
    with tempfile.TemporaryDirectory(prefix="plait-bench-") as tmp:
        dag = build_map()
        dag.plan()
        prov = _sqlite_provenance(Path(tmp)) if sqlite else None
        async with DagRunner(dag, provenance=prov) as runner:

            async def once() -> None:
                result = await runner.run(source_inputs={"map_src": {"m": m}})
                assert result.status == "completed", result.error
                out = result.outputs["each"]
                assert len(out) == m, len(out)
                assert out[-1] == (m - 1) ** 2, out[-3:]

            yield once


@asynccontextmanager
async def plait_durable_one(runs: int, *, held_open: bool = True) -> AsyncIterator[Run]:
    """``runs`` runs of a one-node DAG recorded in SQLite: the fixed cost of a durable run.

    ``held_open``: one runner (and its open store) for every run, as a service keeps it;
    otherwise each run opens the runner and the store on the same file and closes them
    (what ``async with DagRunner(...)`` around each run costs)."""
    with tempfile.TemporaryDirectory(prefix="plait-bench-") as tmp:
        dag = build_one()
        dag.plan()

        def check(result: Any, i: int) -> None:
            assert result.status == "completed", result.error
            assert result.outputs["one"] == i + 1, result.outputs

        if held_open:
            async with DagRunner(dag, provenance=_sqlite_provenance(Path(tmp))) as runner:

                async def once() -> None:
                    for i in range(runs):
                        check(await runner.run(source_inputs={"one": {"x": i}}), i)

                yield once
            return

        async def run_opening(i: int) -> None:
            async with DagRunner(dag, provenance=_sqlite_provenance(Path(tmp))) as runner:
                check(await runner.run(source_inputs={"one": {"x": i}}), i)

        async def once_opening() -> None:
            for i in range(runs):
                await run_opening(i)

        await run_opening(0)  # the file and its schema exist before the timing, as above
        yield once_opening


@asynccontextmanager
async def bare_to_thread(n: int) -> AsyncIterator[Run]:
    """The floor for sync nodes: ``n`` sequential ``anyio.to_thread.run_sync`` hops."""

    async def once() -> None:
        v = thread_src(0)
        for _ in range(1, n):
            v = await anyio.to_thread.run_sync(thread_step, v)
        assert v == n - 1

    yield once


class _FloorNode:
    __slots__ = ("fn", "label", "successors", "value")

    def __init__(self, fn: Callable[..., Any], label: str) -> None:
        self.fn = fn
        self.label = label
        self.successors: tuple[_FloorNode, ...] = ()
        self.value: Any = None


@asynccontextmanager
async def build_floor(n: int) -> AsyncIterator[Run]:
    """The floor for building a graph of ``n`` nodes in CPython, without plait: one slotted
    object per node, registered by label, one edge key per edge (its setup is the build).
    The run walks the chain calling ``v + 1``: the floor of a run."""
    nodes: dict[str, _FloorNode] = {}
    edges: dict[tuple[str, str], None] = {}
    prev = nodes["n0"] = _FloorNode(chain_src, "n0")
    for i in range(1, n):
        node = nodes[f"n{i}"] = _FloorNode(chain_step, f"n{i}")
        edges[prev.label, node.label] = None
        prev.successors = (node,)
        prev = node

    async def once() -> None:
        node = nodes["n0"]
        v = node.fn(0)
        while node.successors:
            (node,) = node.successors
            v = node.fn(v)
        assert v == n - 1

    yield once


def _plait_cached(directory: Path) -> Callable[..., Any]:
    from plait.cache import cached

    return cached(min_ttl=1.0, max_ttl=2.0, db_path=directory / "cache.sqlite3")(cached_price)


def _close_plait_caches() -> None:
    from plait.cache import close_backends

    close_backends()


def time_calls(fn: Callable[..., Any], calls: int) -> float:
    """Seconds for ``fn(ticker="T", day=i)`` over ``i in range(calls)``, result checked."""
    t0 = time.perf_counter()
    out: Any = None
    for i in range(calls):
        out = fn(ticker="T", day=i)
    elapsed = time.perf_counter() - t0
    assert out["day"] == calls - 1, out
    return elapsed


@asynccontextmanager
async def cache_misses(
    make: Callable[[Path], Callable[..., Any]],
    calls: int,
    close: Callable[[], None] | None = None,
) -> AsyncIterator[Run]:
    """Each repetition: a fresh cache file, then ``calls`` distinct keys (all misses).

    One untimed call on a key outside the timed ones opens the new file first (a library
    that opens its store lazily creates it then, with its schema and fsyncs), so every
    library, like the raw sqlite3 floor, is timed on misses alone."""
    with tempfile.TemporaryDirectory(prefix="plait-bench-") as tmp:
        reps = iter(range(1_000_000))

        async def once() -> float:
            fn = make(Path(tmp) / f"rep{next(reps)}")
            assert fn(ticker="open", day=-1)["day"] == -1
            return time_calls(fn, calls)

        try:
            yield once
        finally:
            if close is not None:
                close()


@asynccontextmanager
async def cache_hits(
    make: Callable[[Path], Callable[..., Any]],
    calls: int,
    close: Callable[[], None] | None = None,
) -> AsyncIterator[Run]:
    """The cache is filled with ``calls`` keys at setup; each repetition reads them all."""
    with tempfile.TemporaryDirectory(prefix="plait-bench-") as tmp:
        fn = make(Path(tmp))
        time_calls(fn, calls)

        async def once() -> float:
            return time_calls(fn, calls)

        try:
            yield once
        finally:
            if close is not None:
                close()


def plait_cache_misses(calls: int) -> Any:
    return cache_misses(_make_dir(_plait_cached), calls, _close_plait_caches)


def plait_cache_hits(calls: int) -> Any:
    return cache_hits(_make_dir(_plait_cached), calls, _close_plait_caches)


def _make_dir(
    make: Callable[[Path], Callable[..., Any]],
) -> Callable[[Path], Callable[..., Any]]:
    def in_fresh_dir(directory: Path) -> Callable[..., Any]:
        directory.mkdir(parents=True, exist_ok=True)
        return make(directory)

    return in_fresh_dir
