"""Time for the engine: a :class:`Clock` it reads and sleeps on.

The engine never calls ``datetime.now()`` or ``anyio.sleep()`` for trigger time itself: it
asks its clock. :class:`SystemClock` is the wall clock; :class:`ManualClock` is a clock a test
moves by hand, so a day of schedules runs in milliseconds.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Final, Protocol, runtime_checkable

import anyio
import anyio.lowlevel

__all__ = ["Clock", "ManualClock", "SystemClock"]

#: The longest a :class:`SystemClock` sleeps before looking at the wall clock again, so a
#: suspended machine or a clock step is noticed within this many seconds.
RECHECK_SECONDS: Final = 60.0


@runtime_checkable
class Clock(Protocol):
    """What the engine needs of time: the current instant, and waiting for one."""

    def now(self) -> datetime:
        """The current instant, timezone-aware UTC."""
        ...

    async def sleep_until(self, when: datetime) -> None:
        """Return once :meth:`now` is at or after ``when`` (at once if it already is)."""
        ...


class SystemClock:
    """The wall clock. Sleeps in slices of at most a minute, re-reading the time, so a
    machine that was suspended (or a clock that was stepped) fires what is due promptly."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, when: datetime) -> None:
        while True:
            remaining = (when - self.now()).total_seconds()
            if remaining <= 0:
                await anyio.lowlevel.checkpoint()
                return
            await anyio.sleep(min(remaining, RECHECK_SECONDS))


class ManualClock:
    """A clock that moves only when told to. For tests of schedules.

    ``await clock.advance_to(when)`` sets the time and returns once every task it woke has
    resumed; :meth:`step_until` walks through every wake-up time up to ``when`` in order,
    awaiting ``settle()`` (e.g. :meth:`plait.engine.Engine.idle`) after each.
    """

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError(f"ManualClock needs a timezone-aware start, got {start!r}")
        self._now = start.astimezone(UTC)
        self._sleepers: list[tuple[datetime, int, anyio.Event]] = []
        self._order = itertools.count()
        self._waking = 0
        self._resumed: anyio.Event | None = None

    def now(self) -> datetime:
        return self._now

    @property
    def next_wakeup(self) -> datetime | None:
        """The earliest instant a task sleeps until, or ``None`` when nobody sleeps."""
        while self._sleepers and self._sleepers[0][2].is_set():
            heapq.heappop(self._sleepers)
        return self._sleepers[0][0] if self._sleepers else None

    async def sleep_until(self, when: datetime) -> None:
        if when <= self._now:
            await anyio.lowlevel.checkpoint()
            return
        event = anyio.Event()
        heapq.heappush(self._sleepers, (when, next(self._order), event))
        try:
            await event.wait()
        finally:
            if event.is_set():
                self._one_resumed()
            else:  # cancelled while asleep
                event.set()

    def _one_resumed(self) -> None:
        self._waking -= 1
        if self._waking == 0 and self._resumed is not None:
            self._resumed.set()

    async def advance(self, seconds: float) -> None:
        """Move the time forward by ``seconds`` (see :meth:`advance_to`)."""
        await self.advance_to(self._now + timedelta(seconds=seconds))

    async def advance_to(self, when: datetime) -> None:
        """Set the time to ``when`` (never backwards) and wake every task due by then;
        return once each of them has resumed."""
        if when.tzinfo is None:
            raise ValueError(f"ManualClock needs timezone-aware times, got {when!r}")
        self._now = max(self._now, when.astimezone(UTC))
        self._resumed = anyio.Event()
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, event = heapq.heappop(self._sleepers)
            if not event.is_set():
                self._waking += 1
                event.set()
        if self._waking:
            await self._resumed.wait()
        else:
            await anyio.lowlevel.checkpoint()

    async def step_until(self, when: datetime, settle: Callable[[], Awaitable[None]]) -> None:
        """Advance to each wake-up time up to ``when`` in order, awaiting ``settle()`` after
        each (so a schedule sees every instant, as it would on the wall clock)."""
        await settle()
        while (wake := self.next_wakeup) is not None and wake <= when:
            await self.advance_to(wake)
            await settle()
        await self.advance_to(when)
        await settle()
