"""DagRunner with SqliteProvenance: kill -9 and restart, restart/replay, typed round trips."""

from __future__ import annotations  # noqa: I001

import dataclasses
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import anyio
import attrs
import pytest
from plait import Dag, DagPause, DagRunner, inline

from plait_provenance_sqlite import SqliteProvenance

pytest.importorskip("plait_executors")

CHAIN = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path

    import anyio
    from plait import Dag, DagRunner
    from plait_provenance_sqlite import SqliteProvenance

    work = Path(sys.argv[1])
    K = int(sys.argv[3])

    def make(i):
        def step(x: int) -> int:
            with open(work / "calls.txt", "a") as fh:
                fh.write(f"n{i}\\n")
            if i == K and not (work / "inflight").exists():
                (work / "inflight").write_text(str(os.getpid()))
                time.sleep(60)  # killed here
            return x + i
        step.__name__ = step.__qualname__ = f"n{i}"
        return step

    dag = Dag()
    nodes = [dag.node(make(i), label=f"n{i}") for i in range(10)]
    for up, down in zip(nodes, nodes[1:]):
        up >> down
    dag.validate()

    async def main():
        runner = DagRunner(dag, provenance=SqliteProvenance(work / "prov.sqlite3"))
        if sys.argv[2] == "run":
            result = await runner.run({"n0": {"x": 100}})
        else:
            async with SqliteProvenance(work / "prov.sqlite3") as prov:
                (run,) = await prov.list_runs()
            result = await runner.restart(run.run_id)
        print(result.status, result.outputs["n9"])

    anyio.run(main)
    """
)


@pytest.mark.slow
def test_kill_9_then_restart_runs_only_the_inflight_node_again(tmp_path: Path) -> None:
    script = tmp_path / "chain.py"
    script.write_text(CHAIN)
    k = 5
    first = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path), "run", str(k)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while not (tmp_path / "inflight").exists():
        assert first.poll() is None, first.communicate()[1].decode()
        assert time.monotonic() < deadline, "node k never started"
        time.sleep(0.02)
    os.kill(first.pid, signal.SIGKILL)
    first.communicate()
    assert first.returncode == -signal.SIGKILL

    async def crashed_state() -> tuple[str, list[tuple[str, str]]]:
        async with SqliteProvenance(tmp_path / "prov.sqlite3") as prov:
            (run,) = await prov.list_runs()
            nodes = await prov.get_node_executions(run.run_id)
            pending = [n.label for n in await prov.get_pending_nodes(run.run_id)]
            assert pending == [f"n{k}"]  # what was in flight is on record
            return run.status, [(n.label, n.status) for n in nodes]

    status, nodes = anyio.run(crashed_state)
    assert status == "running"  # its owner died: restart takes it over
    assert nodes == [(f"n{i}", "completed") for i in range(k)] + [(f"n{k}", "running")]

    second = subprocess.run(
        [sys.executable, str(script), str(tmp_path), "restart", str(k)],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert second.returncode == 0, second.stderr.decode()
    assert second.stdout.decode().split() == ["completed", str(100 + sum(range(10)))]
    calls = (tmp_path / "calls.txt").read_text().split()
    counts = {f"n{i}": calls.count(f"n{i}") for i in range(10)}
    assert counts == {f"n{i}": (2 if i == k else 1) for i in range(10)}


# --------------------------------------------------------------------------- in-process
@attrs.frozen
class Reading:
    sensor: str
    at: datetime
    values: tuple[float, ...]


@dataclasses.dataclass(frozen=True)
class Report:
    path: Path
    readings: list[Reading]
    tags: dict[str, tuple[int, str]]


class Flags:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.fail = True
        self.pause = True


def typed_dag(flags: Flags) -> Dag:
    def read() -> Reading:
        flags.calls.append("read")
        return Reading(sensor="s1", at=datetime(2026, 5, 1, 12, tzinfo=UTC), values=(1.5, 2.0))

    def report(reading: Reading) -> Report:
        flags.calls.append("report")
        return Report(path=Path("/tmp/r.txt"), readings=[reading], tags={"k": (1, "a")})

    def check(rep: Report) -> str:
        flags.calls.append("check")
        assert isinstance(rep, Report) and isinstance(rep.path, Path)
        assert isinstance(rep.readings[0], Reading)
        assert rep.readings[0].values == (1.5, 2.0) and rep.tags == {"k": (1, "a")}
        if flags.pause:
            flags.pause = False
            raise DagPause("wait for approval")
        if flags.fail:
            flags.fail = False
            raise RuntimeError("flaky")
        return f"{rep.readings[0].sensor}@{rep.readings[0].at.isoformat()}"

    dag = Dag()
    dag.node(read) >> dag.node(report) >> dag.node(check)
    dag.validate()
    return dag


@pytest.mark.anyio
async def test_paused_then_failed_run_restarts_with_typed_outputs(tmp_path: Path) -> None:
    flags = Flags()
    runner = DagRunner(typed_dag(flags), provenance=SqliteProvenance(tmp_path / "p.sqlite3"))
    first = await runner.run()
    assert first.status == "paused"
    second = await runner.restart(first.run_id)
    assert second.status == "failed" and second.failed_node == "check"
    third = await runner.restart(first.run_id)
    assert third.status == "completed"
    assert third.outputs == {"check": "s1@2026-05-01T12:00:00+00:00"}
    assert flags.calls == ["read", "report", "check", "check", "check"]
    async with SqliteProvenance(tmp_path / "p.sqlite3") as prov:
        run = await prov.get_run(first.run_id)
        assert (run.status, run.attempt) == ("completed", 3)
        history = [c.status for c in await prov.status_history(first.run_id, "check")]
        assert history.count("running") == 3
        assert history[-1] == "completed"


@pytest.mark.anyio
async def test_cancelled_run_restarts(tmp_path: Path) -> None:
    calls: list[str] = []
    release = anyio.Event()

    async def first() -> int:
        calls.append("first")
        return 1

    async def slow(x: int) -> int:
        calls.append("slow")
        await release.wait()
        return x + 1

    dag = Dag()
    dag.node(first) >> dag.node(slow)
    runner = DagRunner(dag, provenance=SqliteProvenance(tmp_path / "p.sqlite3"))
    with anyio.move_on_after(0.5):
        await runner.run()
    async with SqliteProvenance(tmp_path / "p.sqlite3") as prov:
        (run,) = await prov.list_runs()
        assert run.status == "cancelled"
        pending = [n.label for n in await prov.get_pending_nodes(run.run_id)]
        assert pending == ["slow"]
    release.set()
    result = await runner.restart(run.run_id)
    assert result.status == "completed" and result.outputs == {"slow": 2}
    assert calls == ["first", "slow", "slow"]


@pytest.mark.anyio
async def test_replay_reruns_descendants_only(tmp_path: Path) -> None:
    calls: list[str] = []

    def make(name: str):
        def step(x: int) -> int:
            calls.append(name)
            return x * 2

        step.__name__ = step.__qualname__ = name
        return step

    dag = Dag()
    a, b, c, d = (dag.node(make(n), label=n) for n in "abcd")
    a >> b >> c >> d
    db = tmp_path / "p.sqlite3"
    runner = DagRunner(dag, provenance=SqliteProvenance(db))
    original = await runner.run({"a": {"x": 1}})
    replayed = await runner.replay(original.run_id, rerun_nodes={"c"})
    assert replayed.status == "completed" and replayed.outputs == {"d": 16}
    assert calls == ["a", "b", "c", "d", "c", "d"]
    async with SqliteProvenance(db) as prov:
        run = await prov.get_run(replayed.run_id)
        assert run.replay_of == original.run_id
        nodes = {n.label: n.status for n in await prov.get_node_executions(replayed.run_id)}
        assert nodes == {"a": "skipped", "b": "skipped", "c": "completed", "d": "completed"}


@pytest.mark.anyio
async def test_inline_nodes_are_recorded_once_with_their_whole_history(tmp_path: Path) -> None:
    @inline
    def source(x: int) -> int:
        return x + 1

    @inline
    def double(source: int) -> int:
        return source * 2

    @inline
    def explode(double: int) -> int:
        raise ValueError(f"no {double}")

    dag = Dag()
    dag.node(source) >> dag.node(double) >> dag.node(explode)
    path = tmp_path / "p.sqlite3"
    result = await DagRunner(dag, provenance=SqliteProvenance(path)).run({"source": {"x": 1}})
    assert result.status == "failed" and result.failed_node == "explode"
    async with SqliteProvenance(path) as prov:
        nodes = {n.label: n for n in await prov.get_node_executions(result.run_id)}
        assert [(n.status, n.executor) for n in nodes.values()] == [
            ("completed", "inline"),
            ("completed", "inline"),
            ("failed", "inline"),
        ]
        assert nodes["double"].inputs == {"source": 2} and nodes["double"].output == 4
        assert nodes["explode"].error_type == "builtins.ValueError"
        for label, node in nodes.items():
            changes = await prov.status_history(result.run_id, label)
            # one record was written, the running transition comes from started_at
            assert [c.status for c in changes] == ["running", node.status]
            assert changes[0].at == node.started_at and changes[1].at == node.updated_at
            assert node.started_at is not None and node.finished_at is not None
            assert node.started_at <= node.finished_at
        edges = await prov.get_edge_traversals(result.run_id)
        assert [(e.upstream, e.downstream, e.parameter) for e in edges] == [
            ("source", "double", "source"),
            ("double", "explode", "double"),
        ]
