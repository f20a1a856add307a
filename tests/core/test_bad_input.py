"""Every kind of bad input to the public API raises a PlaitError subclass naming what is
wrong (SPEC 9; issue 13, item 11). One table: each row is a call a user might write, the
error class it must raise (which also derives from the builtin it refines, so code that
caught ``ValueError`` or ``TypeError`` still does) and a word its message must hold."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import pytest

from plait import Dag, DagRunner, Namespace, RunStatus, cached, inline
from plait.errors import (
    ArgumentError,
    ArgumentTypeError,
    InputError,
    NsrefError,
    PlaitError,
    RestartError,
    TtlError,
)
from plait.records import NodeStatus
from plait_cache_sqlite import SqliteCache
from plait_executors import ProcessExecutor, ThreadExecutor
from plait_provenance_sqlite import SqliteProvenance


@inline
def f(x: int) -> int:
    return x


@inline
def g(p: Path, values: list[int]) -> int:
    return len(values)


def dag() -> Dag:
    d = Dag("bad_input")
    d.node(f)
    return d


def sub() -> Dag:
    d = Dag("sub")
    d.node(f)
    return d


Call = Callable[[Path], Any]


async def with_run(path: Path, act: Callable[[DagRunner, str], Awaitable[Any]]) -> Any:
    runner = DagRunner(dag(), provenance=SqliteProvenance(path / "prov.sqlite3"))
    done = await runner.run({"f": {"x": 1}})
    return await act(runner, done.run_id)


async def with_store(path: Path, act: Callable[[SqliteProvenance], Awaitable[Any]]) -> Any:
    async with SqliteProvenance(path / "prov.sqlite3") as prov:
        return await act(prov)


def run(act: Callable[[DagRunner, str], Awaitable[Any]]) -> Call:
    return lambda path: anyio.run(with_run, path, act)


def store(act: Callable[[SqliteProvenance], Awaitable[Any]]) -> Call:
    return lambda path: anyio.run(with_store, path, act)


def inputs(source_inputs: Any, target: Dag | None = None) -> Call:
    def call(path: Path) -> Any:
        runner = DagRunner(target or dag(), provenance=SqliteProvenance(path / "prov.sqlite3"))
        return anyio.run(runner.run, source_inputs)

    return call


def node(**options: Any) -> Call:
    return lambda _path: Dag().node(f, **options)


def runner(*args: Any, **options: Any) -> Call:
    return lambda _path: DagRunner(*args, **options)


NAIVE = datetime(2020, 1, 1)

CASES: list[tuple[str, Call, type[PlaitError], str]] = [
    # DagRunner(...)
    ("runner-dag-str", runner("x"), ArgumentTypeError, "dag"),
    ("runner-dag-none", runner(None), ArgumentTypeError, "dag"),
    ("runner-concurrency-0", runner(dag(), max_concurrency=0), ArgumentError, "max_concurrency"),
    ("runner-concurrency-neg", runner(dag(), max_concurrency=-3), ArgumentError, "max_concurrency"),
    (
        "runner-concurrency-str",
        runner(dag(), max_concurrency="4"),
        ArgumentTypeError,
        "max_concurrency",
    ),
    (
        "runner-concurrency-float",
        runner(dag(), max_concurrency=2.5),
        ArgumentTypeError,
        "max_concurrency",
    ),
    (
        "runner-concurrency-bool",
        runner(dag(), max_concurrency=True),
        ArgumentTypeError,
        "max_concurrency",
    ),
    ("runner-provenance-int", runner(dag(), provenance=123), ArgumentTypeError, "provenance"),
    (
        "runner-provenance-object",
        runner(dag(), provenance=object()),
        ArgumentTypeError,
        "provenance",
    ),
    ("runner-executor-int", runner(dag(), executor=123), ArgumentTypeError, "executor"),
    ("runner-fail-fast-str", runner(dag(), fail_fast="yes"), ArgumentTypeError, "fail_fast"),
    ("runner-host-str", runner(dag(), host="x"), ArgumentTypeError, "host"),
    (
        "runner-options-int",
        runner(dag(), provenance_options=5),
        ArgumentTypeError,
        "provenance_options",
    ),
    # runner.run(...)
    ("inputs-list", inputs([1]), InputError, "source_inputs"),
    ("inputs-str", inputs("f"), InputError, "source_inputs"),
    ("inputs-value-not-dict", inputs({"f": 5}), InputError, "'f'"),
    ("inputs-value-list", inputs({"f": [("x", 1)]}), InputError, "'f'"),
    ("inputs-unknown-node", inputs({"ghost": {"x": 1}}), InputError, "ghost"),
    ("inputs-unknown-param", inputs({"f": {"x": 1, "y": 2}}), InputError, "'y'"),
    ("inputs-missing", inputs({}), InputError, "x: int"),
    ("inputs-str-for-int", inputs({"f": {"x": "abc"}}), InputError, "'x'"),
    ("inputs-digits-for-int", inputs({"f": {"x": "1"}}), InputError, "'x'"),
    ("inputs-float-for-int", inputs({"f": {"x": 1.5}}), InputError, "'x'"),
    ("inputs-none-for-int", inputs({"f": {"x": None}}), InputError, "'x'"),
    ("inputs-list-of-str", inputs({"g": {"p": "a", "values": ["a"]}}, Dag("g")), InputError, "g"),
    (
        "run-nsref-int",
        run(lambda r, _id: r.run({"f": {"x": 1}}, dag_nsref=5)),
        ArgumentTypeError,
        "dag_nsref",
    ),
    (
        "run-correlation-int",
        run(lambda r, _id: r.run({"f": {"x": 1}}, correlation_id=5)),
        ArgumentTypeError,
        "correlation_id",
    ),
    # restart / replay
    ("restart-id-int", run(lambda r, _id: r.restart(123)), ArgumentTypeError, "run_id"),
    ("restart-completed", run(lambda r, rid: r.restart(rid)), RestartError, "completed"),
    ("replay-str", run(lambda r, rid: r.replay(rid, "f")), ArgumentTypeError, "rerun_nodes"),
    ("replay-ints", run(lambda r, rid: r.replay(rid, {1})), ArgumentTypeError, "rerun_nodes"),
    ("replay-none", run(lambda r, rid: r.replay(rid, None)), ArgumentTypeError, "rerun_nodes"),
    ("replay-unknown", run(lambda r, rid: r.replay(rid, {"ghost"})), RestartError, "ghost"),
    ("replay-id-int", run(lambda r, _id: r.replay(7, {"f"})), ArgumentTypeError, "run_id"),
    # Dag and its nodes
    ("dag-nsref-int", lambda _p: Dag(5), ArgumentTypeError, "nsref"),
    ("dag-namespace-str", lambda _p: Dag("d", namespace="ns"), ArgumentTypeError, "namespace"),
    ("node-target-int", lambda _p: Dag().node(5), ArgumentTypeError, "target"),
    ("node-label-int", node(label=5), ArgumentTypeError, "label"),
    ("node-retries-neg", node(retries=-1), ArgumentError, "retries"),
    ("node-retries-float", node(retries=2.5), ArgumentTypeError, "retries"),
    ("node-retries-str", node(retries="2"), ArgumentTypeError, "retries"),
    ("node-retries-bool", node(retries=True), ArgumentTypeError, "retries"),
    ("node-timeout-0", node(timeout=0), ArgumentError, "timeout"),
    ("node-timeout-neg", node(timeout=-1), ArgumentError, "timeout"),
    ("node-timeout-nan", node(timeout=float("nan")), ArgumentError, "timeout"),
    ("node-timeout-str", node(timeout="1"), ArgumentTypeError, "timeout"),
    ("node-backoff-neg", node(retry_backoff=-1), ArgumentError, "retry_backoff"),
    ("node-backoff-inf", node(retry_backoff=float("inf")), ArgumentError, "retry_backoff"),
    ("node-backoff-str", node(retry_backoff="0.1"), ArgumentTypeError, "retry_backoff"),
    ("node-executor-int", node(executor=5), ArgumentTypeError, "executor"),
    ("map-not-dag", lambda _p: Dag().map(f), ArgumentTypeError, "sub_dag"),
    (
        "map-concurrency-0",
        lambda _p: Dag().map(sub(), max_concurrency=0),
        ArgumentError,
        "max_concurrency",
    ),
    (
        "map-concurrency-str",
        lambda _p: Dag().map(sub(), max_concurrency="2"),
        ArgumentTypeError,
        "max_concurrency",
    ),
    ("map-retries-neg", lambda _p: Dag().map(sub(), retries=-1), ArgumentError, "retries"),
    ("map-timeout-0", lambda _p: Dag().map(sub(), timeout=0), ArgumentError, "timeout"),
    ("edge-not-node", lambda _p: Dag().node(f) >> 5, ArgumentTypeError, "DagNode"),
    # Namespace
    ("nsref-int", lambda _p: Namespace().register(f, nsref=5), NsrefError, "nsref"),
    ("nsref-malformed", lambda _p: Namespace().register(f, nsref="a::b"), NsrefError, "a::b"),
    (
        "register-not-callable",
        lambda _p: Namespace().register(5, nsref="x"),
        ArgumentTypeError,
        "callable",
    ),
    # cached
    ("cached-bare", lambda _p: cached(f), TtlError, "bare @cached"),
    ("cached-no-ttls", lambda _p: cached(), TtlError, "min_ttl"),
    ("cached-no-max", lambda _p: cached(1), TtlError, "max_ttl"),
    ("cached-ttl-str", lambda _p: cached("1", 2), TtlError, "min_ttl"),
    ("cached-ttl-neg", lambda _p: cached(-1, 2), TtlError, "min_ttl"),
    ("cached-ttl-order", lambda _p: cached(3, 2), TtlError, "max_ttl"),
    ("cached-ttl-nan", lambda _p: cached(1, float("nan")), TtlError, "max_ttl"),
    ("cached-not-callable", lambda _p: cached(1, 2)(5), ArgumentTypeError, "callable"),
    ("cached-backend-int", lambda _p: cached(1, 2, backend=123), ArgumentTypeError, "backend"),
    ("cached-db-path-int", lambda _p: cached(1, 2, db_path=123), ArgumentTypeError, "db_path"),
    ("cached-db-path-nul", lambda _p: cached(1, 2, db_path="a\0b"), ArgumentError, "db_path"),
    ("cached-version-float", lambda _p: cached(1, 2, version=1.5), PlaitError, "version"),
    # backends
    ("sqlite-provenance-int", lambda _p: SqliteProvenance(123), ArgumentTypeError, "path"),
    ("sqlite-provenance-nul", lambda _p: SqliteProvenance("a\0b"), ArgumentError, "path"),
    ("sqlite-cache-int", lambda _p: SqliteCache(123), ArgumentTypeError, "path"),
    ("sqlite-cache-nul", lambda _p: SqliteCache("a\0b"), ArgumentError, "path"),
    ("process-workers-0", lambda _p: ProcessExecutor(max_workers=0), ArgumentError, "max_workers"),
    (
        "process-workers-str",
        lambda _p: ProcessExecutor(max_workers="2"),
        ArgumentTypeError,
        "max_workers",
    ),
    (
        "process-start-fork",
        lambda _p: ProcessExecutor(start_method="fork"),
        ArgumentError,
        "start_method",
    ),
    ("thread-workers-0", lambda _p: ThreadExecutor(max_workers=0), ArgumentError, "max_workers"),
    # store queries
    ("list-runs-status", store(lambda p: p.list_runs(status="bogus")), ArgumentError, "status"),
    (
        "list-runs-naive-after",
        store(lambda p: p.list_runs(started_after=NAIVE)),
        ArgumentError,
        "started_after",
    ),
    (
        "list-runs-naive-before",
        store(lambda p: p.list_runs(started_before=NAIVE)),
        ArgumentError,
        "started_before",
    ),
    (
        "list-runs-after-str",
        store(lambda p: p.list_runs(started_after="2020")),
        ArgumentTypeError,
        "started_after",
    ),
    ("list-runs-limit-neg", store(lambda p: p.list_runs(limit=-1)), ArgumentError, "limit"),
    ("list-runs-limit-str", store(lambda p: p.list_runs(limit="10")), ArgumentTypeError, "limit"),
    ("purge-status", store(lambda p: p.purge(status="bogus")), ArgumentError, "status"),
    ("purge-naive", store(lambda p: p.purge(older_than=NAIVE)), ArgumentError, "older_than"),
    ("run-status-bogus", lambda _p: RunStatus("bogus"), ArgumentError, "status"),
    ("node-status-bogus", lambda _p: NodeStatus("done"), ArgumentError, "status"),
]


@pytest.mark.parametrize(
    ("call", "error", "named"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_raises_a_plait_error_naming_it(
    tmp_path: Path, call: Call, error: type[PlaitError], named: str
) -> None:
    with pytest.raises(PlaitError) as info:
        call(tmp_path)
    assert isinstance(info.value, error), f"{type(info.value).__name__}: {info.value}"
    assert named in str(info.value)
    assert not (tmp_path / "prov.sqlite3").exists() or store_is_sane(tmp_path)


def store_is_sane(path: Path) -> bool:
    """Bad input left at most the one good run the case made itself."""

    async def runs(prov: SqliteProvenance) -> int:
        return len(await prov.list_runs())

    return int(anyio.run(with_store, path, runs)) <= 1
