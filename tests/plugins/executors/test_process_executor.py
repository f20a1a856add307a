"""The ``process`` executor (issue 8): real worker processes, no mocks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import _process_nodes as nodes
import anyio
import anyio.lowlevel
import pytest

from plait import Dag, DagRunner, get_executor, inline
from plait.errors import ExecutorError
from plait.plugins import PluginHost
from plait.records import NodeStatus, RunStatus
from plait_executors import ProcessExecutor

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.xdist_group("process")]


async def poll(predicate: Callable[[], object], interval: float = 0.02) -> None:
    """Wait until ``predicate()`` is true (for state another process writes: no event)."""
    while True:
        if predicate():
            return
        await anyio.sleep(interval)


@pytest.fixture
def finished(host: PluginHost) -> nodes.Finished:
    rec = nodes.Finished()
    host.register(rec, name="finished")
    return rec


def test_process_executor_is_installed(host: PluginHost) -> None:
    info = host.backends("executor")["process"]
    assert info.distribution == "plait-executors"
    executor = get_executor("process", host=host, max_workers=3)
    assert isinstance(executor, ProcessExecutor)
    assert executor.max_workers == 3


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="max_workers must be >= 1"):
        ProcessExecutor(max_workers=0)
    with pytest.raises(ValueError, match="start_method must be one of"):
        ProcessExecutor(start_method="fork")


async def test_nodes_run_in_worker_processes(host: PluginHost, finished: nodes.Finished) -> None:
    dag = Dag("pids")
    dag.node(nodes.pid, executor="process")
    result = await DagRunner(dag, host=host).run()
    assert result.status == "completed", result.error
    worker_pid = result.outputs["pid"]
    assert worker_pid != os.getpid()
    (rec,) = finished.by_label("pid")
    assert rec.executor == "process"
    assert rec.pid == worker_pid
    assert rec.worker is not None and rec.worker.startswith("SpawnProcess-")


async def test_map_spreads_over_both_workers(
    host: PluginHost, finished: nodes.Finished, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLAIT_TEST_RENDEZVOUS", str(tmp_path))  # the workers inherit it
    sub = Dag("each_pid")
    sub.node(nodes.pid_of)
    dag = Dag("spread")
    dag.node(nodes.numbers) >> dag.map(sub, label="each")
    runner = DagRunner(dag, executor=ProcessExecutor(max_workers=2), host=host)
    try:
        result = await runner.run({"numbers": {"n": 100}})
    finally:
        await runner._env.executor(None).aclose()
    assert result.status == "completed", result.error
    pids = result.outputs["each"]
    assert len(pids) == 100
    assert len(set(pids)) == 2 and os.getpid() not in pids
    element_records = finished.by_label("pid_of")
    assert {r.pid for r in element_records} == set(pids)


async def test_worker_exception_fails_node_with_remote_traceback() -> None:
    dag = Dag("boom")
    dag.node(nodes.explode, executor="process")
    result = await DagRunner(dag).run({"explode": {"x": 7}})
    assert result.status == "failed"
    assert result.failed_node == "explode"
    assert isinstance(result.exception, ValueError)
    assert result.error is not None and "bad element 7" in result.error
    text = "".join(traceback.format_exception(result.exception))
    # the traceback from the worker process: file and function of the failing node
    assert "_process_nodes.py" in text and "in explode" in text


async def test_unpicklable_function_is_a_clear_error() -> None:
    def local_square(x: int) -> int:
        return x * x

    dag = Dag("local")
    dag.node(local_square, executor="process")
    result = await DagRunner(dag).run({"local_square": {"x": 3}})
    assert result.status == "failed"
    assert result.failed_node == "local_square"
    assert isinstance(result.exception, ExecutorError)
    assert result.error is not None
    assert "local_square" in result.error and "cannot be pickled" in result.error
    assert "importable" in result.error


async def test_unpicklable_argument_and_result_are_clear_errors() -> None:
    dag = Dag("args")
    dag.node(inline(nodes.make_holder)) >> dag.node(nodes.use_holder, executor="process")
    result = await DagRunner(dag).run()
    assert result.failed_node == "use_holder"
    assert isinstance(result.exception, ExecutorError)
    assert "argument 'h' (Holder) cannot be pickled" in str(result.error)
    assert "_thread.lock" in str(result.error)

    dag = Dag("ret")
    dag.node(nodes.return_holder, executor="process")
    result = await DagRunner(dag).run()
    assert result.failed_node == "return_holder"
    assert isinstance(result.exception, ExecutorError)
    assert "return_holder returned a value that cannot be sent back" in str(result.error)
    assert "Holder" in str(result.error)


async def _kill_when_started(marker: Path) -> int:
    await poll(lambda: marker.exists() and marker.read_text())
    victim = int(await anyio.Path(marker).read_text())
    os.kill(victim, signal.SIGKILL)
    return victim


RUNNER = textwrap.dedent(
    """
    import sys

    sys.path.insert(0, sys.argv[1])
    import anyio
    from _process_nodes import outlive
    from plait import Dag, DagRunner
    from plait_executors import ProcessExecutor

    dag = Dag("outlive")
    dag.node(outlive, executor="process")
    executor = ProcessExecutor(max_workers=1, start_method=sys.argv[3])
    runner = DagRunner(dag, executor=executor)
    anyio.run(runner.run, {"outlive": {"work": sys.argv[2], "seconds": 4.0}})
    """
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (an exited child not reaped yet) counts as gone
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


@pytest.mark.parametrize("start_method", ["spawn", "forkserver"])
def test_workers_end_with_a_killed_runner(tmp_path: Path, start_method: str) -> None:
    """kill -9 the runner mid-node: its worker is gone within two seconds and never
    finishes the node (it would write ``finished`` after four)."""
    script = tmp_path / "runner.py"
    script.write_text(RUNNER)
    here = str(Path(nodes.__file__).parent)
    errors = tmp_path / "stderr"
    with errors.open("wb") as stderr:  # a file: a pipe would stay open in the fork server
        runner = subprocess.Popen(
            [sys.executable, str(script), here, str(tmp_path), start_method], stderr=stderr
        )
    deadline = time.monotonic() + 30
    while not (tmp_path / "started").exists():
        assert runner.poll() is None, errors.read_text()
        assert time.monotonic() < deadline, "the worker never started"
        time.sleep(0.02)
    worker = int((tmp_path / "started").read_text())
    assert worker != runner.pid and _alive(worker)
    runner.kill()  # not reaped yet: a zombie runner counts as dead
    try:
        gone_by = time.monotonic() + 2.0
        while _alive(worker) and time.monotonic() < gone_by:
            time.sleep(0.02)
        assert not _alive(worker), f"worker {worker} outlived its runner"
        time.sleep(4.5)  # past the moment the node would have finished
        assert not (tmp_path / "finished").exists()
    finally:
        runner.wait()
        if _alive(worker):
            os.kill(worker, signal.SIGKILL)


@pytest.mark.parametrize("retries", [0, 1])
async def test_killed_worker_fails_clearly_or_retries(tmp_path: Path, retries: int) -> None:
    marker = tmp_path / "pid"
    dag = Dag("kill")
    dag.node(nodes.die_once, executor="process", retries=retries, retry_backoff=0.0)
    runner = DagRunner(dag)
    victim = 0
    with anyio.fail_after(20):  # never a hang
        async with anyio.create_task_group() as tg:

            async def kill() -> None:
                nonlocal victim
                victim = await _kill_when_started(marker)

            tg.start_soon(kill)
            result = await runner.run({"die_once": {"marker": str(marker)}})
    if retries:
        assert result.status == "completed", result.error
        assert result.outputs["die_once"] not in (victim, os.getpid(), -1)
    else:
        assert result.status == "failed"
        assert isinstance(result.exception, ExecutorError)
        assert "worker process of the process executor died" in str(result.error)
        assert "die_once" in str(result.error)


async def test_cancelling_the_run_drops_pending_calls(
    tmp_path: Path, host: PluginHost, finished: nodes.Finished
) -> None:
    log = tmp_path / "log"
    log.touch()
    sub = Dag("work_one")
    sub.node(nodes.work, executor="process")
    dag = Dag("cancel")
    dag.node(nodes.jobs) >> dag.map(sub, label="each")
    runner = DagRunner(dag, host=host)  # "process" by name: the runner owns and closes it
    with anyio.fail_after(20):
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:

                async def cancel_once_started() -> None:
                    await poll(lambda: "start" in log.read_text())
                    scope.cancel()

                tg.start_soon(cancel_once_started)
                await runner.run({"jobs": {"log": str(log), "n": 8, "seconds": 3.0}})
        t_returned = time.monotonic()
    assert scope.cancelled_caught
    await anyio.sleep(0.5)
    lines = log.read_text().splitlines()
    started = [line for line in lines if line.startswith("start")]
    # the two workers started a call each; the other calls were never submitted
    assert 1 <= len(started) <= 2
    # calls abandoned in flight were terminated when the run closed its executor
    assert not [line for line in lines if line.startswith("end")]
    assert time.monotonic() - t_returned < 3.0
    statuses = {r.status for r in finished.by_label("each")}
    assert statuses == {NodeStatus.CANCELLED}


async def test_one_dag_mixes_inline_async_and_process_nodes(
    host: PluginHost, finished: nodes.Finished
) -> None:
    @inline
    def seed() -> int:
        return 20

    async def fetch(seed: int) -> float:
        await anyio.lowlevel.checkpoint()
        return seed / 2

    dag = Dag("mixed")
    dag.node(seed) >> dag.node(fetch) >> dag.node(nodes.crunch, executor="process")
    result = await DagRunner(dag, host=host).run()
    assert result.status == RunStatus.COMPLETED, result.error
    value, worker_pid = result.outputs["crunch"]
    assert value == 25.0 and worker_pid != os.getpid()
    where = {r.label: (r.executor, r.pid) for r in finished.records}
    assert where == {
        "seed": ("inline", os.getpid()),
        "fetch": ("async", os.getpid()),
        "crunch": ("process", worker_pid),
    }
