"""Schedules on a manual clock: cron instants across DST changes, catch-up after downtime."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from _engine_dags import stamp_dag

from plait.engine import Engine
from plait.triggers import FireOutcome, ManualClock, Trigger

pytestmark = pytest.mark.anyio


async def fired(engine: Engine, trigger: str) -> list[datetime]:
    fires = await engine.store.list_fires(trigger=trigger)
    return sorted(f.scheduled_for for f in fires if f.scheduled_for is not None)


async def test_daily_job_across_spring_forward_in_berlin(
    make_engine: Callable[..., Engine], clock: ManualClock
) -> None:
    # 2026-03-29: clocks in Berlin jump from 02:00 CET to 03:00 CEST; 02:30 does not exist
    trigger = Trigger.schedule("nightly", stamp_dag, "30 2 * * *", timezone="Europe/Berlin")
    engine = make_engine([trigger])
    async with engine:
        await clock.step_until(datetime(2026, 3, 31, 12, tzinfo=UTC), engine.idle)
        got = await fired(engine, "nightly")
        fires = await engine.store.list_fires(trigger="nightly")
    assert got == [
        datetime(2026, 3, 28, 1, 30, tzinfo=UTC),  # 02:30 CET
        datetime(2026, 3, 29, 1, 0, tzinfo=UTC),  # 03:00 CEST, like Debian cron
        datetime(2026, 3, 30, 0, 30, tzinfo=UTC),  # 02:30 CEST
        datetime(2026, 3, 31, 0, 30, tzinfo=UTC),
    ]
    assert {f.outcome for f in fires} == {FireOutcome.COMPLETED}
    assert all(f.run_id for f in fires)


async def test_hourly_job_across_fall_back_in_berlin(
    make_engine: Callable[..., Engine], clock: ManualClock
) -> None:
    # 2026-10-25: 03:00 CEST becomes 02:00 CET; the hour 02:00-03:00 happens twice
    await clock.advance_to(datetime(2026, 10, 24, 22, 30, tzinfo=UTC))
    trigger = Trigger.schedule("hourly", stamp_dag, "0 * * * *", timezone="Europe/Berlin")
    engine = make_engine([trigger])
    async with engine:
        await clock.step_until(datetime(2026, 10, 25, 3, 30, tzinfo=UTC), engine.idle)
        got = await fired(engine, "hourly")
    # one fire per real hour: 01:00 CEST, 02:00 CEST, 02:00 CET, 03:00 CET, 04:00 CET
    assert got == [datetime(2026, 10, 24, 23, tzinfo=UTC) + timedelta(hours=h) for h in range(5)]


async def test_daily_job_across_fall_back_runs_once(
    make_engine: Callable[..., Engine], clock: ManualClock
) -> None:
    await clock.advance_to(datetime(2026, 10, 24, 12, tzinfo=UTC))
    trigger = Trigger.schedule("nightly", stamp_dag, "30 2 * * *", timezone="Europe/Berlin")
    engine = make_engine([trigger])
    async with engine:
        await clock.step_until(datetime(2026, 10, 26, 12, tzinfo=UTC), engine.idle)
        got = await fired(engine, "nightly")
    assert got == [
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),  # 02:30 CEST, the first of the two
        datetime(2026, 10, 26, 1, 30, tzinfo=UTC),  # 02:30 CET
    ]


async def test_seconds_field(make_engine: Callable[..., Engine], clock: ManualClock) -> None:
    trigger = Trigger.schedule("fast", stamp_dag, "*/20 * * * * *")
    engine = make_engine([trigger])
    start = clock.now()
    async with engine:
        await clock.step_until(start + timedelta(minutes=1), engine.idle)
        got = await fired(engine, "fast")
    assert got == [start + timedelta(seconds=s) for s in (20, 40, 60)]
