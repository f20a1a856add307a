"""Scheduling, failure, retries, timeouts, pause and cancellation (SPEC 4)."""

from __future__ import annotations

import threading
from typing import Any

import anyio
import pytest
from _recorder import Recorder
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plait import (
    Dag,
    DagContext,
    DagPause,
    DagRunner,
    NullProvenance,
    current_context,
    hookimpl,
    inline,
)
from plait.errors import BackendNotFoundError, InputError, NodeTimeoutError
from plait.pickling import callable_name
from plait.plugins import PluginHost
from plait.records import BackendInfo, RunStatus

pytestmark = pytest.mark.anyio


@inline
def one() -> int:
    return 1


@inline
def inc(v: int) -> int:
    return v + 1


# ---------------------------------------------------------------------------- property test
@st.composite
def random_dags(draw: st.DrawFn) -> tuple[int, list[tuple[int, int]], list[str]]:
    n = draw(st.integers(min_value=1, max_value=14))
    edges = [(i, j) for j in range(n) for i in range(j) if draw(st.booleans())]
    kinds = [draw(st.sampled_from(["inline", "async", "thread"])) for _ in range(n)]
    return n, edges, kinds


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(spec=random_dags())
async def test_random_dags_match_sequential_evaluation(
    spec: tuple[int, list[tuple[int, int]], list[str]],
) -> None:
    n, edges, kinds = spec
    lock = threading.Lock()
    clock = [0]
    starts: dict[int, int] = {}
    ends: dict[int, int] = {}
    runs: dict[int, int] = {}

    def tick() -> int:
        with lock:
            clock[0] += 1
            return clock[0]

    def body(i: int, xs: list[int]) -> int:
        return (i * 7919 + sum(xs) * 31) % 1_000_003

    def make(i: int, kind: str) -> Any:
        if kind == "async":

            async def node(xs: list[int] = []) -> int:  # noqa: B006 - never mutated
                starts[i] = tick()
                runs[i] = runs.get(i, 0) + 1
                await anyio.lowlevel.checkpoint()
                out = body(i, xs)
                ends[i] = tick()
                return out

            return node

        def node_sync(xs: list[int] = []) -> int:  # noqa: B006 - never mutated
            starts[i] = tick()
            with lock:
                runs[i] = runs.get(i, 0) + 1
            out = body(i, xs)
            ends[i] = tick()
            return out

        return inline(node_sync) if kind == "inline" else node_sync

    dag = Dag("random")
    nodes = [dag.node(make(i, kinds[i]), label=f"n{i}") for i in range(n)]
    for i, j in edges:
        nodes[i] >> nodes[j]
    result = await DagRunner(dag, max_concurrency=None).run()
    assert result.status == "completed", result.error

    expected: dict[int, int] = {}
    for j in range(n):
        expected[j] = body(j, [expected[i] for i, jj in edges if jj == j])
    assert runs == dict.fromkeys(range(n), 1)
    for i, j in edges:
        assert ends[i] < starts[j], f"n{j} started before its upstream n{i} ended"
    sinks = set(range(n)) - {i for i, _ in edges}
    assert result.outputs == {f"n{j}": expected[j] for j in sorted(sinks)}


# ---------------------------------------------------------------------------- concurrency
async def test_async_branches_run_concurrently_without_timing() -> None:
    width = 12
    started = 0
    all_started = anyio.Event()

    async def branch(v: int) -> int:
        nonlocal started
        started += 1
        if started == width:
            all_started.set()
        await all_started.wait()  # a sequential runner deadlocks here
        return v

    def total(xs: list[int]) -> int:
        return sum(xs)

    dag = Dag()
    src = dag.node(one)
    sink = dag.node(total)
    for i in range(width):
        src >> dag.node(branch, label=f"b{i}") >> sink
    with anyio.fail_after(5):
        result = await dag()
    assert result.outputs == {"total": width}


async def test_thread_branches_run_concurrently_without_timing() -> None:
    width = 6
    barrier = threading.Barrier(width, timeout=5)

    def branch(v: int) -> int:
        barrier.wait()  # raises BrokenBarrierError unless all run at once
        return v

    @inline
    def total(xs: list[int]) -> int:
        return sum(xs)

    dag = Dag()
    src = dag.node(one)
    sink = dag.node(total)
    for i in range(width):
        src >> dag.node(branch, label=f"b{i}") >> sink
    with anyio.fail_after(10):
        result = await DagRunner(dag, executor="thread").run()
    assert result.status == "completed", result.error
    assert result.outputs == {"total": width}


async def test_max_concurrency_bounds_nodes_in_flight() -> None:
    in_flight = peak = 0

    async def branch(v: int) -> int:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        for _ in range(3):
            await anyio.lowlevel.checkpoint()
        in_flight -= 1
        return v

    dag = Dag()
    src = dag.node(one)
    for i in range(10):
        src >> dag.node(branch, label=f"b{i}")
    result = await DagRunner(dag, max_concurrency=3).run()
    assert result.status == "completed"
    assert peak == 3


async def test_a_chain_of_thread_nodes_runs_each_node_once_in_order(
    host: PluginHost, recorder: Recorder
) -> None:
    n = 150  # longer than the scheduler's checkpoint interval
    loop_thread = threading.get_ident()
    calls: list[int] = []

    def step(v: int) -> int:
        assert threading.get_ident() != loop_thread
        calls.append(v)
        return v + 1

    dag = Dag()
    prev = dag.node(one)
    for i in range(n):
        prev = prev >> dag.node(step, label=f"s{i}")
    result = await DagRunner(dag, host=host).run()
    assert result.status == "completed", result.error
    assert result.outputs == {f"s{n - 1}": n + 1}
    assert calls == list(range(1, n + 1))
    labels = ["one", *(f"s{i}" for i in range(n))]
    assert [r.label for r in recorder.started] == labels
    assert [r.label for r in recorder.finished] == labels
    assert {r.status for r in recorder.finished} == {"completed"}
    assert {r.attempt for r in recorder.finished} == {1}


@pytest.mark.parametrize("kind", ["thread", "async"])
async def test_a_thread_node_fanning_out_runs_its_branches_concurrently(kind: str) -> None:
    """The task that ran the source runs one branch itself; the others still run at once."""
    width = 6
    barrier = threading.Barrier(width, timeout=5)
    started = 0
    all_started = anyio.Event()

    def src(x: int) -> int:  # on the thread executor, like its branches
        return x

    def thread_branch(v: int) -> int:
        barrier.wait()  # raises BrokenBarrierError unless all run at once
        return v

    async def async_branch(v: int) -> int:
        nonlocal started
        started += 1
        if started == width:
            all_started.set()
        await all_started.wait()  # a sequential runner deadlocks here
        return v

    def total(xs: list[int]) -> int:
        return sum(xs)

    branch = thread_branch if kind == "thread" else async_branch
    dag = Dag()
    source = dag.node(src)
    sink = dag.node(total)
    for i in range(width):
        source >> dag.node(branch, label=f"b{i}") >> sink
    with anyio.fail_after(10):
        result = await DagRunner(dag, executor="thread").run(source_inputs={"src": {"x": 2}})
    assert result.status == "completed", result.error
    assert result.outputs == {"total": 2 * width}


async def test_max_concurrency_one_bounds_thread_chains_and_fan_outs() -> None:
    """Thread nodes, and async ones that hold their slot across checkpoints, in chains that
    fan out from a thread node: one node at a time, also the one a finishing task runs."""
    lock = threading.Lock()
    in_flight = peak = runs = 0

    def enter() -> None:
        nonlocal in_flight, peak, runs
        with lock:
            in_flight += 1
            runs += 1
            peak = max(peak, in_flight)

    def leave() -> None:
        nonlocal in_flight
        with lock:
            in_flight -= 1

    def on_thread(v: int) -> int:
        enter()
        leave()
        return v + 1

    async def on_loop(v: int) -> int:
        enter()
        for _ in range(3):
            await anyio.lowlevel.checkpoint()
        leave()
        return v + 1

    dag = Dag()
    src = dag.node(on_thread, label="src")
    for i in range(5):
        (
            src
            >> dag.node(on_loop, label=f"a{i}")
            >> dag.node(on_thread, label=f"b{i}")
            >> dag.node(on_loop, label=f"c{i}")
        )
    with anyio.fail_after(10):
        result = await DagRunner(dag, max_concurrency=1).run(source_inputs={"src": {"v": 0}})
    assert result.status == "completed", result.error
    assert result.outputs == {f"c{i}": 4 for i in range(5)}
    assert runs == 16
    assert peak == 1


async def test_max_concurrency_two_runs_two_thread_nodes_at_once_not_three() -> None:
    width = 8  # even: the nodes meet in pairs
    pair = threading.Barrier(2, timeout=5)
    lock = threading.Lock()
    in_flight = peak = 0

    def src(x: int) -> int:
        return x

    def branch(v: int) -> int:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        pair.wait()  # raises BrokenBarrierError unless two run at once
        with lock:
            in_flight -= 1
        return v

    dag = Dag()
    source = dag.node(src)
    for i in range(width):
        source >> dag.node(branch, label=f"b{i}")
    with anyio.fail_after(10):
        result = await DagRunner(dag, max_concurrency=2).run(source_inputs={"src": {"x": 1}})
    assert result.status == "completed", result.error
    assert peak == 2


async def test_a_chain_of_async_nodes_that_never_await_lets_a_sibling_run() -> None:
    sibling_ran = False
    seen: list[bool] = []

    async def step(v: int) -> int:
        seen.append(sibling_ran)
        return v + 1

    async def sibling(v: int) -> int:
        nonlocal sibling_ran
        sibling_ran = True
        return v

    dag = Dag()
    src = dag.node(one)
    prev = src
    for i in range(300):
        prev = prev >> dag.node(step, label=f"s{i}")
    src >> dag.node(sibling)
    result = await dag()
    assert result.status == "completed", result.error
    assert len(seen) == 300
    assert seen[-1]  # the chain checkpoints: the sibling ran before the chain ended


# ---------------------------------------------------------------------------- failure
async def test_fail_fast_cancels_a_blocked_sibling(host: PluginHost, recorder: Recorder) -> None:
    async def stuck(v: int) -> int:
        await anyio.sleep_forever()
        raise AssertionError

    async def boom(v: int) -> int:
        await anyio.lowlevel.checkpoint()
        raise ValueError("bad value 42")

    dag = Dag("ff")
    src = dag.node(one)
    src >> dag.node(stuck)
    src >> dag.node(boom)
    with anyio.fail_after(5):
        result = await DagRunner(dag, host=host).run()
    assert result.status == RunStatus.FAILED
    assert result.failed_node == "boom"
    assert result.error == "ValueError: bad value 42"
    assert result.error_type == "builtins.ValueError"
    assert isinstance(result.exception, ValueError)
    assert recorder.final() == {"one": "completed", "boom": "failed", "stuck": "cancelled"}
    failed = next(n for n in recorder.finished if n.label == "boom")
    assert failed.error_type == "builtins.ValueError"
    assert "bad value 42" in (failed.traceback or "")
    assert recorder.runs_finished[-1].status == "failed"
    assert recorder.runs_finished[-1].failed_node == "boom"


async def test_continue_mode_finishes_independent_branches(
    host: PluginHost, recorder: Recorder
) -> None:
    async def slow_ok(v: int) -> int:
        for _ in range(5):
            await anyio.lowlevel.checkpoint()
        return v

    def boom(v: int) -> int:
        raise RuntimeError("nope")

    dag = Dag()
    src = dag.node(one)
    src >> dag.node(slow_ok)
    src >> dag.node(inline(boom), label="boom") >> dag.node(inc, label="after_boom")
    result = await DagRunner(dag, fail_fast=False, host=host).run()
    assert result.status == "failed" and result.failed_node == "boom"
    assert recorder.final()["slow_ok"] == "completed"
    assert "after_boom" not in recorder.final()


async def test_retries_with_backoff_then_success() -> None:
    attempts = 0

    async def flaky(v: int) -> int:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise ConnectionError("try again")
        return v * 10

    dag = Dag()
    dag.node(one) >> dag.node(flaky, retries=2, retry_backoff=0.001)
    result = await dag()
    assert result.outputs == {"flaky": 10}
    assert attempts == 3


async def test_retries_exhausted_fail_the_node() -> None:
    def always(v: int) -> int:
        raise ConnectionError("down")

    dag = Dag()
    dag.node(one) >> dag.node(inline(always), label="always", retries=1, retry_backoff=0)
    result = await dag()
    assert result.status == "failed" and result.error == "ConnectionError: down"


async def test_timeout_fails_the_node_with_its_name() -> None:
    async def sleepy(v: int) -> int:
        await anyio.sleep(30)
        return v

    dag = Dag()
    dag.node(one) >> dag.node(sleepy, timeout=0.05)
    with anyio.fail_after(5):
        result = await dag()
    assert result.status == "failed" and result.failed_node == "sleepy"
    assert isinstance(result.exception, NodeTimeoutError)
    assert "node 'sleepy' timed out after 0.05 s" in str(result.exception)


# ---------------------------------------------------------------------------- pause, cancel
async def test_dag_pause_pauses_the_run(host: PluginHost, recorder: Recorder) -> None:
    def gate(v: int) -> int:
        raise DagPause("waiting for approval")

    dag = Dag()
    dag.node(one) >> dag.node(inline(gate), label="gate") >> dag.node(inc)
    result = await DagRunner(dag, host=host).run()
    assert result.status == RunStatus.PAUSED
    assert recorder.final() == {"one": "completed", "gate": "paused"}


async def test_runner_pause_lets_in_flight_finish(host: PluginHost, recorder: Recorder) -> None:
    runner: DagRunner
    both_running = anyio.Event()
    running = 0

    async def first(v: int) -> int:
        nonlocal running
        running += 1
        if running == 2:
            both_running.set()
        await both_running.wait()
        runner.pause()
        await anyio.lowlevel.checkpoint()
        return v

    async def other(v: int) -> int:
        nonlocal running
        running += 1
        if running == 2:
            both_running.set()
        await both_running.wait()
        for _ in range(5):
            await anyio.lowlevel.checkpoint()
        return v

    async def second(v: int) -> int:
        raise AssertionError("must not start after pause()")

    dag = Dag()
    src = dag.node(one)
    src >> dag.node(first) >> dag.node(second)
    src >> dag.node(other)
    runner = DagRunner(dag, host=host)
    with anyio.fail_after(5):
        result = await runner.run()
    assert result.status == "paused"
    assert recorder.final() == {"one": "completed", "first": "completed", "other": "completed"}


async def test_caller_cancellation_ends_the_run_cancelled(
    host: PluginHost, recorder: Recorder
) -> None:
    started = anyio.Event()

    async def forever(v: int) -> int:
        started.set()
        await anyio.sleep_forever()
        raise AssertionError

    dag = Dag()
    dag.node(one) >> dag.node(forever)
    async with anyio.create_task_group() as tg:
        tg.start_soon(DagRunner(dag, host=host).run)
        with anyio.fail_after(5):
            await started.wait()
        tg.cancel_scope.cancel()
    assert recorder.runs_finished[-1].status == RunStatus.CANCELLED
    assert recorder.final() == {"one": "completed", "forever": "cancelled"}


# ---------------------------------------------------------------------------- inputs, context
async def test_dag_call_maps_kwargs_and_rejects_unknown() -> None:
    dag = Dag("inputs")
    dag.node(inc) >> dag.node(inc, label="inc2")
    assert (await dag(v=1)).outputs == {"inc2": 3}
    with pytest.raises(InputError, match="no source node takes 'w'"):
        await dag(w=1)
    with pytest.raises(InputError, match="missing input for required parameter v: int"):
        await dag()


async def test_context_injection_data_and_contextvar() -> None:
    seen: list[Any] = []

    def helper() -> str:
        ctx = current_context()
        assert ctx is not None
        return ctx.node_label

    def writer(v: int, ctx: DagContext) -> int:
        ctx.set_data("note", {"v": v})
        seen.append(helper())  # runs in a worker thread: the contextvar travelled
        return v

    async def reader(v: int, ctx: DagContext) -> int:
        seen.append((ctx.dag_nsref, ctx.node_label, ctx.get_data("note"), helper()))
        return v

    dag = Dag("ctx")
    dag.node(one) >> dag.node(writer) >> dag.node(reader)
    result = await dag()
    assert result.status == "completed", result.error
    assert seen == ["writer", ("ctx", "reader", {"v": 1}, "reader")]
    assert current_context() is None


async def test_sync_node_runs_on_thread_and_picks_executor_by_name(
    host: PluginHost, recorder: Recorder
) -> None:
    loop_thread = threading.get_ident()
    where: dict[str, int] = {}

    def on_thread(v: int) -> int:
        where["thread"] = threading.get_ident()
        return v

    def on_loop(v: int) -> int:
        where["inline"] = threading.get_ident()
        return v

    dag = Dag()
    src = dag.node(one)
    src >> dag.node(on_thread)
    src >> dag.node(on_loop, executor="inline")
    result = await DagRunner(dag, host=host).run()
    assert result.status == "completed", result.error
    assert where["thread"] != loop_thread
    assert where["inline"] == loop_thread
    execs = {n.label: n.executor for n in recorder.finished}
    assert execs == {"one": "inline", "on_thread": "thread", "on_loop": "inline"}
    thread_rec = next(n for n in recorder.finished if n.label == "on_thread")
    assert thread_rec.worker and thread_rec.worker != "event-loop" and thread_rec.pid


async def test_unknown_executor_fails_listing_installed() -> None:
    def plain(v: int) -> int:
        return v

    dag = Dag()
    dag.node(one) >> dag.node(plain, executor="warp-drive")
    result = await dag()
    assert result.status == "failed"
    assert isinstance(result.exception, BackendNotFoundError)
    assert "no executor backend named 'warp-drive'" in str(result.exception)
    assert "inline" in str(result.exception) and "thread" in str(result.exception)


async def test_long_inline_chain_yields_to_the_loop() -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.lowlevel.checkpoint()

    dag = Dag()
    prev = dag.node(one)
    for i in range(2000):
        prev = prev >> dag.node(inc, label=f"n{i}")
    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        result = await dag()
        tg.cancel_scope.cancel()
    assert result.outputs == {"n1999": 2001}
    assert ticks > 10  # the scheduler checkpoints while running inline nodes


async def test_runner_executor_instance_serves_nodes_that_name_it() -> None:
    class Counting:
        name = "counting"

        def __init__(self) -> None:
            self.calls = 0

        async def run(self, fn: Any, /) -> Any:
            self.calls += 1
            return fn()

        async def aclose(self) -> None:
            return None

    def plain(v: int) -> int:
        return v

    ex = Counting()
    dag = Dag()
    src = dag.node(one)
    src >> dag.node(plain)
    src >> dag.node(plain, label="named", executor="counting")
    result = await DagRunner(dag, executor=ex).run()
    assert result.status == "completed", result.error
    assert ex.calls == 2


@pytest.mark.parametrize("observed", [False, True])
async def test_an_executor_is_handed_a_call_that_names_the_node_function(
    observed: bool, host: PluginHost
) -> None:
    """With nothing recording where a node ran, the runner does not ask; the call it hands
    the executor still names the node function (executors name it in their errors)."""
    if observed:
        host.register(Recorder(), name="recorder")
    names: list[str] = []

    class Naming:
        name = "naming"

        async def run(self, fn: Any, /) -> Any:
            names.append(callable_name(fn))
            return fn()

        async def aclose(self) -> None:
            return None

    def double(v: int) -> int:
        return 2 * v

    dag = Dag()
    dag.node(one) >> dag.node(double) >> dag.node(double, label="again")
    result = await DagRunner(dag, executor=Naming(), host=host).run()
    assert result.status == "completed", result.error
    assert result.outputs == {"again": 4}
    assert names == [callable_name(double)] * 2


async def test_async_with_keeps_backends_open_across_runs() -> None:
    events: list[str] = []

    class Tracking:
        name = "tracking"

        async def run(self, fn: Any, /) -> Any:
            return fn()

        async def aclose(self) -> None:
            events.append("executor closed")

    class Prov(NullProvenance):
        async def open(self) -> None:
            events.append("open")

        async def aclose(self) -> None:
            events.append("close")

    def plain(v: int) -> int:
        return v

    host = PluginHost()

    class Provides:
        @hookimpl
        def plait_register_executors(self) -> list[BackendInfo]:
            return [BackendInfo(name="tracking", factory=Tracking)]

    host.register(Provides())
    dag = Dag()
    dag.node(one) >> dag.node(plain, executor="tracking")

    runner = DagRunner(dag, provenance=Prov(), host=host)
    await runner.run()
    await runner.run()
    assert events == ["open", "executor closed", "close"] * 2  # per run without `async with`

    events.clear()
    async with DagRunner(dag, provenance=Prov(), host=host) as held:
        for _ in range(3):
            assert (await held.run()).status == "completed"
        assert events == ["open"]
    assert events == ["open", "executor closed", "close"]
