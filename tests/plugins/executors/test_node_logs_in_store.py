"""The log lines of thread and process nodes land in the SQLite store, with their run and
node: a worker process sends its lines back with the node's outcome (or with its error)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import _logging_nodes as nodes
import pytest

from plait import Dag, DagRunner
from plait_executors import ProcessExecutor

# (the plugin-isolated session has no SQLite store)
SqliteProvenance = pytest.importorskip("plait_provenance_sqlite").SqliteProvenance

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.xdist_group("process")]


@pytest.fixture(autouse=True)
def _info_here() -> Iterator[None]:
    """This process's logging is configured (pytest's handlers, WARNING): enable INFO for
    the nodes' logger, as an application would. The worker processes configure nothing."""
    nodes.log.setLevel(logging.INFO)
    yield
    nodes.log.setLevel(logging.NOTSET)


async def test_thread_and_process_node_lines_are_stored(tmp_path: Path) -> None:
    dag = Dag("logged_nodes")
    dag.node(nodes.on_thread, executor="thread") >> dag.node(nodes.in_process, executor="process")
    store = tmp_path / "runs.sqlite3"
    executor = ProcessExecutor(max_workers=1)
    try:
        result = await DagRunner(dag, provenance=SqliteProvenance(store), executor=executor).run(
            {"on_thread": {"n": 1}}
        )
    finally:
        await executor.aclose()
    assert result.outputs == {"in_process": 20}
    async with SqliteProvenance(store) as prov:
        lines = await prov.get_logs(result.run_id)
        nodes_by_label = {n.label: n for n in await prov.get_node_executions(result.run_id)}
    assert [(x.label, x.level, x.logger, x.seq) for x in lines] == [
        ("on_thread", logging.INFO, "logging_nodes", 0),
        ("in_process", logging.INFO, "logging_nodes", 0),
        ("in_process", logging.WARNING, "logging_nodes", 1),
    ]
    assert lines[0].message == "thread node got 1"
    worker_pid = nodes_by_label["in_process"].pid
    assert worker_pid is not None and worker_pid != os.getpid()
    assert lines[1].message == f"process node got 2 in pid {worker_pid}"
    assert {x.run_id for x in lines} == {result.run_id}


async def test_a_failing_process_node_sends_back_the_lines_before_its_error(
    tmp_path: Path,
) -> None:
    dag = Dag("failing_logged")
    dag.node(nodes.failing_in_process, executor="process")
    store = tmp_path / "runs.sqlite3"
    executor = ProcessExecutor(max_workers=1)
    try:
        result = await DagRunner(dag, provenance=SqliteProvenance(store), executor=executor).run(
            {"failing_in_process": {"x": 7}}
        )
    finally:
        await executor.aclose()
    assert not result.ok and "bad value 7" in (result.error or "")
    async with SqliteProvenance(store) as prov:
        lines = await prov.get_logs(result.run_id, label="failing_in_process")
    assert [(x.message, x.attempt) for x in lines] == [("about to fail with 7", 1)]
