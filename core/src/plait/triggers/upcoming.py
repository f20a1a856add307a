"""What a trigger does next, read from its stored state: its next fire times and its spec in
a few words. ``plait triggers`` and the web view show both."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from plait.errors import PlaitError
from plait.triggers.model import Trigger
from plait.triggers.store import TriggerState

if TYPE_CHECKING:
    from plait.plugins import PluginHost

__all__ = ["spec_text", "upcoming_fires"]


def upcoming_fires(
    state: TriggerState, now: datetime, count: int, host: PluginHost | None = None
) -> tuple[tuple[datetime, ...], str | None]:
    """Up to ``count`` next fire times of a trigger after ``now``, and the problem that
    stopped computing them, if any.

    A schedule's instants come from its definition (what the engine sleeps on: right even
    when no engine runs); other kinds, and a schedule whose definition no longer loads,
    give what the engine last recorded. A paused trigger fires never: ``()``.
    """
    if not state.active:
        return (), None
    recorded = (state.next_fire_at,) if state.next_fire_at else ()
    if state.kind != "schedule":
        return recorded, None
    from plait.triggers import check_trigger

    try:
        trigger = Trigger.from_dict(state.definition, name=state.name, host=host)
        watcher = check_trigger(trigger, host)
    except PlaitError as exc:
        return recorded, str(exc)
    found: list[datetime] = []
    after = now
    while len(found) < count:
        upcoming = watcher.next_fire(after)
        if upcoming is None:
            break
        found.append(upcoming)
        after = upcoming
    return tuple(found), None


def spec_text(state: TriggerState) -> str:
    """The kind's spec in a few words: ``cron (time zone)`` for a schedule, ``check every
    N s`` for a poll; ``""`` for kinds with nothing to say."""
    data = state.definition
    if state.kind == "schedule":
        return f"{data.get('cron', '')} ({data.get('timezone', 'UTC')})"
    if state.kind == "poll":
        return f"{data.get('check', '')} every {data.get('interval', '?')} s"
    return ""
