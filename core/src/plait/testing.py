"""Contract tests a backend subclasses to prove it implements plait's protocols.

Subclass one of the classes below in a test module and give it a ``backend`` fixture that
returns a new, unopened backend on a fresh store::

    import pytest
    from plait.testing import ProvenanceBackendContract

    class TestMyProvenance(ProvenanceBackendContract):
        @pytest.fixture
        def backend(self, tmp_path):
            return MyProvenance(tmp_path / "runs")

Every test of the contract then runs against that backend. The class name must match
pytest's ``python_classes`` (``Test*`` by default); the contract classes themselves do not,
so importing them does not collect them twice.

This module imports pytest: use it from a test suite, with anyio's pytest plugin (installed
with anyio, which plait depends on) running the async tests. They run on the event loops
the suite's ``anyio_backend`` fixture names (anyio's own default: every installed backend,
so asyncio, and trio too when it is installed).

The contracts check what the protocols promise and what the runner relies on, nothing a
particular store offers on top (history, lineage, purge, multi-process access): test those
in your own suite.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import anyio
import anyio.to_thread
import attrs
import pytest

from plait.context import DagContext
from plait.dag import Dag
from plait.errors import DagPause, RestartError, RunBusyError, RunNotFoundError
from plait.inspection import inspect_run
from plait.markers import inline
from plait.protocols import CacheBackend, ProvenanceBackend
from plait.records import (
    EdgeRecord,
    LogRecord,
    NodeRecord,
    NodeStatus,
    RunOwner,
    RunRecord,
    RunStatus,
)
from plait.runner import DagRunner
from plait.triggers.contract import TriggerStoreContract

__all__ = ["CacheBackendContract", "ProvenanceBackendContract", "TriggerStoreContract"]

_T0 = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def _at(seconds: float) -> datetime:
    """A fixed aware UTC timestamp ``seconds`` after the contract's reference time."""
    return _T0 + timedelta(seconds=seconds)


def _run(run_id: str, *, started: float = 0.0, **fields: Any) -> RunRecord:
    fields.setdefault("dag_nsref", "contract:dag")
    fields.setdefault("status", RunStatus.RUNNING)
    return RunRecord(run_id=run_id, started_at=_at(started), updated_at=_at(started), **fields)


@contextlib.asynccontextmanager
async def _opened(backend: ProvenanceBackend) -> AsyncIterator[ProvenanceBackend]:
    await backend.open()
    try:
        yield backend
    finally:
        await backend.aclose()


class ProvenanceBackendContract:
    """Tests every :class:`~plait.protocols.ProvenanceBackend` must pass.

    Subclasses provide a ``backend`` fixture returning a new, unopened backend on an empty
    store. The tests open and close it themselves.

    A backend that deliberately keeps nothing (like :class:`~plait.null.NullProvenance`)
    sets ``stores_nothing = True``: the storage tests are then skipped and the test that it
    finds nothing runs instead. Restart and replay through the runner are tested only when
    the backend's ``stores_values`` is true (the runner refuses them otherwise).
    """

    #: The backend discards what it is given (queries find nothing).
    stores_nothing: ClassVar[bool] = False

    def _needs_storage(self) -> None:
        if self.stores_nothing:
            pytest.skip("the backend stores nothing (stores_nothing = True)")

    def _needs_values(self, backend: ProvenanceBackend) -> None:
        self._needs_storage()
        if not backend.stores_values:
            pytest.skip("the backend does not store values (stores_values is false)")

    # ------------------------------------------------------------------ protocol
    def test_implements_the_protocol(self, backend: ProvenanceBackend) -> None:
        assert isinstance(backend, ProvenanceBackend)
        assert isinstance(backend.stores_values, bool)
        if self.stores_nothing:
            assert not backend.stores_values, "a backend that stores nothing cannot restart runs"

    @pytest.mark.anyio
    async def test_open_aclose_and_reopen(self, backend: ProvenanceBackend) -> None:
        self._needs_storage()
        async with _opened(backend):
            backend.write_run(_run("r1"))
            await backend.commit()
        async with _opened(backend):  # the same instance opens again after aclose
            assert (await backend.get_run("r1")).run_id == "r1"
            backend.write_run(_run("r2", started=1))
            await backend.commit()
            assert [r.run_id for r in await backend.list_runs()] == ["r2", "r1"]

    @pytest.mark.anyio
    async def test_aclose_makes_buffered_writes_durable(self, backend: ProvenanceBackend) -> None:
        self._needs_storage()
        async with _opened(backend):
            backend.write_run(_run("r1"))
            backend.write_run_data("r1", "k", 1)
        async with _opened(backend):
            assert (await backend.get_run("r1")).run_id == "r1"
            assert await backend.load_run_data("r1") == {"k": 1}

    # ------------------------------------------------------------------ runs
    @pytest.mark.anyio
    async def test_run_record_round_trip(self, backend: ProvenanceBackend) -> None:
        self._needs_storage()
        record = RunRecord(
            run_id="r1",
            dag_nsref="pkg.pipelines:daily",
            status=RunStatus.FAILED,
            started_at=_at(0),
            updated_at=_at(2.5),
            finished_at=_at(3.000001),
            source_inputs={"load": {"day": "2026-01-02", "limit": 3, "tags": ["a", "ü"]}},
            parent_run_id="p1",
            replay_of="r0",
            correlation_id="c-7",
            attempt=2,
            owner_pid=4321,
            owner_host="worker-1",
            owner_started="linux:boot-1:42",
            failed_node="load",
            error_type="ValueError",
            error_message="bad day",
            traceback='Traceback (most recent call last):\n  File "x.py"\nValueError: bad day',
            dag_ref="pkg.pipelines:daily",
            resumed_at=_at(2),
            earlier_ms=1234.5,
        )
        async with _opened(backend):
            backend.write_run(record)
            await backend.commit()
            got = await backend.get_run("r1")
        if not backend.stores_values:
            got = _with(got, source_inputs=record.source_inputs)
        assert got == record
        assert isinstance(got.status, RunStatus)
        for stamp in (got.started_at, got.updated_at, got.finished_at, got.resumed_at):
            assert stamp is not None
            assert stamp.utcoffset() == timedelta(0)

    @pytest.mark.anyio
    async def test_a_later_run_record_replaces_the_earlier(
        self, backend: ProvenanceBackend
    ) -> None:
        self._needs_storage()
        running = _run("r1")
        done = _with(running, status=RunStatus.COMPLETED, updated_at=_at(5), finished_at=_at(5))
        async with _opened(backend):
            backend.write_run(running)
            await backend.commit()
            backend.write_run(done)
            await backend.commit()
            got = await backend.get_run("r1")
            assert (got.status, got.finished_at) == (RunStatus.COMPLETED, _at(5))
            assert [r.run_id for r in await backend.list_runs()] == ["r1"]

    @pytest.mark.anyio
    async def test_every_run_status_round_trips(self, backend: ProvenanceBackend) -> None:
        self._needs_storage()
        async with _opened(backend):
            for status in RunStatus:
                backend.write_run(_run(f"run-{status.value}", status=status))
            await backend.commit()
            for status in RunStatus:
                got = (await backend.get_run(f"run-{status.value}")).status
                assert got is status

    @pytest.mark.anyio
    async def test_unknown_run_raises_run_not_found_naming_it(
        self, backend: ProvenanceBackend
    ) -> None:
        async with _opened(backend):
            backend.write_run(_run("known"))
            await backend.commit()
            with pytest.raises(RunNotFoundError) as info:
                await backend.get_run("no-such-run-4f2a")
            if not self.stores_nothing:
                with pytest.raises(RunNotFoundError, match="no-such-run-4f2a"):
                    await backend.get_node_executions("no-such-run-4f2a")
        assert "no-such-run-4f2a" in str(info.value)
        assert isinstance(info.value, LookupError)

    # ------------------------------------------------------------------ list_runs
    @pytest.mark.anyio
    async def test_list_runs_filters_newest_first(self, backend: ProvenanceBackend) -> None:
        self._needs_storage()
        runs = [
            _run("a", started=0, status=RunStatus.COMPLETED, dag_nsref="x:one"),
            _run("b", started=10, status=RunStatus.FAILED, dag_nsref="x:one"),
            _run("c", started=20, status=RunStatus.COMPLETED, dag_nsref="x:two"),
            _run("d", started=30, status=RunStatus.PAUSED, dag_nsref="x:one"),
            _run(
                "c1", started=21, status=RunStatus.COMPLETED, dag_nsref="x:sub", parent_run_id="c"
            ),
            _run("c2", started=22, status=RunStatus.FAILED, dag_nsref="x:sub", parent_run_id="c"),
        ]
        async with _opened(backend):
            backend.write_run(runs[0])
            await backend.commit()
            for run in runs[1:]:
                backend.write_run(run)
            await backend.commit()

            async def ids(**filters: Any) -> list[str]:
                return [r.run_id for r in await backend.list_runs(**filters)]

            assert await ids() == ["d", "c2", "c1", "c", "b", "a"]
            assert await ids(status="completed") == ["c1", "c", "a"]
            assert await ids(status=RunStatus.FAILED) == ["c2", "b"]
            assert await ids(dag_nsref="x:one") == ["d", "b", "a"]
            assert await ids(parent_run_id="c") == ["c2", "c1"]
            assert await ids(parent_run_id="c", status="failed") == ["c2"]
            assert await ids(dag_nsref="x:one", status="completed") == ["a"]
            assert await ids(limit=2) == ["d", "c2"]
            assert await ids(dag_nsref="x:one", limit=1) == ["d"]
            assert await ids(status="cancelled") == []
            assert await ids(dag_nsref="x:nothing") == []

    @pytest.mark.anyio
    async def test_list_runs_time_range(self, backend: ProvenanceBackend) -> None:
        self._needs_storage()
        async with _opened(backend):
            for i, run_id in enumerate("abcd"):
                backend.write_run(_run(run_id, started=i * 10))
            await backend.commit()

            async def ids(**filters: Any) -> list[str]:
                return [r.run_id for r in await backend.list_runs(**filters)]

            # started_after is inclusive, started_before exclusive
            assert await ids(started_after=_at(10)) == ["d", "c", "b"]
            assert await ids(started_before=_at(20)) == ["b", "a"]
            assert await ids(started_after=_at(5), started_before=_at(30)) == ["c", "b"]

    # ------------------------------------------------------------------ nodes and edges
    @pytest.mark.anyio
    async def test_latest_node_record_per_label(self, backend: ProvenanceBackend) -> None:
        self._needs_storage()
        running_a = NodeRecord(
            run_id="r1",
            label="a",
            status=NodeStatus.RUNNING,
            updated_at=_at(1),
            inputs={"x": 1, "names": ["p", "q"]},
            started_at=_at(1),
            executor="thread",
            host="h",
            pid=12,
            worker="w-1",
        )
        done_a = _with(
            running_a,
            status=NodeStatus.COMPLETED,
            updated_at=_at(2),
            output={"total": 3, "parts": [1, 2]},
            restorable=True,
            finished_at=_at(2),
            duration_ms=1000.5,
        )
        running_b = NodeRecord(
            run_id="r1", label="b", status=NodeStatus.RUNNING, updated_at=_at(2), inputs={"y": 3}
        )
        failed_b = _with(
            running_b,
            status=NodeStatus.FAILED,
            updated_at=_at(3),
            finished_at=_at(3),
            error_type="KeyError",
            error_message="'z'",
            traceback="Traceback ...\nKeyError: 'z'",
        )
        edge = EdgeRecord(
            run_id="r1", upstream="a", downstream="b", parameter="y", traversed_at=_at(2)
        )
        async with _opened(backend):
            backend.write_run(_run("r1"))
            backend.write_nodes([running_a])
            await backend.commit()
            backend.write_nodes([done_a])
            backend.write_edges([edge])
            backend.write_nodes([running_b])
            await backend.commit()
            backend.write_nodes([failed_b])
            await backend.commit()
            nodes = await backend.get_node_executions("r1")
        assert [(n.label, n.status) for n in nodes] == [
            ("a", NodeStatus.COMPLETED),
            ("b", NodeStatus.FAILED),
        ]
        assert all(isinstance(n.status, NodeStatus) for n in nodes)
        if backend.stores_values:
            assert nodes == [done_a, failed_b]
        else:
            assert nodes[1].error_type == "KeyError"

    @pytest.mark.anyio
    async def test_a_later_attempt_is_the_latest(self, backend: ProvenanceBackend) -> None:
        self._needs_storage()
        first = NodeRecord(run_id="r1", label="a", status=NodeStatus.FAILED, updated_at=_at(1))
        second = NodeRecord(
            run_id="r1", label="a", status=NodeStatus.RUNNING, updated_at=_at(2), attempt=2
        )
        async with _opened(backend):
            backend.write_run(_run("r1"))
            backend.write_nodes([first])
            await backend.commit()
            backend.write_nodes([second])
            await backend.commit()
            backend.write_nodes([_with(second, status=NodeStatus.COMPLETED, updated_at=_at(3))])
            await backend.commit()
            (latest,) = await backend.get_node_executions("r1")
        assert (latest.label, latest.attempt, latest.status) == ("a", 2, NodeStatus.COMPLETED)

    @pytest.mark.anyio
    async def test_every_node_status_round_trips(self, backend: ProvenanceBackend) -> None:
        self._needs_storage()
        async with _opened(backend):
            backend.write_run(_run("r1"))
            backend.write_nodes(
                [
                    NodeRecord(run_id="r1", label=status.value, status=status, updated_at=_at(i))
                    for i, status in enumerate(NodeStatus)
                ]
            )
            await backend.commit()
            nodes = await backend.get_node_executions("r1")
        assert {n.label: n.status for n in nodes} == {s.value: s for s in NodeStatus}
        assert all(type(n.status) is NodeStatus for n in nodes)

    # ------------------------------------------------------------------ run data
    @pytest.mark.anyio
    async def test_run_data_round_trip(self, backend: ProvenanceBackend) -> None:
        self._needs_storage()
        values: dict[str, Any] = {
            "count": 3,
            "ratio": 0.25,
            "name": "Zürich",
            "flag": False,
            "nothing": None,
            "nested": {"ids": [1, 2, 3], "by": {"k": "v"}},
        }
        async with _opened(backend):
            backend.write_run(_run("r1"))
            backend.write_run(_run("r2", started=1))
            for key, value in values.items():
                backend.write_run_data("r1", key, value)
            backend.write_run_data("r2", "count", 99)
            await backend.commit()
            backend.write_run_data("r1", "count", 4)  # a later value replaces the earlier
            await backend.commit()
            assert await backend.load_run_data("r1") == {**values, "count": 4}
            assert await backend.load_run_data("r2") == {"count": 99}
            assert await backend.load_run_data("no-such-run") == {}

    @pytest.mark.anyio
    async def test_run_data_from_several_threads(self, backend: ProvenanceBackend) -> None:
        self._needs_storage()

        def write(thread: int) -> None:
            for i in range(25):
                backend.write_run_data("r1", f"t{thread}-{i}", [thread, i])

        async with _opened(backend):
            backend.write_run(_run("r1"))
            threads = [threading.Thread(target=write, args=(t,)) for t in range(4)]
            await anyio.to_thread.run_sync(_start_and_join, threads)
            await backend.commit()
            data = await backend.load_run_data("r1")
        assert data == {f"t{t}-{i}": [t, i] for t in range(4) for i in range(25)}

    # ------------------------------------------------------------------ log lines
    @pytest.mark.anyio
    async def test_log_lines_round_trip(self, backend: ProvenanceBackend) -> None:
        self._needs_storage()
        lines = [
            _log("r1", "a", 0, at=1, message="loading 3 rows from Zürich"),
            _log("r1", "a", 1, at=2, level=30, logger="pkg.load", message="slow"),
            _log(
                "r1",
                "b",
                0,
                at=1.5,
                level=40,
                attempt=2,
                message="failed",
                exc_text="Traceback (most recent call last):\nKeyError: 'z'",
            ),
        ]
        async with _opened(backend):
            backend.write_run(_run("r1"))
            backend.write_run(_run("r2", started=1))
            backend.write_logs(lines[:1])
            await backend.commit()
            backend.write_logs(lines[1:])
            backend.write_logs([_log("r2", "a", 0, at=1, message="other run")])
            await backend.commit()
            got = await backend.get_logs("r1")
            assert got == [lines[0], lines[2], lines[1]]  # by time, then node, then seq
            for line in got:
                assert line.at.utcoffset() == timedelta(0)
            assert await backend.get_logs("r1", label="a") == [lines[0], lines[1]]
            assert await backend.get_logs("r1", label="a", after_seq=0) == [lines[1]]
            assert await backend.get_logs("r1", label="b", after_seq=0) == []
            assert await backend.get_logs("r1", label="nope") == []
            assert await backend.get_logs("no-such-run") == []
            assert [x.message for x in await backend.get_logs("r2")] == ["other run"]

    @pytest.mark.anyio
    async def test_a_log_line_written_again_replaces_it(self, backend: ProvenanceBackend) -> None:
        self._needs_storage()
        async with _opened(backend):
            backend.write_run(_run("r1"))
            backend.write_logs([_log("r1", "a", 0, at=1, message="first")])
            await backend.commit()
            backend.write_logs([_log("r1", "a", 0, at=1, message="again")])
            await backend.commit()
            assert [x.message for x in await backend.get_logs("r1")] == ["again"]

    @pytest.mark.anyio
    async def test_log_lines_are_durable_on_aclose(self, backend: ProvenanceBackend) -> None:
        self._needs_storage()
        async with _opened(backend):
            backend.write_run(_run("r1"))
            backend.write_logs([_log("r1", "a", i, at=i, message=f"line {i}") for i in range(50)])
        async with _opened(backend):
            got = await backend.get_logs("r1", label="a", after_seq=44)
        assert [x.seq for x in got] == [45, 46, 47, 48, 49]

    # ------------------------------------------------------------------ a backend of nothing
    @pytest.mark.anyio
    async def test_stores_nothing_finds_nothing(self, backend: ProvenanceBackend) -> None:
        if not self.stores_nothing:
            pytest.skip("the backend stores what it is given")
        async with _opened(backend):
            backend.write_run(_run("r1"))
            backend.write_nodes(
                [NodeRecord(run_id="r1", label="a", status=NodeStatus.RUNNING, updated_at=_at(1))]
            )
            backend.write_run_data("r1", "k", 1)
            backend.write_logs([_log("r1", "a", 0, at=1, message="x")])
            await backend.commit()
            assert await backend.get_logs("r1") == []
            assert await backend.list_runs() == []
            assert await backend.get_node_executions("r1") == []
            assert await backend.load_run_data("r1") == {}
            with pytest.raises(RunNotFoundError, match="r1"):
                await backend.get_run("r1")

    # ------------------------------------------------------------------ run ownership
    @pytest.mark.anyio
    async def test_claim_run_takes_the_run_only_as_it_was_read(
        self, backend: ProvenanceBackend
    ) -> None:
        self._needs_storage()
        crashed = _run("r1", owner_pid=4321, owner_host="gone", owner_started="t0")
        first = RunOwner(pid=11, host="h", started="s11")
        second = RunOwner(pid=12, host="h", started="s12")
        async with _opened(backend):
            backend.write_run(crashed)
            await backend.commit()
            got = await backend.claim_run("r1", 1, first, expected_owner=crashed.owner)
            assert (got.status, got.attempt, got.owner) == (RunStatus.RUNNING, 2, first)
            assert (got.run_id, got.started_at, got.finished_at) == ("r1", _at(0), None)
            assert await backend.get_run("r1") == got
            # a second claim made from the same reading loses, and says who won
            with pytest.raises(RunBusyError, match="r1") as info:
                await backend.claim_run("r1", 1, second, expected_owner=crashed.owner)
            assert (info.value.run_id, info.value.owner_pid, info.value.attempt) == ("r1", 11, 2)
            with pytest.raises(RunBusyError):  # the attempt is right, the owner is not
                await backend.claim_run("r1", 2, second, expected_owner=crashed.owner)
            assert (await backend.get_run("r1")).owner == first
            # read again, claim again
            third = await backend.claim_run("r1", 2, second, expected_owner=first)
            assert (third.attempt, third.owner) == (3, second)

    @pytest.mark.anyio
    async def test_concurrent_claims_have_one_winner(self, backend: ProvenanceBackend) -> None:
        self._needs_storage()
        won: list[int] = []
        busy: list[int] = []

        async def claim(pid: int) -> None:
            try:
                await backend.claim_run("r1", 1, RunOwner(pid=pid, host="h"))
            except RunBusyError:
                busy.append(pid)
            else:
                won.append(pid)

        async with _opened(backend):
            backend.write_run(_run("r1", status=RunStatus.FAILED))
            await backend.commit()
            async with anyio.create_task_group() as tg:
                for pid in range(100, 108):
                    tg.start_soon(claim, pid)
            assert len(won) == 1, (won, busy)
            assert len(busy) == 7, (won, busy)
            assert (await backend.get_run("r1")).owner_pid == won[0]

    @pytest.mark.anyio
    async def test_claim_run_refuses_an_unknown_or_completed_run(
        self, backend: ProvenanceBackend
    ) -> None:
        me = RunOwner(pid=1, host="h")
        async with _opened(backend):
            with pytest.raises(RunNotFoundError, match="no-such-run-9c1"):
                await backend.claim_run("no-such-run-9c1", 1, me)
            if self.stores_nothing:
                return
            backend.write_run(_run("done", status=RunStatus.COMPLETED))
            await backend.commit()
            with pytest.raises(RestartError, match="done"):
                await backend.claim_run("done", 1, me)
            assert (await backend.get_run("done")).status is RunStatus.COMPLETED

    # ------------------------------------------------------------------ through the runner
    @pytest.mark.anyio
    async def test_runner_records_a_run(self, backend: ProvenanceBackend) -> None:
        async def load(n: int, ctx: DagContext) -> list[int]:
            ctx.set_data("loaded", n)
            return list(range(n))

        async def total(items: list[int]) -> int:
            return sum(items)

        dag = Dag("contract_runner")
        dag.node(load) >> dag.node(total)
        runner = DagRunner(dag, provenance=backend)
        result = await runner.run({"load": {"n": 4}}, correlation_id="corr-1")
        assert result.ok
        assert result.outputs == {"total": 6}
        if self.stores_nothing:
            return
        async with _opened(backend):
            run = await backend.get_run(result.run_id)
            nodes = await backend.get_node_executions(result.run_id)
            data = await backend.load_run_data(result.run_id)
            listed = await backend.list_runs(dag_nsref=dag.nsref)
        assert (run.status, run.dag_nsref, run.correlation_id) == (
            RunStatus.COMPLETED,
            dag.nsref,
            "corr-1",
        )
        assert run.finished_at is not None
        assert run.finished_at >= run.started_at
        assert [r.run_id for r in listed] == [result.run_id]
        assert [(n.label, n.status) for n in nodes] == [
            ("load", NodeStatus.COMPLETED),
            ("total", NodeStatus.COMPLETED),
        ]
        assert data == {"loaded": 4}
        if backend.stores_values:
            assert run.source_inputs == {"load": {"n": 4}}
            assert [n.output for n in nodes] == [[0, 1, 2, 3], 6]

    @pytest.mark.anyio
    async def test_runner_keeps_the_log_lines_of_nodes(self, backend: ProvenanceBackend) -> None:
        log = logging.getLogger("plait.contract.nodes")
        log.setLevel(logging.INFO)

        async def load(n: int) -> list[int]:
            log.debug("not kept: below INFO")
            log.info("loading %d", n)
            return list(range(n))

        @inline
        def total(items: list[int]) -> int:
            log.warning("summing %d items", len(items))
            if len(items) > 3:
                raise ValueError("too many")
            return sum(items)

        dag = Dag("contract_logs")
        dag.node(load) >> dag.node(total)
        runner = DagRunner(dag, provenance=backend)
        ok = await runner.run({"load": {"n": 2}})
        bad = await runner.run({"load": {"n": 5}})
        log.setLevel(logging.NOTSET)
        assert ok.ok
        assert not bad.ok
        async with _opened(backend):
            lines = await backend.get_logs(ok.run_id)
            failed = await backend.get_logs(bad.run_id, label="total")
        if not backend.stores_values:  # the runner keeps lines only where values are kept
            assert lines == []
            assert failed == []
            return
        assert [(x.label, x.level, x.logger, x.message, x.seq, x.attempt) for x in lines] == [
            ("load", logging.INFO, "plait.contract.nodes", "loading 2", 0, 1),
            ("total", logging.WARNING, "plait.contract.nodes", "summing 2 items", 0, 1),
        ]
        assert all(x.run_id == ok.run_id and x.at.utcoffset() == timedelta(0) for x in lines)
        assert [x.message for x in failed] == ["summing 5 items"]  # kept although it raised

    @pytest.mark.anyio
    async def test_runner_restarts_a_paused_run(self, backend: ProvenanceBackend) -> None:
        calls: list[str] = []
        pause = [True]

        async def fetch(x: int, ctx: DagContext) -> int:
            calls.append("fetch")
            ctx.set_data("fetched", x)
            return x + 1

        async def approve(y: int, ctx: DagContext) -> int:
            calls.append("approve")
            assert ctx.get_data("fetched") == 1
            if pause[0]:
                pause[0] = False
                raise DagPause("waiting for approval")
            return y * 10

        dag = Dag("contract_restart")
        dag.node(fetch) >> dag.node(approve)
        runner = DagRunner(dag, provenance=backend)
        first = await runner.run({"fetch": {"x": 1}})
        assert first.status is RunStatus.PAUSED
        if not backend.stores_values:
            with pytest.raises(RestartError):
                await runner.restart(first.run_id)
            return
        self._needs_storage()
        async with _opened(backend):
            assert (await backend.get_run(first.run_id)).status is RunStatus.PAUSED
            statuses = {n.label: n.status for n in await backend.get_node_executions(first.run_id)}
            assert statuses == {"fetch": NodeStatus.COMPLETED, "approve": NodeStatus.PAUSED}
        second = await runner.restart(first.run_id)
        assert (second.run_id, second.status) == (first.run_id, RunStatus.COMPLETED)
        assert second.outputs == {"approve": 20}
        assert calls == ["fetch", "approve", "approve"]  # fetch's output came from the store
        async with _opened(backend):
            run = await backend.get_run(first.run_id)
            nodes = {n.label: n for n in await backend.get_node_executions(first.run_id)}
        assert (run.status, run.attempt) == (RunStatus.COMPLETED, 2)
        assert nodes["approve"].status is NodeStatus.COMPLETED
        assert nodes["approve"].output == 20

    @pytest.mark.anyio
    async def test_runner_replays_a_run(self, backend: ProvenanceBackend) -> None:
        calls: list[str] = []

        async def source(x: int) -> int:
            calls.append("source")
            return x + 1

        async def double(y: int) -> int:
            calls.append("double")
            return y * 2

        dag = Dag("contract_replay")
        dag.node(source) >> dag.node(double)
        async with DagRunner(dag, provenance=backend) as runner:
            original = await runner.run({"source": {"x": 2}})
            assert original.outputs == {"double": 6}
            if not backend.stores_values:
                with pytest.raises(RestartError):
                    await runner.replay(original.run_id, rerun_nodes={"double"})
                return
            replayed = await runner.replay(original.run_id, rerun_nodes={"double"})
            assert replayed.ok
            assert replayed.outputs == {"double": 6}
            assert replayed.run_id != original.run_id
            assert calls == ["source", "double", "double"]
            run = await backend.get_run(replayed.run_id)
            nodes = await backend.get_node_executions(replayed.run_id)
        assert (run.replay_of, run.status) == (original.run_id, RunStatus.COMPLETED)
        assert {n.label: n.status for n in nodes} == {
            "source": NodeStatus.SKIPPED,
            "double": NodeStatus.COMPLETED,
        }

    @pytest.mark.anyio
    async def test_inspect_run_gives_the_run_with_its_sub_runs(
        self, backend: ProvenanceBackend
    ) -> None:
        """The inspection tree (the backend's own ``inspect_run``, or the default built on
        the queries above): a map's elements are its children."""

        async def numbers(n: int) -> list[int]:
            return list(range(n))

        async def square(x: int) -> int:
            return x * x

        sub = Dag("contract_square")
        sub.node(square)
        dag = Dag("contract_tree")
        dag.node(numbers) >> dag.map(sub, label="each")
        result = await DagRunner(dag, provenance=backend).run({"numbers": {"n": 2}})
        assert result.outputs == {"each": [0, 1]}
        self._needs_storage()
        async with _opened(backend):
            tree = await inspect_run(backend, result.run_id)
            with pytest.raises(RunNotFoundError, match="no-such-run"):
                await inspect_run(backend, "no-such-run")
        assert tree.run.run_id == result.run_id
        assert {n.label for n in tree.nodes} == {"numbers", "each"}
        assert all(n.output is None for n in tree.nodes)
        children = tree.children_of("each")
        assert sorted(c.name for c in children) == ["each[0]", "each[1]"]
        assert {c.via for c in children} == {"map"}
        assert all([n.label for n in c.nodes] == ["square"] for c in children)


def _log(
    run_id: str,
    label: str,
    seq: int,
    *,
    at: float,
    level: int = 20,
    logger: str = "pkg",
    message: str,
    attempt: int = 1,
    exc_text: str | None = None,
) -> LogRecord:
    return LogRecord(
        run_id=run_id,
        label=label,
        attempt=attempt,
        seq=seq,
        at=_at(at),
        level=level,
        logger=logger,
        message=message,
        exc_text=exc_text,
    )


def _with(record: Any, **changes: Any) -> Any:
    return attrs.evolve(record, **changes)


def _start_and_join(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


class CacheBackendContract:
    """Tests every :class:`~plait.protocols.CacheBackend` must pass.

    Subclasses provide a ``backend`` fixture returning a new, unopened backend on an empty
    store; the ``cache`` fixture opens it and closes it after the test. A backend whose
    entries do not outlive :meth:`~plait.protocols.CacheBackend.close` (an in-memory one)
    sets ``persistent = False`` to skip the persistence test.
    """

    #: Entries and counters survive ``close()`` and a later ``open()`` of the same backend.
    persistent: ClassVar[bool] = True

    @pytest.fixture
    def cache(self, backend: CacheBackend) -> Iterator[CacheBackend]:
        backend.open()
        try:
            yield backend
        finally:
            backend.close()

    def test_implements_the_protocol(self, backend: CacheBackend) -> None:
        assert isinstance(backend, CacheBackend)

    def test_open_is_idempotent(self, cache: CacheBackend) -> None:
        cache.open()
        cache.store("k", "m:f", "1", 10.0, 20.0)
        cache.open()
        assert _value(cache, "k") == "1"

    def test_lookup_miss(self, cache: CacheBackend) -> None:
        assert cache.lookup("absent") is None
        cache.store("present", "m:f", "1", 10.0, 20.0)
        assert cache.lookup("absent") is None

    def test_store_then_lookup(self, cache: CacheBackend) -> None:
        value = '{"name":"Zürich","values":[1,2.5,null],"big":"' + "x" * 100_000 + '"}'
        cache.store("k1", "m:f", value, 1_700_000_000.25, 1_700_086_400.25)
        entry = cache.lookup("k1")
        assert entry is not None
        assert (entry.value_json, entry.stored_at) == (value, 1_700_000_000.25)

    def test_store_replaces(self, cache: CacheBackend) -> None:
        cache.store("k", "m:f", '"old"', 10.0, 20.0)
        cache.store("k", "m:f", '"new"', 15.0, 25.0)
        entry = cache.lookup("k")
        assert entry is not None
        assert (entry.value_json, entry.stored_at) == ('"new"', 15.0)
        assert cache.stats()["m:f"]["entries"] == 1

    def test_stats_count_per_callable(self, cache: CacheBackend) -> None:
        cache.store("f1", "m:f", "1", 10.0, 20.0)
        cache.store("f2", "m:f", "2", 10.0, 20.0)
        cache.store("g1", "m:g", "3", 10.0, 20.0)
        cache.record_stats("m:f", misses=2)
        cache.record_stats("m:f", hits=3)
        cache.record_stats("m:f", hits=1, refreshes=1)
        cache.record_stats("m:h", hits=5)  # counters without entries
        assert cache.stats() == {
            "m:f": {"hits": 4, "misses": 2, "refreshes": 1, "entries": 2},
            "m:g": {"hits": 0, "misses": 0, "refreshes": 0, "entries": 1},
            "m:h": {"hits": 5, "misses": 0, "refreshes": 0, "entries": 0},
        }

    def test_clear_one_callable(self, cache: CacheBackend) -> None:
        cache.store("f1", "m:f", "1", 10.0, 20.0)
        cache.store("f2", "m:f", "2", 10.0, 20.0)
        cache.store("g1", "m:g", "3", 10.0, 20.0)
        cache.record_stats("m:f", hits=2)
        cache.record_stats("m:g", misses=1)
        assert cache.clear("m:f") == 2
        assert cache.lookup("f1") is None
        assert cache.lookup("f2") is None
        assert _value(cache, "g1") == "3"
        assert cache.stats() == {"m:g": {"hits": 0, "misses": 1, "refreshes": 0, "entries": 1}}
        assert cache.clear("m:nothing") == 0

    def test_clear_everything(self, cache: CacheBackend) -> None:
        cache.store("f1", "m:f", "1", 10.0, 20.0)
        cache.store("g1", "m:g", "2", 10.0, 20.0)
        cache.record_stats("m:f", hits=1)
        assert cache.clear() == 2
        assert cache.lookup("f1") is None
        assert cache.lookup("g1") is None
        assert cache.stats() == {}
        assert cache.clear() == 0

    def test_prune_drops_expired_entries(self, cache: CacheBackend) -> None:
        cache.store("old", "m:f", "1", 10.0, 100.0)
        cache.store("edge", "m:f", "2", 10.0, 200.0)
        cache.store("fresh", "m:g", "3", 10.0, 300.0)
        assert cache.prune(99.0) == 0
        assert cache.prune(200.0) == 2  # expires_at at or before now
        assert cache.lookup("old") is None
        assert cache.lookup("edge") is None
        assert _value(cache, "fresh") == "3"
        assert cache.prune(200.0) == 0

    def test_pushbacks_in_force_until_they_end(self, cache: CacheBackend) -> None:
        assert cache.pushbacks(100.0) == {}
        cache.push_back("market", 200.0)
        cache.push_back("weather.eu:fetch", 150.0)
        assert cache.pushbacks(100.0) == {"market": 200.0, "weather.eu:fetch": 150.0}
        assert cache.pushbacks(150.0) == {"market": 200.0}  # ends at its 'until'
        assert cache.pushbacks(200.0) == {}

    def test_a_later_pushback_replaces_the_earlier(self, cache: CacheBackend) -> None:
        cache.push_back("market", 500.0)
        cache.push_back("market", 120.0)  # shortened (a duration of 0 lifts it)
        assert cache.pushbacks(100.0) == {"market": 120.0}

    def test_pushbacks_survive_clear_and_prune(self, cache: CacheBackend) -> None:
        cache.push_back("market", 500.0)
        cache.clear()
        cache.prune(400.0)  # prune may drop pushbacks that ended; this one has not
        assert cache.pushbacks(100.0) == {"market": 500.0}

    def test_close_and_reopen(self, backend: CacheBackend) -> None:
        backend.open()
        backend.store("k", "m:f", "1", 10.0, 20.0)
        backend.record_stats("m:f", misses=1, hits=2)
        backend.push_back("m", 30.0)
        backend.close()
        backend.open()
        try:
            if self.persistent:
                assert backend.pushbacks(10.0) == {"m": 30.0}
                assert _value(backend, "k") == "1"
                assert backend.stats()["m:f"] == {
                    "hits": 2,
                    "misses": 1,
                    "refreshes": 0,
                    "entries": 1,
                }
            backend.store("k2", "m:f", "2", 10.0, 20.0)
            assert _value(backend, "k2") == "2"
        finally:
            backend.close()

    def test_threads_store_and_look_up_at_once(self, cache: CacheBackend) -> None:
        errors: list[BaseException] = []
        start = threading.Barrier(6)

        def work(thread: int) -> None:
            try:
                start.wait()
                for i in range(40):
                    key = f"t{thread}-{i}"
                    cache.store(key, f"m:t{thread}", str(i), time.time(), time.time() + 60)
                    cache.record_stats(f"m:t{thread}", misses=1)
                    assert _value(cache, key) == str(i)
                    cache.record_stats(f"m:t{thread}", hits=1)
                    cache.lookup(f"t{(thread + 1) % 6}-{i}")  # another thread's, maybe absent
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
        _start_and_join(threads)
        assert errors == []
        stats = cache.stats()
        for t in range(6):
            assert stats[f"m:t{t}"] == {"hits": 40, "misses": 40, "refreshes": 0, "entries": 40}


def _value(cache: CacheBackend, key: str) -> str:
    entry = cache.lookup(key)
    assert entry is not None, f"no entry under {key!r}"
    return entry.value_json
