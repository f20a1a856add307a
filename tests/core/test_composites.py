"""Composite nodes: MapNode and CallNode (SPEC 3 and 4, issue 5), without provenance.

Each behaviour is checked on every way plait runs elements: plain calls for an ``@inline``
sub-DAG nobody observes, awaited calls for an async or threaded chain, recorded sub-runs run
in the map's own task (``@inline`` with an observer), and sub-runs through the scheduler
(a sub-DAG with branches or a ``DagContext``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from _recorder import Recorder

from plait import CallNode, Dag, DagContext, DagPause, DagRunner, MapNode, inline
from plait.errors import CompositeError, DagValidationError, MapInputError, PlaitError
from plait.plugins import PluginHost
from plait.records import NodeStatus, RunStatus

pytestmark = pytest.mark.anyio


# ---------------------------------------------------------------------------- sub-DAG kinds
@inline
def square_inline(x: int) -> int:
    return x * x


async def square_async(x: int) -> int:
    await anyio.lowlevel.checkpoint()
    return x * x


def square_thread(x: int) -> int:
    return x * x


def square_ctx(x: int, ctx: DagContext) -> int:
    assert ctx.node_label == "square"
    return x * x


@inline
def plus_one(x: int) -> int:
    return x + 1


@inline
def minus_one(y: int) -> int:
    return y - 1


@inline
def halve(x: int) -> float:
    return x / 2


@inline
def double(x: int) -> int:
    return 2 * x


@inline
def add_both(h: float, d: int) -> int:
    return int(h * 2) + d


def square_dag(kind: str) -> Dag:
    """A sub-DAG computing ``x * x`` the way ``kind`` says."""
    sub = Dag(f"square_{kind}")
    if kind == "inline":
        sub.node(square_inline, label="square")
    elif kind == "async":
        sub.node(square_async, label="square")
    elif kind == "thread":
        sub.node(square_thread, label="square")
    elif kind == "context":
        sub.node(square_ctx, label="square")
    elif kind == "chain":  # (x + 1) - 1, then squared
        sub.node(plus_one) >> sub.node(minus_one) >> sub.node(square_async, label="square")
    elif kind == "branches":  # x/2*2 + 2x = 3x, then squared / 9 ... keep it x*x:
        head = sub.node(square_inline, label="square")
        tail = sub.node(add_both)
        head >> [sub.node(halve), sub.node(double)] >> tail
        tail >> sub.node(third_squared_root, label="root")
    else:  # pragma: no cover
        raise AssertionError(kind)
    return sub


@inline
def third_squared_root(v: int) -> int:
    # v = 3 * x*x (from the branches), so v // 3 == x*x
    return v // 3


KINDS = ["inline", "async", "thread", "context", "chain", "branches"]


@inline
def numbers(n: int) -> list[int]:
    return list(range(n))


@inline
def named(n: int) -> dict[str, int]:
    return {f"k{i}": i for i in range(n)}


def map_dag(sub: Dag, source: Callable[..., Any] = numbers, **options: Any) -> Dag:
    dag = Dag("outer")
    dag.node(source, label="src") >> dag.map(sub, label="each", **options)
    return dag


async def run(dag: Dag, n: int, **options: Any) -> Any:
    return await DagRunner(dag, **options).run(source_inputs={"src": {"n": n}})


# ---------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("kind", KINDS)
async def test_list_result_keeps_order(kind: str) -> None:
    result = await run(map_dag(square_dag(kind)), 50)
    assert result.status == "completed", result.error
    assert result.outputs["each"] == [i * i for i in range(50)]


@pytest.mark.parametrize("kind", KINDS)
async def test_dict_result_keeps_keys(kind: str) -> None:
    result = await run(map_dag(square_dag(kind), named), 7)
    assert result.ok, result.error
    out = result.outputs["each"]
    assert out == {f"k{i}": i * i for i in range(7)}
    assert list(out) == [f"k{i}" for i in range(7)]


@pytest.mark.parametrize("kind", ["inline", "async", "branches"])
@pytest.mark.parametrize(("source", "empty"), [(numbers, []), (named, {})])
async def test_empty_collections(kind: str, source: Callable[..., Any], empty: Any) -> None:
    result = await run(map_dag(square_dag(kind), source), 0)
    assert result.ok, result.error
    assert result.outputs["each"] == empty


@pytest.mark.parametrize("kind", KINDS)
async def test_observed_elements_give_the_same_results(
    kind: str, host: PluginHost, recorder: Recorder
) -> None:
    result = await run(map_dag(square_dag(kind)), 20, host=host)
    assert result.ok, result.error
    assert result.outputs["each"] == [i * i for i in range(20)]
    subs = [r for r in recorder.runs_finished if r.parent_run_id == result.run_id]
    assert sorted(r.dag_nsref for r in subs) == sorted(f"outer/each[{i}]" for i in range(20))
    assert all(r.status == "completed" for r in subs)


# ---------------------------------------------------------------------------- wiring
@inline
def total(squares: list[int]) -> int:
    return sum(squares)


@inline
def keys_of(squares: dict[str, int]) -> list[str]:
    return sorted(squares)


async def test_map_output_wires_by_type_into_list_and_dict_parameters() -> None:
    dag = map_dag(square_dag("inline"))
    dag.node(total, label="sum")
    dag["each"] >> dag["sum"]
    result = await run(dag, 5)
    assert result.outputs == {"sum": 0 + 1 + 4 + 9 + 16}

    dag = map_dag(square_dag("inline"), named)
    dag["each"] >> dag.node(keys_of)
    result = await run(dag, 3)
    assert result.outputs == {"keys_of": ["k0", "k1", "k2"]}


# ---------------------------------------------------------------------------- nesting
@inline
def grid(n: int) -> list[list[int]]:
    return [[i * 10 + j for j in range(i + 1)] for i in range(n)]


@pytest.mark.parametrize("kind", ["inline", "async", "context"])
async def test_nested_maps(kind: str) -> None:
    inner = Dag("inner")
    inner.node(passthrough, label="row") >> inner.map(square_dag(kind), label="cells")
    dag = map_dag(inner, grid)
    result = await run(dag, 4)
    assert result.ok, result.error
    assert result.outputs["each"] == [[v * v for v in row] for row in grid(4)]


@inline
def passthrough(row: list[int]) -> list[int]:
    return row


async def test_nested_maps_observed(host: PluginHost, recorder: Recorder) -> None:
    inner = Dag("inner")
    inner.node(passthrough, label="row") >> inner.map(square_dag("inline"), label="cells")
    result = await run(map_dag(inner, grid), 3, host=host)
    assert result.ok, result.error
    nsrefs = {r.dag_nsref for r in recorder.runs_finished}
    assert "outer/each[2]" in nsrefs
    assert "outer/each[2]/cells[1]" in nsrefs
    by_id = {r.run_id: r for r in recorder.runs_finished}
    deep = next(r for r in recorder.runs_finished if r.dag_nsref == "outer/each[2]/cells[1]")
    assert deep.parent_run_id is not None
    assert by_id[deep.parent_run_id].dag_nsref == "outer/each[2]"


@pytest.mark.parametrize("kind", ["inline", "async"])
async def test_call_node_inside_a_map(kind: str) -> None:
    element = Dag("element")
    element.node(plus_one) >> element.node(square_dag(kind), label="call_square")
    assert isinstance(element["call_square"], CallNode)
    dag = map_dag(element)
    assert isinstance(dag["each"], MapNode)
    result = await run(dag, 6)
    assert result.ok, result.error
    assert result.outputs["each"] == [(i + 1) ** 2 for i in range(6)]


async def test_call_node_runs_the_sub_dag_once() -> None:
    dag = Dag("outer")
    (
        dag.node(plus_one, label="src")
        >> dag.node(square_dag("chain"), label="sq")
        >> dag.node(minus_one)
    )
    result = await DagRunner(dag).run(source_inputs={"src": {"x": 4}})
    assert result.outputs == {"minus_one": 24}


# ---------------------------------------------------------------------------- validation
@inline
def source_a() -> int:
    return 1


@inline
def source_b() -> int:
    return 2


@inline
def add(a: int, b: int) -> int:
    return a + b


def test_sub_dag_with_two_sources_or_sinks_is_rejected() -> None:
    two_sources = Dag("two_sources")
    two_sources.node(add).bind(a=two_sources.node(source_a), b=two_sources.node(source_b))
    dag = Dag("outer")
    dag.node(numbers) >> dag.map(two_sources, label="each")
    with pytest.raises(DagValidationError) as info:
        dag.validate()
    text = str(info.value)
    assert "'two_sources'" in text
    assert "exactly one source node, it has 2: source_a, source_b" in text

    two_sinks = Dag("two_sinks")
    head = two_sinks.node(square_inline)
    head >> two_sinks.node(plus_one)
    head >> two_sinks.node(double)
    dag = Dag("outer")
    dag.node(numbers) >> dag.map(two_sinks, label="each")
    with pytest.raises(DagValidationError) as info:
        dag.validate()
    assert "'two_sinks'" in str(info.value)
    assert "exactly one sink node, it has 2: plus_one, double" in str(info.value)

    dag = Dag("outer")
    dag.node(numbers) >> dag.map(Dag("empty"), label="each")
    with pytest.raises(DagValidationError, match="'empty' must have exactly one source node"):
        dag.validate()


def test_map_arguments_are_checked() -> None:
    dag = Dag("outer")
    with pytest.raises(TypeError, match=r"dag\.map\(\): sub_dag must be a Dag"):
        dag.map(square_inline)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_concurrency must be >= 1"):
        dag.map(square_dag("inline"), max_concurrency=0)


@inline
def not_a_collection(n: int) -> Any:
    return 42


@pytest.mark.parametrize("kind", ["inline", "async"])
async def test_upstream_that_is_not_a_list_or_dict_fails_the_map(kind: str) -> None:
    result = await run(map_dag(square_dag(kind), not_a_collection), 3)
    assert result.status == "failed"
    assert result.failed_node == "each"
    assert isinstance(result.exception, MapInputError)
    assert isinstance(result.exception, PlaitError)
    assert "map node 'each'" in str(result.exception)
    assert "got int" in str(result.exception)


# ---------------------------------------------------------------------------- failure
class Boom(Exception):
    pass


def failing_dag(kind: str, bad: set[int], calls: list[int]) -> Dag:
    """Squares, raising :class:`Boom` on the elements in ``bad``; records every call."""

    def check(x: int) -> int:
        calls.append(x)
        if x in bad:
            raise Boom(f"bad element {x}")
        return x * x

    async def check_async(x: int) -> int:
        await anyio.lowlevel.checkpoint()
        return check(x)

    def check_ctx(x: int, ctx: DagContext) -> int:
        return check(x)

    sub = Dag(f"failing_{kind}")
    if kind in ("inline", "observed"):
        sub.node(inline(check), label="check")
    elif kind == "async":
        sub.node(check_async, label="check")
    else:
        sub.node(check_ctx, label="check")
    return sub


FAIL_KINDS = ["inline", "async", "observed", "context"]


@pytest.mark.parametrize("kind", FAIL_KINDS)
async def test_element_failure_names_the_key(kind: str, host: PluginHost) -> None:
    if kind == "observed":
        host.register(Recorder())
    calls: list[int] = []
    result = await run(map_dag(failing_dag(kind, {3}, calls), named), 6, host=host)
    assert result.status == "failed"
    assert result.failed_node == "each"
    exc = result.exception
    assert isinstance(exc, CompositeError)
    assert exc.key == "k3"
    assert exc.node == "each"
    assert isinstance(exc.__cause__, Boom)
    assert "map node 'each': element 'k3' failed at node 'check'" in str(exc)
    assert "Boom: bad element 3" in str(exc)
    assert "element 'k3'" in (result.error or "")


@pytest.mark.parametrize("kind", FAIL_KINDS)
async def test_continue_mode_finishes_the_other_elements(kind: str, host: PluginHost) -> None:
    if kind == "observed":
        host.register(Recorder())
    calls: list[int] = []
    result = await run(map_dag(failing_dag(kind, {2, 5}, calls)), 8, host=host, fail_fast=False)
    assert result.status == "failed"
    assert sorted(calls) == list(range(8))
    exc = result.exception
    assert isinstance(exc, CompositeError)
    assert exc.failed_keys == (2, 5)
    assert "and 1 more failed elements: " in str(exc)


@pytest.mark.parametrize("kind", ["inline", "observed"])
async def test_fail_fast_stops_a_synchronous_map_at_the_failure(
    kind: str, host: PluginHost
) -> None:
    if kind == "observed":
        host.register(Recorder())
    calls: list[int] = []
    result = await run(map_dag(failing_dag(kind, {2}, calls)), 8, host=host)
    assert result.status == "failed"
    assert calls == [0, 1, 2]


@pytest.mark.parametrize("kind", ["lean", "scheduled"])
async def test_fail_fast_cancels_the_other_elements(kind: str) -> None:
    started: list[int] = []
    finished: list[int] = []

    async def slow_or_bad(x: int) -> int:
        started.append(x)
        if x == 0:
            await anyio.sleep(0.01)
            raise Boom("first")
        await anyio.sleep(30)
        finished.append(x)
        return x

    async def slow_or_bad_ctx(x: int, ctx: DagContext) -> int:
        return await slow_or_bad(x)

    sub = Dag("slow")
    sub.node(slow_or_bad if kind == "lean" else slow_or_bad_ctx, label="work")
    with anyio.fail_after(10):
        result = await run(map_dag(sub), 5)
    assert result.status == "failed"
    assert sorted(started) == [0, 1, 2, 3, 4]
    assert finished == []
    assert isinstance(result.exception, CompositeError)
    assert result.exception.key == 0


async def test_call_node_failure_names_the_sub_dag() -> None:
    calls: list[int] = []
    dag = Dag("outer")
    dag.node(plus_one, label="src") >> dag.node(failing_dag("async", {3}, calls), label="sub")
    result = await DagRunner(dag).run(source_inputs={"src": {"x": 2}})
    assert result.status == "failed"
    assert result.failed_node == "sub"
    assert "call node 'sub': sub-DAG 'failing_async' failed at node 'check'" in (result.error or "")


# ---------------------------------------------------------------------------- concurrency
def tracked_dag(kind: str, gauge: dict[str, int]) -> Dag:
    """An async element that stays in flight until ``target`` elements are, measuring the peak."""

    async def hold(x: int) -> int:
        gauge["now"] += 1
        gauge["peak"] = max(gauge["peak"], gauge["now"])
        try:
            for _ in range(200):  # wait (a while) for the others the bound lets in
                if gauge["now"] >= gauge["target"]:
                    break
                await anyio.lowlevel.checkpoint()
            await anyio.lowlevel.checkpoint()
        finally:
            gauge["now"] -= 1
        return x

    async def hold_ctx(x: int, ctx: DagContext) -> int:
        return await hold(x)

    sub = Dag("tracked")
    sub.node(hold if kind == "lean" else hold_ctx, label="hold")
    return sub


@pytest.mark.parametrize("kind", ["lean", "scheduled"])
async def test_unbounded_map_runs_every_element_at_once(kind: str) -> None:
    gauge = {"now": 0, "peak": 0, "target": 30}
    result = await run(map_dag(tracked_dag(kind, gauge)), 30)
    assert result.outputs["each"] == list(range(30))
    assert gauge["peak"] == 30


@pytest.mark.parametrize("kind", ["lean", "scheduled"])
async def test_map_max_concurrency_bounds_elements_in_flight(kind: str) -> None:
    gauge = {"now": 0, "peak": 0, "target": 3}
    result = await run(map_dag(tracked_dag(kind, gauge), max_concurrency=3), 30)
    assert result.outputs["each"] == list(range(30))
    assert gauge["peak"] == 3


@pytest.mark.parametrize("kind", ["lean", "scheduled"])
async def test_runner_max_concurrency_bounds_elements_in_flight(kind: str) -> None:
    gauge = {"now": 0, "peak": 0, "target": 2}
    dag = map_dag(tracked_dag(kind, gauge), max_concurrency=10)
    result = await run(dag, 30, max_concurrency=2)
    assert result.outputs["each"] == list(range(30))
    assert gauge["peak"] == 2


async def test_thread_elements_respect_the_map_bound() -> None:
    import threading

    lock = threading.Lock()
    gauge = {"now": 0, "peak": 0}

    def hold(x: int) -> int:
        import time

        with lock:
            gauge["now"] += 1
            gauge["peak"] = max(gauge["peak"], gauge["now"])
        time.sleep(0.002)
        with lock:
            gauge["now"] -= 1
        return x

    sub = Dag("threads")
    sub.node(hold)
    result = await run(map_dag(sub, max_concurrency=4), 24)
    assert result.outputs["each"] == list(range(24))
    assert 1 <= gauge["peak"] <= 4


# ---------------------------------------------------------------------------- progress
@pytest.mark.parametrize("kind", ["inline", "async", "branches"])
async def test_progress_event_per_element(kind: str, host: PluginHost, recorder: Recorder) -> None:
    result = await run(map_dag(square_dag(kind), named), 12, host=host)
    assert result.ok, result.error
    events = [p for p in recorder.progress if p.label == "each"]
    assert len(events) == 12
    assert [p.done for p in events] == list(range(1, 13))
    assert {p.total for p in events} == {12}
    assert {p.run_id for p in events} == {result.run_id}
    assert sorted(p.key for p in events) == sorted(f"k{i}" for i in range(12))
    assert {p.status for p in events} == {NodeStatus.COMPLETED}


async def test_progress_reports_failed_elements(host: PluginHost, recorder: Recorder) -> None:
    calls: list[int] = []
    result = await run(map_dag(failing_dag("inline", {1}, calls)), 4, host=host, fail_fast=False)
    assert result.status == "failed"
    statuses = {p.key: p.status for p in recorder.progress}
    assert statuses == {
        "0": NodeStatus.COMPLETED,
        "1": NodeStatus.FAILED,
        "2": NodeStatus.COMPLETED,
        "3": NodeStatus.COMPLETED,
    }


async def test_call_node_sends_no_map_progress(host: PluginHost, recorder: Recorder) -> None:
    dag = Dag("outer")
    dag.node(plus_one, label="src") >> dag.node(square_dag("inline"), label="sq")
    result = await DagRunner(dag, host=host).run(source_inputs={"src": {"x": 1}})
    assert result.outputs == {"sq": 4}
    assert recorder.progress == []
    assert any(r.dag_nsref == "outer/sq" for r in recorder.runs_finished)


# ---------------------------------------------------------------------------- pause, cancel
@pytest.mark.parametrize("kind", ["inline", "async"])
async def test_element_raising_dag_pause_pauses_the_map(kind: str) -> None:
    def maybe_pause(x: int) -> int:
        if x == 2:
            raise DagPause("wait for approval")
        return x

    async def maybe_pause_async(x: int) -> int:
        return maybe_pause(x)

    sub = Dag("pausing")
    sub.node(inline(maybe_pause) if kind == "inline" else maybe_pause_async, label="p")
    result = await run(map_dag(sub, max_concurrency=1), 5)
    assert result.status == "paused"


async def test_runner_pause_stops_starting_elements() -> None:
    seen: list[int] = []
    runner_box: list[DagRunner] = []

    async def work(x: int) -> int:
        seen.append(x)
        if x == 3:
            runner_box[0].pause()
        await anyio.lowlevel.checkpoint()
        return x

    sub = Dag("work")
    sub.node(work)
    runner = DagRunner(map_dag(sub, max_concurrency=1))
    runner_box.append(runner)
    result = await runner.run(source_inputs={"src": {"n": 20}})
    assert result.status == RunStatus.PAUSED
    assert seen == [0, 1, 2, 3]


@pytest.mark.parametrize("kind", ["lean", "scheduled"])
async def test_cancelling_the_caller_cancels_the_elements(kind: str) -> None:
    finished: list[int] = []

    async def forever(x: int) -> int:
        await anyio.sleep(30)
        finished.append(x)
        return x

    async def forever_ctx(x: int, ctx: DagContext) -> int:
        return await forever(x)

    sub = Dag("forever")
    sub.node(forever if kind == "lean" else forever_ctx, label="f")
    with anyio.move_on_after(0.05) as scope:
        await run(map_dag(sub), 10)
    assert scope.cancelled_caught
    assert finished == []


async def test_large_inline_map_yields_to_other_tasks() -> None:
    ticks: list[int] = []

    async def ticker() -> None:
        for i in range(1000):
            ticks.append(i)
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        result = await run(map_dag(square_dag("inline")), 5000)
        observed = len(ticks)
        tg.cancel_scope.cancel()
    assert result.ok
    assert observed > 10  # the map checkpointed along the way
