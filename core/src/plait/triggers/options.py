"""The options of the built-in trigger kinds (what differs between a schedule and a poll).

Plain records: checking them (does the cron expression parse, does the check import) is the
kind's job, when the engine builds its watcher.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

__all__ = ["ManualOptions", "PollOptions", "ScheduleOptions"]


@attrs.frozen(kw_only=True)
class ScheduleOptions:
    """Fire at the instants of a cron expression, read in ``timezone``.

    ``cron`` has five fields (minute hour day month weekday) or six with seconds first
    (``"*/10 * * * * *"``: every ten seconds). ``scheduled_param``, when set, names a source
    parameter that receives the scheduled instant (an aware ``datetime``), so each run knows
    which slot it is for (useful with ``catchup="all"``).
    """

    cron: str
    timezone: str = "UTC"
    scheduled_param: str | None = None


@attrs.frozen(kw_only=True)
class PollOptions:
    """Call ``check`` every ``interval`` seconds; a result other than ``None`` fires.

    ``check`` is a callable (sync or async, taking no argument) or its gref
    ``"package.module:callable"``. It returns the payload (a dict of run inputs) or ``None``.
    A call longer than ``timeout`` seconds counts as a failure; failures are recorded and
    back off (doubling the wait, up to ``max_backoff`` seconds); they never stop the engine.
    """

    check: str | Callable[[], Any] = attrs.field(eq=False)
    interval: float
    timeout: float | None = None
    max_backoff: float = 3600.0


@attrs.frozen(kw_only=True)
class ManualOptions:
    """A manual trigger fires only when asked (``plait fire NAME``, ``engine.fire(NAME)``)."""
