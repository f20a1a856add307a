"""The plugin guide's executor example, plait-pool-executor, installed from its own
distribution: discovered through its entry point, it runs a DAG whose records say where
each node ran, and it keeps the executor contract on failure and cancellation."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import anyio
import pytest

from plait import Dag, DagRunner, current_context
from plait.plugins import PluginHost
from plait.records import NodeStatus, RunStatus

pytest.importorskip("plait_pool_executor")
sqlite = pytest.importorskip("plait_provenance_sqlite")

pytestmark = pytest.mark.anyio


def test_the_example_executor_is_discovered_from_installed_metadata() -> None:
    host = PluginHost()
    infos = {p.name: p for p in host.plugins()}
    assert infos["pool-executor"].provides == ("executor:pool",)
    assert infos["pool-executor"].error is None
    assert host.backends("executor")["pool"].distribution == "plait-pool-executor"


def thread_name(x: int) -> tuple[int, str, str]:
    ctx = current_context()
    assert ctx is not None
    return x + 1, threading.current_thread().name, ctx.node_label


def halve(pair: tuple[int, str, str]) -> float:
    if pair[0] % 2:
        raise ValueError(f"odd: {pair[0]}")
    return pair[0] / 2


async def test_a_dag_on_the_example_executor_records_where_nodes_ran(tmp_path: Path) -> None:
    dag = Dag("pooled")
    dag.node(thread_name, executor="pool") >> dag.node(halve, executor="pool")
    store = sqlite.SqliteProvenance(tmp_path / "runs.sqlite3")
    result = await DagRunner(dag, provenance=store).run({"thread_name": {"x": 1}})
    assert result.status is RunStatus.COMPLETED, result.error
    assert result.outputs == {"halve": 1.0}
    async with store:
        records = {r.label: r for r in await store.get_node_executions(result.run_id)}
    for record in records.values():
        assert record.status is NodeStatus.COMPLETED
        assert record.executor == "pool"
        assert record.host == socket.gethostname() and record.pid == os.getpid()
        assert record.worker is not None and record.worker.startswith("pool-worker")
    _value, ran_on, label = records["thread_name"].output
    assert records["thread_name"].worker == ran_on and label == "thread_name"


async def test_a_failing_node_on_the_example_executor_fails_the_run(tmp_path: Path) -> None:
    dag = Dag("pooled")
    dag.node(thread_name, executor="pool") >> dag.node(halve, executor="pool")
    store = sqlite.SqliteProvenance(tmp_path / "runs.sqlite3")
    result = await DagRunner(dag, provenance=store).run({"thread_name": {"x": 2}})
    assert result.status is RunStatus.FAILED
    assert result.failed_node == "halve" and result.error == "ValueError: odd: 3"
    async with store:
        records = {r.label: r for r in await store.get_node_executions(result.run_id)}
    assert records["halve"].status is NodeStatus.FAILED
    assert records["halve"].worker is None  # it never returned a placement


def slow(x: int) -> int:
    threading.Event().wait(0.5)
    return x


async def test_cancelling_a_run_on_the_example_executor_stops_waiting() -> None:
    dag = Dag("pooled")
    dag.node(slow, executor="pool")
    runner = DagRunner(dag)
    with anyio.move_on_after(0.1) as scope:
        await runner.run({"slow": {"x": 1}})
    assert scope.cancelled_caught
