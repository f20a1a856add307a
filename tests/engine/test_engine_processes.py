"""Engines as real processes on a real clock: crash and resume, two engines on one store,
graceful stop on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from _engine_dags import stamp_dag

from plait.records import RunStatus
from plait.triggers import FireOutcome, SystemClock, Trigger
from plait_provenance_sqlite import SqliteProvenance
from plait_provenance_sqlite.triggers import SqliteTriggerStore

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("engine-processes")]

MAIN = Path(__file__).parent / "_engine_main.py"
EVERY_SECOND = "* * * * * *"


def crash_trigger(**policies: Any) -> dict[str, Any]:
    return Trigger.schedule(
        "tick", "_engine_dags:crash_dag", EVERY_SECOND, scheduled_param="when", **policies
    ).to_dict()


class Engines:
    def __init__(self, tmp: Path) -> None:
        self.db = tmp / "pipeline.db"
        self.log = tmp / "nodes.log"
        self.log.touch()
        self.procs: list[subprocess.Popen[bytes]] = []
        self.tmp = tmp

    def start(self, triggers: list[dict[str, Any]], **env: str) -> subprocess.Popen[bytes]:
        with (self.tmp / f"engine-{len(self.procs)}.out").open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, str(MAIN), str(self.db), json.dumps(triggers)],
                env={**os.environ, "PLAIT_TEST_LOG": str(self.log), **env},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.procs.append(proc)
        return proc

    def lines(self, word: str) -> list[list[str]]:
        return [line.split() for line in self.log.read_text().splitlines() if line.startswith(word)]

    def wait_for(self, check: Callable[[], bool], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; log:\n{self.log.read_text()}\n{self.output()}")
            time.sleep(0.05)

    def output(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.tmp.glob("engine-*.out")))

    def registered(self) -> set[int]:
        """The pids of the engines that have registered in the store (they are serving,
        their signal handlers installed)."""

        async def read() -> set[int]:
            if not self.db.exists():
                return set()
            async with SqliteTriggerStore(self.db) as store:
                return {e.pid for e in await store.list_engines() if e.stopped_at is None}

        return anyio.run(read)

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 30) -> int:
        proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout)


@pytest.fixture
def engines(tmp_path: Path) -> Iterator[Engines]:
    e = Engines(tmp_path)
    yield e
    for proc in e.procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def _store_view(db: Path) -> tuple[list[Any], SqliteProvenance]:
    async with SqliteTriggerStore(db) as store:
        return await store.list_fires(), SqliteProvenance(db)


def test_killed_engine_run_is_resumed_without_rerunning_completed_nodes(
    engines: Engines,
) -> None:
    trigger = crash_trigger(max_active_runs=1, overlap="skip")
    a = engines.start([trigger], PLAIT_TEST_SLOW="2")
    engines.wait_for(lambda: len(engines.lines("slow-start")) == 1)
    run_id = engines.lines("slow-start")[0][2]
    a.send_signal(signal.SIGKILL)
    a.wait(10)

    b = engines.start([trigger], PLAIT_TEST_SLOW="0.5")
    engines.wait_for(
        lambda: [str(b.pid), run_id] in [line[1:3] for line in engines.lines("slow-end")]
    )
    assert engines.stop(b) == 0, engines.output()

    firsts = [line for line in engines.lines("first") if line[2] == run_id]
    starts = [line for line in engines.lines("slow-start") if line[2] == run_id]
    ends = [line for line in engines.lines("slow-end") if line[2] == run_id]
    assert [line[1] for line in firsts] == [str(a.pid)]  # never again after the crash
    assert [line[1] for line in starts] == [str(a.pid), str(b.pid)]
    assert [line[1] for line in ends] == [str(b.pid)]

    async def check() -> None:
        async with SqliteTriggerStore(engines.db) as store, SqliteProvenance(engines.db) as prov:
            fires = await store.list_fires(trigger="tick")
            run = await prov.get_run(run_id)
            (fire,) = [f for f in fires if f.run_id == run_id]
            assert fire.outcome is FireOutcome.COMPLETED
            assert fire.fire_id == run.correlation_id
            assert run.status is RunStatus.COMPLETED and run.attempt == 2
            assert run.owner_pid == b.pid

    anyio.run(check)


def test_two_engines_never_execute_the_same_fire_twice(engines: Engines) -> None:
    trigger = crash_trigger(max_active_runs=5)
    env = {"PLAIT_TEST_SLOW": "0"}
    first, second = engines.start([trigger], **env), engines.start([trigger], **env)
    # both serving before either is stopped (a slow start must not meet the SIGTERM)
    engines.wait_for(lambda: {first.pid, second.pid} <= engines.registered())
    engines.wait_for(lambda: len(engines.lines("slow-end")) >= 6)
    assert engines.stop(first) == 0
    assert engines.stop(second) == 0
    whens = [line[3] for line in engines.lines("first")]
    assert len(whens) >= 6
    assert len(whens) == len(set(whens)), "a scheduled instant ran twice"

    async def check() -> None:
        async with SqliteTriggerStore(engines.db) as store:
            fires = await store.list_fires(trigger="tick")
        assert len({f.scheduled_for for f in fires}) == len(fires)
        assert {f.outcome for f in fires} <= {FireOutcome.COMPLETED, FireOutcome.INTERRUPTED}

    anyio.run(check)


def test_sigterm_stops_gracefully_and_the_run_stays_restartable(engines: Engines) -> None:
    trigger = crash_trigger(max_active_runs=1)
    proc = engines.start([trigger], PLAIT_TEST_SLOW="4", PLAIT_TEST_GRACE="0.2")
    engines.wait_for(lambda: len(engines.lines("slow-start")) == 1)
    run_id = engines.lines("slow-start")[0][2]
    started = time.monotonic()
    assert engines.stop(proc) == 0, engines.output()
    assert time.monotonic() - started < 8

    async def interrupted() -> str:
        async with SqliteTriggerStore(engines.db) as store, SqliteProvenance(engines.db) as prov:
            fires = await store.list_fires(trigger="tick")
            (fire,) = [f for f in fires if f.outcome is FireOutcome.INTERRUPTED]
            run = await prov.get_run(run_id)
            assert run.status is RunStatus.CANCELLED
            assert fire.run_id in (None, run_id)
            engines_ = await store.list_engines()
            assert engines_[0].stopped_at is not None
            return fire.fire_id

    fire_id = anyio.run(interrupted)
    # the next engine resumes the interrupted run
    again = engines.start([trigger], PLAIT_TEST_SLOW="0.2")
    engines.wait_for(
        lambda: [str(again.pid), run_id] in [line[1:3] for line in engines.lines("slow-end")]
    )
    assert engines.stop(again) == 0

    async def resumed() -> None:
        async with SqliteTriggerStore(engines.db) as store:
            fire = await store.get_fire(fire_id)
            assert fire.outcome is FireOutcome.COMPLETED and fire.run_id == run_id

    anyio.run(resumed)


@pytest.mark.anyio
async def test_real_clock_fires_each_second(tmp_path: Path) -> None:
    from plait.engine import Engine

    db = tmp_path / "real.db"
    trigger = Trigger.schedule("tick", stamp_dag, EVERY_SECOND, scheduled_param="when")
    engine = Engine(
        [trigger],
        store=SqliteTriggerStore(db),
        provenance=SqliteProvenance(db),
        clock=SystemClock(),
    )
    async with engine:
        await anyio.sleep(2.5)
        fires = await engine.store.list_fires(trigger="tick")
    assert 2 <= len(fires) <= 3
    for fire in fires:
        assert fire.scheduled_for is not None and fire.scheduled_for.microsecond == 0
        late = (fire.fired_at - fire.scheduled_for).total_seconds()
        assert 0 <= late < 0.5
        assert fire.outcome is FireOutcome.COMPLETED
