"""The ``dask`` executor (issue 8) against a real LocalCluster: 2 worker processes, loopback."""

from __future__ import annotations

import inspect
import os
import signal
import threading
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import _dask_nodes as nodes
import anyio
import pytest
from distributed import Client, LocalCluster

from plait import Dag, DagRunner, get_executor
from plait.errors import ExecutorError, PlaitError
from plait.executors import NodeCall
from plait.plugins import PluginHost
from plait.records import NodeStatus
from plait_dask import DaskExecutor

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.xdist_group("dask")]


async def poll(predicate: Callable[[], object], interval: float = 0.02) -> None:
    """Wait until ``predicate()`` is true (for state another process writes: no event)."""
    while True:
        if predicate():
            return
        await anyio.sleep(interval)


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    """One cluster for the module: starting one takes seconds."""
    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=":0",  # any free port: None means 8787, shared
    ) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def client(cluster: LocalCluster) -> Iterator[Client]:
    with Client(cluster, set_as_default=False) as client:
        yield client


@pytest.fixture(autouse=True)
def scheduler_address(cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch) -> str:
    """Executors created by name (``executor="dask"``) connect to the module's cluster."""
    monkeypatch.setenv("PLAIT_DASK_ADDRESS", cluster.scheduler_address)
    return cluster.scheduler_address


@pytest.fixture
def finished(host: PluginHost) -> nodes.Finished:
    rec = nodes.Finished()
    host.register(rec, name="finished")
    return rec


async def run_call(executor: DaskExecutor, fn: Callable[..., Any], *args: Any) -> Any:
    """Call ``fn(*args)`` through the executor contract; the value it returned."""
    params = list(inspect.signature(fn).parameters)
    call = NodeCall(label=fn.__name__, function=fn, arguments=dict(zip(params, args, strict=False)))
    value, _placement, _lines = await executor.run(call)
    return value


def worker_pids(client: Client) -> dict[str, int]:
    return client.run(os.getpid)


def test_dask_plugin_is_installed(host: PluginHost) -> None:
    info = host.backends("executor")["dask"]
    assert info.distribution == "plait-dask"
    executor = get_executor("dask", host=host, address="tcp://127.0.0.1:1", n_workers=2)
    assert isinstance(executor, DaskExecutor)
    assert executor.address == "tcp://127.0.0.1:1"


async def test_nodes_run_on_worker_processes(
    host: PluginHost, finished: nodes.Finished, client: Client
) -> None:
    dag = Dag("pids")
    dag.node(nodes.pid, executor="dask")
    result = await DagRunner(dag, host=host).run()
    assert result.status == "completed", result.error
    pids = worker_pids(client)
    assert result.outputs["pid"] in pids.values()
    assert result.outputs["pid"] != os.getpid()
    (rec,) = finished.by_label("pid")
    assert rec.executor == "dask"
    assert rec.pid == result.outputs["pid"]
    assert rec.worker in pids  # the Dask worker's address
    assert pids[rec.worker] == rec.pid


async def test_map_spreads_over_both_workers(
    host: PluginHost, finished: nodes.Finished, client: Client
) -> None:
    sub = Dag("each_pid")
    sub.node(nodes.pid_of, executor="dask")
    dag = Dag("spread")
    dag.node(nodes.numbers) >> dag.map(sub, label="each")
    result = await DagRunner(dag, host=host).run({"numbers": {"n": 100}})
    assert result.status == "completed", result.error
    pids = worker_pids(client)
    assert len(result.outputs["each"]) == 100
    assert set(result.outputs["each"]) == set(pids.values())
    assert {r.worker for r in finished.by_label("pid_of")} == set(pids)


async def test_worker_exception_fails_node_with_remote_traceback() -> None:
    dag = Dag("boom")
    dag.node(nodes.explode, executor="dask")
    result = await DagRunner(dag).run({"explode": {"x": 7}})
    assert result.status == "failed"
    assert result.failed_node == "explode"
    assert isinstance(result.exception, ValueError)
    assert result.error is not None and "bad element 7" in result.error
    text = "".join(traceback.format_exception(result.exception))
    # frames from the worker, shipped back by Dask
    assert "_dask_nodes.py" in text and "in explode" in text


async def test_log_lines_of_a_dask_node_come_back_to_the_store(tmp_path: Path) -> None:
    # (the plugin-isolated session has no SQLite store)
    SqliteProvenance = pytest.importorskip("plait_provenance_sqlite").SqliteProvenance
    dag = Dag("dask_logs")
    dag.node(nodes.logging_on_worker, executor="dask")
    store = tmp_path / "runs.sqlite3"
    ok = await DagRunner(dag, provenance=SqliteProvenance(store)).run(
        {"logging_on_worker": {"x": 1}}
    )
    bad = await DagRunner(dag, provenance=SqliteProvenance(store)).run(
        {"logging_on_worker": {"x": -1}}
    )
    assert ok.ok and not bad.ok
    async with SqliteProvenance(store) as prov:
        good = await prov.get_logs(ok.run_id)
        failed = await prov.get_logs(bad.run_id)
        (rec,) = await prov.get_node_executions(ok.run_id)
    assert [(x.label, x.logger, x.message) for x in good] == [
        ("logging_on_worker", "dask_nodes", "on a dask worker with 1")
    ]
    assert rec.pid != os.getpid()  # it ran in a worker process
    assert [x.message for x in failed] == ["on a dask worker with -1"]


async def test_unpicklable_function_is_a_clear_error() -> None:
    lock = threading.Lock()

    def guarded(x: int) -> int:
        with lock:
            return x

    dag = Dag("local")
    dag.node(guarded, executor="dask")
    result = await DagRunner(dag).run({"guarded": {"x": 3}})
    assert result.status == "failed"
    assert result.failed_node == "guarded"
    assert isinstance(result.exception, ExecutorError)
    message = str(result.error)
    assert "guarded" in message and "cannot be pickled" in message
    assert "_thread.lock" in message


async def test_cancelling_the_run_cancels_the_tasks(
    tmp_path: Path, host: PluginHost, finished: nodes.Finished, client: Client
) -> None:
    log = tmp_path / "log"
    log.touch()
    sub = Dag("work_one")
    sub.node(nodes.work, executor="dask")
    dag = Dag("cancel")
    dag.node(nodes.jobs) >> dag.map(sub, label="each")
    with anyio.fail_after(20):
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:

                async def cancel_once_started() -> None:
                    await poll(lambda: "start" in log.read_text())
                    scope.cancel()

                tg.start_soon(cancel_once_started)
                await DagRunner(dag, host=host).run(
                    {"jobs": {"log": str(log), "n": 12, "seconds": 1.0}}
                )
    assert scope.cancelled_caught
    assert {r.status for r in finished.by_label("each")} == {NodeStatus.CANCELLED}
    # the scheduler forgets every task of the run; the two running ones end on their own
    with anyio.fail_after(5):
        await poll(lambda: not client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.tasks))
    await anyio.sleep(1.2)
    started = [line for line in log.read_text().splitlines() if line.startswith("start")]
    assert 1 <= len(started) <= 3


async def test_killed_worker_task_is_retried_never_hangs(tmp_path: Path, client: Client) -> None:
    marker = tmp_path / "pid"
    dag = Dag("kill")
    dag.node(nodes.die_once, executor="dask")
    victim = 0

    async def kill_when_started() -> None:
        nonlocal victim
        await poll(lambda: marker.exists() and marker.read_text())
        victim = int(marker.read_text())
        os.kill(victim, signal.SIGKILL)

    with anyio.fail_after(30):  # never a hang
        async with anyio.create_task_group() as tg:
            tg.start_soon(kill_when_started)
            result = await DagRunner(dag).run({"die_once": {"marker": str(marker)}})
    # Dask reschedules the task of a dead worker: the second attempt finds the marker
    assert result.status == "completed", result.error
    assert result.outputs["die_once"] not in (victim, os.getpid(), -1)
    assert result.outputs["die_once"] in worker_pids(client).values()
    # leave two workers for whoever uses the cluster next (the nanny restarts the dead one)
    await anyio.to_thread.run_sync(lambda: client.wait_for_workers(2, timeout=20))


async def test_results_and_errors_fetched_together_reach_their_callers(client: Client) -> None:
    executor = DaskExecutor(client=client)
    outcomes: dict[int, object] = {}

    async def one(x: int) -> None:
        try:
            outcomes[x] = await run_call(executor, nodes.echo_or_explode, x)
        except ValueError as exc:
            outcomes[x] = exc

    try:
        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                for x in range(40):
                    tg.start_soon(one, x)
    finally:
        await executor.aclose()
    assert [outcomes[x] for x in range(0, 40, 2)] == list(range(0, 40, 2))
    for x in range(1, 40, 2):
        error = outcomes[x]
        assert isinstance(error, ValueError) and str(error) == f"odd element {x}"
        text = "".join(traceback.format_exception(error))
        assert "in echo_or_explode" in text  # the worker's frame


def test_one_executor_serves_successive_event_loops(client: Client) -> None:
    executor = DaskExecutor(client=client)

    async def main() -> list[int]:
        async with anyio.create_task_group() as tg:
            results: list[int] = []

            async def one(x: int) -> None:
                results.append(await run_call(executor, nodes.echo_or_explode, x))

            for x in range(0, 20, 2):
                tg.start_soon(one, x)
        return sorted(results)

    try:
        for backend in ("asyncio", "trio"):
            assert anyio.run(main, backend=backend) == list(range(0, 20, 2)), backend
    finally:
        anyio.run(executor.aclose)


async def test_closing_the_executor_fails_waiting_runs(tmp_path: Path, client: Client) -> None:
    executor = DaskExecutor(client=client)
    log = tmp_path / "log"
    log.touch()
    job = nodes.Job(0, str(log), 3.0)
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:

            async def close_once_started() -> None:
                await poll(lambda: "start" in log.read_text())
                await executor.aclose()

            tg.start_soon(close_once_started)
            with pytest.raises(ExecutorError, match=r"closed while \S*work was running"):
                await run_call(executor, nodes.work, job)
    # like a fresh one, the closed executor works again when used again
    try:
        assert await run_call(executor, nodes.pid) in worker_pids(client).values()
    finally:
        await executor.aclose()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"n_workers": 0}, "DaskExecutor(): n_workers must be >= 1, got 0"),
        ({"n_workers": "2"}, "DaskExecutor(): n_workers must be an int, got str '2'"),
        ({"threads_per_worker": 0}, "DaskExecutor(): threads_per_worker must be >= 1, got 0"),
        ({"address": 8786}, "DaskExecutor(): address must be str, got int 8786"),
    ],
)
def test_bad_options_are_plait_errors_naming_the_option(
    options: dict[str, object], message: str
) -> None:
    with pytest.raises(PlaitError) as info:
        DaskExecutor(**options)  # type: ignore[arg-type]
    assert str(info.value) == message
