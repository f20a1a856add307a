"""``TriggerStoreContract``: the tests a trigger store subclasses to prove it implements
:class:`plait.triggers.TriggerStore` (exported by :mod:`plait.testing`)::

    import pytest
    from plait.testing import TriggerStoreContract

    class TestMyTriggerStore(TriggerStoreContract):
        @pytest.fixture
        def store(self, tmp_path):
            return MyTriggerStore(tmp_path / "triggers")

``store`` returns a new, unopened store on a fresh location. The contract checks what the
protocol promises and the engine relies on (claims unique per instant, outcomes decided
against ``max_active_runs``, adoption of a dead engine's open fires); that several
processes may share the store is for your own suite to show. This module imports pytest:
use it from a test suite with anyio's pytest plugin.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import anyio
import pytest

from plait.errors import TriggerNotFoundError
from plait.triggers.store import (
    EngineRecord,
    FireClaim,
    FireOutcome,
    TriggerDefinition,
    TriggerStore,
)

__all__ = ["TriggerStoreContract"]

_T0 = datetime(2026, 3, 27, 12, 0, tzinfo=UTC)


def _claim(
    trigger: str,
    at: datetime | None,
    *,
    engine: str = "e1",
    max_active_runs: int = 5,
    overlap: str = "skip",
) -> FireClaim:
    return FireClaim(
        fire_id=uuid.uuid4().hex,
        trigger=trigger,
        fired_at=_T0,
        engine_id=engine,
        max_active_runs=max_active_runs,
        overlap=overlap,
        scheduled_for=at,
        payload={"at": at.isoformat() if at else None},
    )


def _define(*names: str, active: bool = True) -> list[TriggerDefinition]:
    return [
        TriggerDefinition(name=n, kind="manual", definition={"dag": "m:d"}, active=active)
        for n in names
    ]


class TriggerStoreContract:
    """Subclass with a ``store`` fixture (a new, unopened store on a fresh location)."""

    pytestmark = pytest.mark.anyio

    def test_implements_the_protocol(self, store: TriggerStore) -> None:
        assert isinstance(store, TriggerStore)

    async def test_definitions_and_activation(self, store: TriggerStore) -> None:
        await store.open()
        try:
            states = await store.define_triggers([*_define("a"), *_define("b", active=False)], _T0)
            assert {s.name: s.active for s in states} == {"a": True, "b": False}
            assert await store.activations() == {"a": True, "b": False}
            later = _T0 + timedelta(hours=1)
            assert (await store.set_active("b", True, later)).activated_at == later
            (again,) = await store.define_triggers(_define("b", active=False), later)
            assert again.active  # the stored activation wins over a new definition
            with pytest.raises(TriggerNotFoundError, match="'nope'"):
                await store.get_trigger("nope")
        finally:
            await store.aclose()

    async def test_a_scheduled_instant_is_claimed_once(self, store: TriggerStore) -> None:
        await store.open()
        try:
            await store.define_triggers(_define("t"), _T0)
            won = await store.claim_fire(_claim("t", _T0))
            assert won is not None
            assert won.outcome is FireOutcome.RUNNING
            assert won.payload == {"at": _T0.isoformat()}
            assert await store.claim_fire(_claim("t", _T0, engine="e2")) is None
            manual = [await store.claim_fire(_claim("t", None)) for _ in range(2)]
            assert all(f is not None for f in manual)  # manual fires have no instant
            assert (await store.get_trigger("t")).last_scheduled == _T0
        finally:
            await store.aclose()

    async def test_concurrent_claims_of_one_instant(self, store: TriggerStore) -> None:
        await store.open()
        try:
            await store.define_triggers(_define("t"), _T0)
            results = []

            async def claim(engine: str) -> None:
                results.append(await store.claim_fire(_claim("t", _T0, engine=engine)))

            async with anyio.create_task_group() as tg:
                for n in range(5):
                    tg.start_soon(claim, f"e{n}")
            assert sum(r is not None for r in results) == 1
        finally:
            await store.aclose()

    async def test_max_active_runs_skip_queue_and_promote(self, store: TriggerStore) -> None:
        await store.open()
        try:
            await store.define_triggers(_define("t"), _T0)
            first = await store.claim_fire(_claim("t", None, max_active_runs=1))
            skipped = await store.claim_fire(_claim("t", None, max_active_runs=1))
            queued = await store.claim_fire(_claim("t", None, max_active_runs=1, overlap="queue"))
            assert first is not None
            assert skipped is not None
            assert queued is not None
            assert skipped.outcome is FireOutcome.SKIPPED
            assert skipped.finished_at is not None
            assert queued.outcome is FireOutcome.QUEUED
            assert await store.promote("t", "e2", 1, _T0) is None
            done = await store.update_fire(
                first.fire_id, _T0, outcome=FireOutcome.COMPLETED, run_id="r1"
            )
            assert done.finished_at is not None
            assert done.run_id == "r1"
            promoted = await store.promote("t", "e2", 1, _T0)
            assert promoted is not None
            assert promoted.fire_id == queued.fire_id
            assert promoted.outcome is FireOutcome.RUNNING
            assert promoted.engine_id == "e2"
        finally:
            await store.aclose()

    async def test_requested_fires_are_claimed(self, store: TriggerStore) -> None:
        await store.open()
        try:
            await store.define_triggers(_define("t", "other"), _T0)
            asked = await store.request_fire("f1", "t", {"x": 1}, _T0)
            assert asked.outcome is FireOutcome.REQUESTED
            assert asked.engine_id is None
            assert await store.claim_requests("e1", {"other": (1, "skip")}, _T0) == []
            (claimed,) = await store.claim_requests("e1", {"t": (1, "skip")}, _T0)
            assert claimed.fire_id == "f1"
            assert claimed.outcome is FireOutcome.RUNNING
            assert claimed.payload == {"x": 1}
            assert await store.claim_requests("e2", {"t": (1, "skip")}, _T0) == []
        finally:
            await store.aclose()

    async def test_ticks_errors_and_next_fire(self, store: TriggerStore) -> None:
        await store.open()
        try:
            await store.define_triggers(_define("t"), _T0)
            assert await store.claim_tick("t", _T0)
            assert not await store.claim_tick("t", _T0)
            assert await store.claim_tick("t", _T0 + timedelta(seconds=1))
            await store.record_error("t", "check raised", _T0)
            await store.set_next_fire("t", _T0 + timedelta(minutes=5))
            state = await store.get_trigger("t")
            assert state.errors == 1
            assert state.last_error == "check raised"
            assert state.next_fire_at == _T0 + timedelta(minutes=5)
        finally:
            await store.aclose()

    async def test_engines_and_adoption(self, store: TriggerStore) -> None:
        await store.open()
        try:
            await store.define_triggers(_define("t"), _T0)
            dead = EngineRecord(engine_id="dead", pid=1, host="h", started_at=_T0, heartbeat_at=_T0)
            await store.register_engine(dead)
            await store.heartbeat("dead", _T0 + timedelta(seconds=5))
            running = await store.claim_fire(_claim("t", _T0, engine="dead"))
            done = await store.claim_fire(_claim("t", _T0 + timedelta(seconds=1), engine="dead"))
            assert running is not None
            assert done is not None
            await store.update_fire(done.fire_id, _T0, outcome=FireOutcome.COMPLETED)
            adopted = await store.adopt_fires("alive", ["dead"], _T0)
            assert [f.fire_id for f in adopted] == [running.fire_id]
            assert adopted[0].engine_id == "alive"
            assert await store.adopt_fires("third", ["dead"], _T0) == []
            (engine,) = await store.list_engines()
            assert engine.heartbeat_at == _T0 + timedelta(seconds=5)
            await store.stop_engine("dead", _T0 + timedelta(seconds=9))
            (engine,) = await store.list_engines()
            assert engine.stopped_at is not None
        finally:
            await store.aclose()

    async def test_fires_are_listed_newest_first(self, store: TriggerStore) -> None:
        await store.open()
        try:
            await store.define_triggers(_define("a", "b"), _T0)
            for n in range(3):
                await store.claim_fire(_claim("a", _T0 + timedelta(minutes=n)))
            await store.claim_fire(_claim("b", _T0))
            fires = await store.list_fires(trigger="a")
            assert [f.scheduled_for for f in fires] == [
                _T0 + timedelta(minutes=n) for n in (2, 1, 0)
            ]
            assert len(await store.list_fires(limit=2)) == 2
            assert len(await store.list_fires(outcome="running")) == 4
            with pytest.raises(TriggerNotFoundError):
                await store.get_fire("nope")
        finally:
            await store.aclose()

    async def test_state_survives_reopening(self, store: TriggerStore) -> None:
        await store.open()
        await store.define_triggers(_define("t"), _T0)
        fire = await store.claim_fire(_claim("t", _T0))
        await store.set_active("t", False, _T0)
        await store.aclose()
        await store.open()
        try:
            assert (await store.get_trigger("t")).active is False
            assert fire is not None
            assert (await store.get_fire(fire.fire_id)).scheduled_for == _T0
        finally:
            await store.aclose()
