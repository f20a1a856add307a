"""Policies on a manual clock: catch-up after downtime, max_active_runs, retries, polls."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import anyio
import pytest
from _engine_dags import (
    CALLS,
    FLAKY,
    GATE,
    POLL_RESULTS,
    flaky_dag,
    gated_dag,
    next_poll_result,
    stamp_dag,
)

from plait import hookimpl
from plait.engine import Engine
from plait.plugins import PluginHost
from plait.triggers import (
    FireOutcome,
    ManualClock,
    ManualOptions,
    Trigger,
    TriggerKind,
    WatchContext,
)

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 3, 27, 12, 0, tzinfo=UTC)


def hours(*hs: int) -> list[datetime]:
    return [T0 + timedelta(hours=h) for h in hs]


async def scheduled(engine: Engine, name: str) -> list[datetime]:
    fires = await engine.store.list_fires(trigger=name)
    return sorted(f.scheduled_for for f in fires if f.scheduled_for is not None)


@pytest.mark.parametrize(
    ("catchup", "after_restart"),
    [
        ("skip", []),
        ("latest", hours(6)),
        ({"policy": "all", "limit": 3}, hours(4, 5, 6)),
        ({"policy": "all", "limit": 10}, hours(3, 4, 5, 6)),
    ],
)
async def test_catchup_after_downtime(
    make_engine: Callable[..., Engine],
    clock: ManualClock,
    catchup: object,
    after_restart: list[datetime],
) -> None:
    hourly = Trigger.schedule(
        "hourly", stamp_dag, "0 * * * *", catchup=catchup, scheduled_param="when"
    )
    first = make_engine([hourly])
    async with first:
        await clock.step_until(T0 + timedelta(hours=2, minutes=30), first.idle)
    assert await scheduled(first, "hourly") == hours(1, 2)
    # down from 14:30 to 18:20: 15:00, 16:00, 17:00 and 18:00 are missed
    await clock.advance_to(T0 + timedelta(hours=6, minutes=20))
    second = make_engine([hourly])
    async with second:
        await second.idle()
        assert await scheduled(second, "hourly") == hours(1, 2, *[]) + after_restart
        await clock.step_until(T0 + timedelta(hours=7), second.idle)
        assert await scheduled(second, "hourly") == [*hours(1, 2), *after_restart, *hours(7)]
    # each run got its own slot as input
    assert f"@{hours(7)[0].isoformat()}" in CALLS


async def test_an_instant_within_grace_is_late_not_missed(
    make_engine: Callable[..., Engine], clock: ManualClock
) -> None:
    trigger = Trigger.schedule("hourly", stamp_dag, "0 * * * *", catchup="skip")
    async with make_engine([trigger]) as engine:
        await clock.step_until(T0 + timedelta(hours=1, minutes=5), engine.idle)
    await clock.advance_to(T0 + timedelta(hours=2, seconds=20))  # restarted 20 s late
    async with make_engine([trigger]) as engine:
        await engine.idle()
        assert await scheduled(engine, "hourly") == hours(1, 2)


async def _wait_for(engine: Engine, fire_id: str, outcome: FireOutcome) -> None:
    with anyio.fail_after(10):
        while (await engine.store.get_fire(fire_id)).outcome is not outcome:  # noqa: ASYNC110
            await anyio.sleep(0.005)  # another process could change it: poll the store


async def test_max_active_runs_skip(make_engine: Callable[..., Engine]) -> None:
    for tag in ("a", "b", "c"):
        GATE[tag] = anyio.Event()
    trigger = Trigger.manual("gated", gated_dag, max_active_runs=1, overlap="skip")
    async with make_engine([trigger]) as engine:
        first = await engine.fire("gated", {"tag": "a"})
        second = await engine.fire("gated", {"tag": "b"})
        assert first.outcome is FireOutcome.RUNNING
        assert second.outcome is FireOutcome.SKIPPED
        assert second.finished_at is not None
        GATE["a"].set()
        await _wait_for(engine, first.fire_id, FireOutcome.COMPLETED)
        third = await engine.fire("gated", {"tag": "c"})
        assert third.outcome is FireOutcome.RUNNING
        GATE["c"].set()
        done = await engine.store.get_fire(third.fire_id)
        await _wait_for(engine, third.fire_id, FireOutcome.COMPLETED)
    assert done.run_id is None or done.run_id != first.run_id
    assert "b" not in CALLS


async def test_max_active_runs_queue(make_engine: Callable[..., Engine]) -> None:
    tags = ["q1", "q2", "q3", "q4"]
    for tag in tags:
        GATE[tag] = anyio.Event()
    trigger = Trigger.manual("gated", gated_dag, max_active_runs=2, overlap="queue")
    async with make_engine([trigger]) as engine:
        fires = [await engine.fire("gated", {"tag": t}) for t in tags]
        assert [f.outcome for f in fires] == [
            FireOutcome.RUNNING,
            FireOutcome.RUNNING,
            FireOutcome.QUEUED,
            FireOutcome.QUEUED,
        ]
        GATE["q2"].set()  # a slot frees: the oldest queued fire starts
        await _wait_for(engine, fires[2].fire_id, FireOutcome.RUNNING)
        assert (await engine.store.get_fire(fires[3].fire_id)).outcome is FireOutcome.QUEUED
        for tag in tags:
            GATE[tag].set()
        for fire in fires:
            await _wait_for(engine, fire.fire_id, FireOutcome.COMPLETED)
        await engine.idle()
    assert [c for c in CALLS if c in tags][:1] == ["q2"]
    assert sorted(c for c in CALLS if c in tags) == tags


async def test_retry_restarts_the_failed_run_in_place(
    make_engine: Callable[..., Engine], clock: ManualClock
) -> None:
    FLAKY.calls, FLAKY.failures = 0, 2
    trigger = Trigger.manual("flaky", flaky_dag, retry={"attempts": 3, "backoff": 10, "factor": 2})
    engine = make_engine([trigger])
    async with engine:
        fire = await engine.fire("flaky", {"tag": "x"})
        await engine.idle()  # failed once, waiting 10 s
        waiting = await engine.store.get_fire(fire.fire_id)
        assert waiting.outcome is FireOutcome.RUNNING and waiting.attempt == 1
        assert "flaky failure 1" in (waiting.error or "")
        await clock.step_until(clock.now() + timedelta(seconds=9), engine.idle)
        assert FLAKY.calls == 1  # not before the back-off
        await clock.step_until(clock.now() + timedelta(seconds=40), engine.idle)
        done = await engine.store.get_fire(fire.fire_id)
        runs = await engine.provenance.list_runs()
    assert FLAKY.calls == 3
    assert done.outcome is FireOutcome.COMPLETED and done.attempt == 2 and done.error is None
    assert [r.run_id for r in runs] == [waiting.run_id]  # one run, restarted in place
    assert runs[0].attempt == 3 and runs[0].correlation_id == fire.fire_id


async def test_retry_gives_up_after_its_attempts(
    make_engine: Callable[..., Engine], clock: ManualClock
) -> None:
    FLAKY.calls, FLAKY.failures = 0, 10
    trigger = Trigger.manual("flaky", flaky_dag, retry=2)
    engine = make_engine([trigger])
    async with engine:
        fire = await engine.fire("flaky")
        await clock.step_until(clock.now() + timedelta(hours=2), engine.idle)
        done = await engine.store.get_fire(fire.fire_id)
    assert FLAKY.calls == 3
    assert done.outcome is FireOutcome.FAILED and done.attempt == 2
    assert "node 'flaky': RuntimeError: flaky failure 3" in (done.error or "")


async def test_poll_fires_on_payload_and_survives_errors(
    make_engine: Callable[..., Engine], clock: ManualClock
) -> None:
    POLL_RESULTS[:] = [
        None,
        {"tag": "one"},
        RuntimeError("inbox unreachable"),
        RuntimeError("still unreachable"),
        {"tag": "two"},
    ]
    trigger = Trigger.poll("inbox", stamp_dag, next_poll_result, interval=10)
    engine = make_engine([trigger])
    start = clock.now()
    async with engine:
        await clock.step_until(start + timedelta(seconds=30), engine.idle)
        state = await engine.store.get_trigger("inbox")
        assert state.errors == 1
        assert "poll check" in (state.last_error or "") and "inbox unreachable" in state.last_error
        # two failures in a row: the waits double (20 s, then 40 s) and the engine goes on
        await clock.step_until(start + timedelta(seconds=200), engine.idle)
        fires = await engine.store.list_fires(trigger="inbox")
        state = await engine.store.get_trigger("inbox")
    assert [f.payload for f in reversed(fires)] == [{"tag": "one"}, {"tag": "two"}]
    assert {f.outcome for f in fires} == {FireOutcome.COMPLETED}
    assert state.errors == 0  # a fire clears the count
    assert state.last_error is not None and "still unreachable" in state.last_error
    one, two = sorted(f.scheduled_for for f in fires if f.scheduled_for)
    assert one == start + timedelta(seconds=20)
    assert (two - one).total_seconds() >= 60  # backed off


async def test_sync_poll_check_by_gref(
    make_engine: Callable[..., Engine], clock: ManualClock
) -> None:
    trigger = Trigger.poll("sync", stamp_dag, "_engine_dags:sync_poll", interval=5, timeout=5)
    async with make_engine([trigger]) as engine:
        await clock.step_until(clock.now() + timedelta(seconds=5), engine.idle)
        (fire,) = await engine.store.list_fires(trigger="sync")
    assert fire.payload == {"tag": "from-sync-check"}
    assert fire.outcome is FireOutcome.COMPLETED


async def test_deactivated_trigger_does_not_fire(
    make_engine: Callable[..., Engine], clock: ManualClock
) -> None:
    hourly = Trigger.schedule("hourly", stamp_dag, "0 * * * *")
    engine = make_engine([hourly, Trigger.manual("m", stamp_dag, active=False)])
    async with engine:
        await engine.store.set_active("hourly", False, clock.now())
        with pytest.raises(Exception, match="trigger 'm' is inactive"):
            await engine.fire("m")
    await clock.advance(3 * 3600)
    again = make_engine([hourly])  # the stored activation wins over the definition's
    async with again:
        await clock.step_until(clock.now() + timedelta(hours=2), again.idle)
        assert await scheduled(again, "hourly") == []
        await again.store.set_active("hourly", True, clock.now())
    async with make_engine([hourly]) as third:
        await clock.step_until(clock.now() + timedelta(hours=1), third.idle)
        assert len(await scheduled(third, "hourly")) == 1  # nothing caught up from before


class _Boom:
    """A watcher of a plugin kind: raises on its first start, fires a good and a bad payload
    on its second, has nothing left to watch after that."""

    starts = 0

    def __init__(self, trigger: Trigger) -> None:
        self.trigger = trigger

    def next_fire(self, after: datetime) -> datetime | None:
        return None

    async def watch(self, ctx: WatchContext) -> None:
        type(self).starts += 1
        if type(self).starts == 1:
            raise RuntimeError("watcher bug")
        if type(self).starts == 2:
            await ctx.fire({"tag": "after-the-bug"})
            await ctx.fire({"tag": object()})  # not JSON: recorded, not fatal


async def test_a_broken_watcher_or_payload_never_stops_the_engine(
    make_engine: Callable[..., Engine], clock: ManualClock, host: PluginHost
) -> None:
    class Plugin:
        @hookimpl
        def plait_register_trigger_kinds(self) -> list[TriggerKind]:
            return [TriggerKind(name="boom", options_type=ManualOptions, watcher=_Boom)]

    host.register(Plugin(), name="boom")
    _Boom.starts = 0
    boom = Trigger(name="boom", dag=stamp_dag, kind="boom", options=ManualOptions())
    hourly = Trigger.schedule("hourly", stamp_dag, "0 * * * *")
    async with make_engine([boom, hourly], host=host) as engine:
        await clock.step_until(clock.now() + timedelta(hours=2), engine.idle)
        state = await engine.store.get_trigger("boom")
        fires = await engine.store.list_fires(trigger="boom")
        assert len(await scheduled(engine, "hourly")) == 2  # the other trigger kept firing
    assert _Boom.starts == 3  # restarted after its bug, and after the bad payload
    assert [f.payload for f in fires] == [{"tag": "after-the-bug"}]
    assert state.last_error is not None and "payload of trigger 'boom'" in state.last_error


async def test_an_engine_serves_again_after_a_stop(
    make_engine: Callable[..., Engine], clock: ManualClock
) -> None:
    engine = make_engine([Trigger.manual("m", stamp_dag)])
    for round_ in ("first", "second"):
        async with engine:
            fire = await engine.fire("m", {"tag": round_}, wait=True)
            assert fire.outcome is FireOutcome.COMPLETED
    with pytest.raises(Exception, match="the engine is not serving"):
        await engine.fire("m")
