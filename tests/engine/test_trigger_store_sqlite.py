"""SqliteTriggerStore on real files: schema, refusals, atomic claims between processes."""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

from plait.errors import StoreError, TriggerNotFoundError
from plait.plugins import PluginHost
from plait.triggers import (
    EngineRecord,
    FireClaim,
    FireOutcome,
    TriggerDefinition,
    TriggerStore,
)
from plait_provenance_sqlite import SqliteProvenance
from plait_provenance_sqlite.trigger_schema import TRIGGER_SCHEMA_VERSION
from plait_provenance_sqlite.triggers import SqliteTriggerStore

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 3, 27, 12, tzinfo=UTC)


def claim(trigger: str, engine: str, at: datetime | None, **kw: object) -> FireClaim:
    return FireClaim(
        fire_id=uuid.uuid4().hex,
        trigger=trigger,
        fired_at=T0,
        engine_id=engine,
        max_active_runs=int(kw.get("max_active_runs", 5)),  # type: ignore[call-overload]
        overlap=str(kw.get("overlap", "skip")),
        scheduled_for=at,
    )


def test_registered_as_a_trigger_store(host: PluginHost, tmp_path: Path) -> None:
    store = host.create("trigger-store", "sqlite", path=tmp_path / "x.db")
    assert isinstance(store, SqliteTriggerStore)
    assert isinstance(store, TriggerStore)
    assert store.path == tmp_path / "x.db"


async def test_tables_live_beside_the_runs_with_their_own_version(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    async with SqliteProvenance(db):
        pass
    async with SqliteTriggerStore(db) as store:
        await store.define_triggers(
            [TriggerDefinition(name="t", kind="manual", definition={"dag": "m:d"})], T0
        )
    with sqlite3.connect(db) as conn:
        meta = dict(conn.execute("SELECT key, value FROM plait_meta"))
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert meta["triggers_schema_version"] == str(TRIGGER_SCHEMA_VERSION)
    assert {"runs", "triggers", "trigger_fires", "trigger_engines"} <= tables
    async with SqliteProvenance(db) as prov:  # the provenance store still opens it
        assert await prov.list_runs() == []


async def test_refuses_files_that_are_not_ours(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a database at all, just some words to fill a page" * 50)
    before = text.read_bytes()
    with pytest.raises(StoreError, match="not a plait store"):
        await SqliteTriggerStore(text).open()
    assert text.read_bytes() == before
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE mine (x)")
    with pytest.raises(StoreError, match="not a plait provenance store"):
        await SqliteTriggerStore(other).open()
    with pytest.raises(StoreError, match="is a directory"):
        await SqliteTriggerStore(tmp_path).open()


async def test_refuses_a_newer_trigger_schema(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    async with SqliteTriggerStore(db):
        pass
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE plait_meta SET value = '99' WHERE key = 'triggers_schema_version'")
    with pytest.raises(StoreError, match="trigger schema version 99, newer than"):
        await SqliteTriggerStore(db).open()


async def test_unknown_names_are_named(tmp_path: Path) -> None:
    async with SqliteTriggerStore(tmp_path / "p.db") as store:
        with pytest.raises(TriggerNotFoundError, match="no trigger named 'ghost'"):
            await store.set_active("ghost", True, T0)
        with pytest.raises(TriggerNotFoundError, match="no fire 'f1'"):
            await store.get_fire("f1")
        with pytest.raises(TriggerNotFoundError, match="no trigger named 'ghost'"):
            await store.request_fire("f2", "ghost", None, T0)


async def test_definitions_keep_the_stored_activation(tmp_path: Path) -> None:
    async with SqliteTriggerStore(tmp_path / "p.db") as store:
        d = TriggerDefinition(name="t", kind="schedule", definition={"cron": "* * * * *"})
        (state,) = await store.define_triggers([d], T0)
        assert state.active and state.activated_at == T0
        await store.set_active("t", False, T0 + timedelta(hours=1))
        (state,) = await store.define_triggers(
            [TriggerDefinition(name="t", kind="schedule", definition={"cron": "0 * * * *"})],
            T0 + timedelta(hours=2),
        )
        assert not state.active and state.definition == {"cron": "0 * * * *"}
        back = await store.set_active("t", True, T0 + timedelta(hours=3))
        assert back.active and back.activated_at == T0 + timedelta(hours=3)


async def test_claim_is_unique_per_instant_and_counts_running(tmp_path: Path) -> None:
    async with SqliteTriggerStore(tmp_path / "p.db") as store:
        await store.define_triggers([TriggerDefinition(name="t", kind="x", definition={})], T0)
        first = await store.claim_fire(claim("t", "e1", T0, max_active_runs=1))
        assert first is not None and first.outcome is FireOutcome.RUNNING
        assert await store.claim_fire(claim("t", "e2", T0)) is None  # same instant
        second = await store.claim_fire(
            claim("t", "e1", T0 + timedelta(minutes=1), max_active_runs=1)
        )
        assert second is not None and second.outcome is FireOutcome.SKIPPED
        third = await store.claim_fire(
            claim("t", "e1", T0 + timedelta(minutes=2), max_active_runs=1, overlap="queue")
        )
        assert third is not None and third.outcome is FireOutcome.QUEUED
        assert await store.promote("t", "e2", 1, T0) is None  # no free slot yet
        await store.update_fire(first.fire_id, T0, outcome=FireOutcome.COMPLETED, run_id="r1")
        promoted = await store.promote("t", "e2", 1, T0)
        assert promoted is not None and promoted.fire_id == third.fire_id
        assert promoted.outcome is FireOutcome.RUNNING and promoted.engine_id == "e2"
        state = await store.get_trigger("t")
        assert state.last_scheduled == T0 + timedelta(minutes=2)


async def test_adoption_moves_each_open_fire_to_one_engine(tmp_path: Path) -> None:
    async with SqliteTriggerStore(tmp_path / "p.db") as store:
        await store.register_engine(
            EngineRecord(engine_id="dead", pid=1, host="h", started_at=T0, heartbeat_at=T0)
        )
        fires = [
            await store.claim_fire(claim("t", "dead", T0 + timedelta(seconds=i), max_active_runs=9))
            for i in range(6)
        ]
        done = fires[0]
        assert done is not None
        await store.update_fire(done.fire_id, T0, outcome=FireOutcome.COMPLETED)
        await store.update_fire(fires[1].fire_id, T0, outcome=FireOutcome.INTERRUPTED)  # type: ignore[union-attr]

        async def adopt(engine: str, out: dict[str, list[str]]) -> None:
            got = await SqliteTriggerStore(tmp_path / "p.db").adopt_fires(engine, ["dead"], T0)
            out[engine] = [f.fire_id for f in got]

        out: dict[str, list[str]] = {}
        async with anyio.create_task_group() as tg:
            for engine in ("a", "b", "c"):
                tg.start_soon(adopt, engine, out)
        adopted = [f for ids in out.values() for f in ids]
        assert sorted(adopted) == sorted(f.fire_id for f in fires[1:])  # type: ignore[union-attr]
        assert len(adopted) == len(set(adopted))
        resumed = await store.get_fire(fires[1].fire_id)  # type: ignore[union-attr]
        assert resumed.outcome is FireOutcome.RUNNING  # interrupted fires run again
        (dead,) = await store.list_engines()
        assert dead.stopped_at is not None


def _claim_many(
    db: str,
    engine: str,
    instants: list[str],
    queue: multiprocessing.Queue,  # type: ignore[type-arg]
    start: multiprocessing.synchronize.Barrier,
) -> None:
    async def main() -> list[str]:
        won = []
        async with SqliteTriggerStore(db) as store:
            start.wait()
            for text in instants:
                got = await store.claim_fire(claim("t", engine, datetime.fromisoformat(text)))
                if got is not None:
                    won.append(text)
        return won

    queue.put((engine, anyio.run(main)))


@pytest.mark.slow
def test_processes_claiming_the_same_instants_win_each_once(tmp_path: Path) -> None:
    db = str(tmp_path / "p.db")
    anyio.run(SqliteTriggerStore(db).open)
    instants = [(T0 + timedelta(seconds=i)).isoformat() for i in range(200)]
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    start = ctx.Barrier(4)
    procs = [
        ctx.Process(target=_claim_many, args=(db, f"e{n}", instants, queue, start))
        for n in range(4)
    ]
    for p in procs:
        p.start()
    results = dict(queue.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(30)
    won = [i for w in results.values() for i in w]
    assert sorted(won) == sorted(instants)  # every instant claimed, none twice
    assert len(results) == 4  # four processes tried each instant
