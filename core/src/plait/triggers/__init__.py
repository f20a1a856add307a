"""Triggers: what starts runs by itself (schedules, polls, manual fires) and their state.

The engine that runs them is :class:`plait.engine.Engine`.
"""

from __future__ import annotations

from plait.triggers.clock import Clock, ManualClock, SystemClock
from plait.triggers.config import trigger_from_dict, trigger_to_dict, triggers_from_config
from plait.triggers.kinds import (
    TriggerKind,
    WatchContext,
    Watcher,
    get_trigger_kind,
    trigger_kinds,
)
from plait.triggers.model import Catchup, CatchupPolicy, Overlap, RetryPolicy, Trigger
from plait.triggers.options import ManualOptions, PollOptions, ScheduleOptions
from plait.triggers.store import (
    EngineRecord,
    FireClaim,
    FireOutcome,
    FireRecord,
    TriggerDefinition,
    TriggerState,
    TriggerStore,
)
from plait.triggers.upcoming import spec_text, upcoming_fires

__all__ = [
    "Catchup",
    "CatchupPolicy",
    "Clock",
    "EngineRecord",
    "FireClaim",
    "FireOutcome",
    "FireRecord",
    "ManualClock",
    "ManualOptions",
    "Overlap",
    "PollOptions",
    "RetryPolicy",
    "ScheduleOptions",
    "SystemClock",
    "Trigger",
    "TriggerDefinition",
    "TriggerKind",
    "TriggerState",
    "TriggerStore",
    "WatchContext",
    "Watcher",
    "check_trigger",
    "get_trigger_kind",
    "spec_text",
    "trigger_from_dict",
    "trigger_kinds",
    "trigger_to_dict",
    "triggers_from_config",
    "upcoming_fires",
]


def check_trigger(trigger: Trigger, host: object = None) -> Watcher:
    """Build ``trigger``'s watcher: raises :class:`~plait.errors.TriggerError` naming the
    trigger for a malformed cron expression, an unknown time zone or kind, or a poll check
    that does not import."""
    from plait.plugins import PluginHost

    return get_trigger_kind(
        trigger.kind, host if isinstance(host, PluginHost) else None, trigger=trigger.name
    ).watcher(trigger)
