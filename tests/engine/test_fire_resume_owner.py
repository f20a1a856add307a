"""Resuming a fire's run never takes a run away from a live owner."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest
from _engine_dags import CALLS, GATE, gated_dag

from plait import DagRunner
from plait.engine.runs import FireRun
from plait.records import RunStatus
from plait.triggers import FireOutcome, Trigger
from plait.triggers.store import TriggerDefinition
from plait_provenance_sqlite import SqliteProvenance
from plait_provenance_sqlite.triggers import SqliteTriggerStore

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 3, 27, 12, 0, tzinfo=UTC)


async def test_resume_leaves_a_run_owned_by_a_live_process_alone(db: Path) -> None:
    CALLS.clear()
    GATE.clear()
    tag = "held-by-a-live-process"
    trigger = Trigger.manual("held", gated_dag)
    store = SqliteTriggerStore(db)
    await store.open()
    prov = SqliteProvenance(db)
    owner = DagRunner(gated_dag, provenance=SqliteProvenance(db))
    resumer = DagRunner(gated_dag, provenance=prov)
    try:
        await store.define_triggers(
            [TriggerDefinition(name="held", kind="manual", definition={})], T0
        )
        fire = await store.request_fire("fire-1", "held", {"tag": tag}, T0)
        async with anyio.create_task_group() as tg:
            results = []

            async def run_it() -> None:
                results.append(
                    await owner.run(source_inputs={"gated": {"tag": tag}}, correlation_id="fire-1")
                )

            tg.start_soon(run_it)
            while not (runs := await prov.list_runs(status=RunStatus.RUNNING)):  # noqa: ASYNC110
                await anyio.sleep(0.01)  # another connection's commit: no event to wait on
            # this process owns the run and is alive: a resume must not take it over
            fire_run = FireRun(
                trigger=trigger,
                dag=gated_dag,
                runner=resumer,
                store=store,
                now=lambda: T0,
                sleep_until=lambda when: anyio.lowlevel.checkpoint(),
            )
            with anyio.fail_after(10):  # taking the run over would wait on the gate
                end = await fire_run.execute(fire, resume=True)
            assert end.outcome is FireOutcome.ERROR
            assert end.run_id == runs[0].run_id
            assert f"run {runs[0].run_id!r} is still running in process" in (end.error or "")
            GATE.setdefault(tag, anyio.Event()).set()
        assert results[0].status is RunStatus.COMPLETED
        assert [tag] == CALLS  # the gated node ran once, by its owner
    finally:
        await store.aclose()
