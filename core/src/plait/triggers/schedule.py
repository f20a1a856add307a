"""The ``schedule`` kind: fire at the instants of a cron expression in a time zone.

Parsing and stepping through instants is cronsim's (a maintained library that follows Debian
cron, including its behaviour at daylight-saving changes: a job at 02:30 on the night clocks
jump from 02:00 to 03:00 runs at 03:00; on the night they fall back it runs once). Instants
are handled as aware UTC datetimes everywhere else.
"""

from __future__ import annotations

import contextlib
import itertools
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from plait.errors import TriggerError
from plait.triggers.kinds import WatchContext
from plait.triggers.model import Catchup, CatchupPolicy, Trigger
from plait.triggers.options import ScheduleOptions

__all__ = ["ScheduleWatcher", "due_instants"]

_SECOND = timedelta(seconds=1)
#: More than any daylight-saving shift: how far before its lower bound a catch-up walks.
_FOLD_MARGIN = timedelta(hours=2, seconds=1)


class ScheduleWatcher:
    """Fires ``trigger`` at each instant of its cron expression.

    On start the catch-up cursor is the later of the trigger's last scheduled fire and its
    activation: instants after it that are already past follow the ``catchup`` policy.
    """

    def __init__(self, trigger: Trigger) -> None:
        options = trigger.options
        if not isinstance(options, ScheduleOptions):
            raise TriggerError(
                f"trigger {trigger.name!r}: schedule options expected, got {options!r}"
            )
        self.trigger = trigger
        self.cron = options.cron
        self.scheduled_param = options.scheduled_param
        try:
            self.tz = ZoneInfo(options.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise TriggerError(
                f"trigger {trigger.name!r}: unknown time zone {options.timezone!r} "
                "(use an IANA name such as 'Europe/Berlin' or 'UTC')"
            ) from exc
        try:
            first = CronSim(self.cron, datetime.now(self.tz))
        except CronSimError as exc:
            raise TriggerError(
                f"trigger {trigger.name!r}: malformed cron expression {self.cron!r}: {exc} "
                "(five fields 'minute hour day month weekday', or six with seconds first)"
            ) from exc
        try:
            next(first)
        except StopIteration:
            raise TriggerError(
                f"trigger {trigger.name!r}: cron expression {self.cron!r} never matches"
            ) from None

    # ------------------------------------------------------------------ instants
    def next_fire(self, after: datetime) -> datetime | None:
        """The first instant strictly after ``after``."""
        with contextlib.suppress(StopIteration):
            found: datetime = next(CronSim(self.cron, after.astimezone(self.tz)))
            return found.astimezone(UTC)
        return None

    def after(self, start: datetime) -> Iterator[datetime]:
        """Instants strictly after ``start``, oldest first."""
        for found in CronSim(self.cron, start.astimezone(self.tz)):
            yield found.astimezone(UTC)

    def latest(self, upto: datetime) -> Iterator[datetime]:
        """Instants at or before ``upto``, newest first (approximately: stepping backwards
        through an hour that repeats when clocks fall back can skip its second copy)."""
        start = upto.astimezone(self.tz).replace(microsecond=0) + _SECOND
        for found in CronSim(self.cron, start, reverse=True):
            yield found.astimezone(UTC)

    def payload(self, instant: datetime) -> dict[str, Any] | None:
        if self.scheduled_param is None:
            return None
        return {self.scheduled_param: instant}

    # ------------------------------------------------------------------ the loop
    async def watch(self, ctx: WatchContext) -> None:
        state = ctx.state
        marks = [t for t in (state.last_scheduled, state.activated_at) if t is not None]
        cursor = max(marks) if marks else ctx.clock.now()
        while True:
            now = ctx.clock.now()
            for instant in due_instants(self, cursor, now, ctx.trigger.catchup):
                await ctx.fire(self.payload(instant), scheduled_for=instant)
            cursor = max(cursor, now)
            upcoming = self.next_fire(cursor)
            await ctx.set_next_fire(upcoming)
            if upcoming is None:
                return
            await ctx.sleep_until(upcoming)


def due_instants(
    watcher: ScheduleWatcher, cursor: datetime, now: datetime, catchup: Catchup
) -> list[datetime]:
    """The instants in ``(cursor, now]`` to fire now, oldest first, by ``catchup``.

    An instant less than ``catchup.grace`` seconds old is on time; older ones were missed.
    Only as many instants as the policy can fire are computed (a second-by-second schedule
    missed for a month costs ``limit`` steps, not millions).
    """
    if now <= cursor:
        return []
    want = catchup.limit if catchup.policy is CatchupPolicy.ALL else 1
    # Step back ``want`` instants from now for a lower bound, then walk forward from a
    # margin before it: only forward steps are exact across a repeated hour.
    start = cursor
    back = list(itertools.islice(watcher.latest(now), want))
    if len(back) == want:
        start = max(cursor, back[-1] - _FOLD_MARGIN)
    recent: deque[datetime] = deque(maxlen=want)
    for instant in watcher.after(start):
        if instant > now:
            break
        recent.append(instant)
    found = list(recent)
    if not found:
        return []
    on_time = (now - found[-1]).total_seconds() < catchup.grace
    if catchup.policy is CatchupPolicy.SKIP and not on_time:
        return []
    return found
