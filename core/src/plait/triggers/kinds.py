"""Trigger kinds: what makes a trigger fire. Built in: ``schedule``, ``poll``, ``manual``;
plugins add more through the ``plait_register_trigger_kinds`` hook.

A kind is a :class:`TriggerKind` record: its name, the attrs class of its options, and a
``watcher`` factory. The engine calls ``watcher(trigger)`` once (it raises
:class:`~plait.errors.TriggerError` for bad options) and runs ``await w.watch(ctx)`` in a task
of its own for as long as the trigger is active; the watcher calls ``await ctx.fire(...)``
whenever the trigger fires. Watchers wait with ``ctx.sleep_until`` (the engine's clock), never
with ``anyio.sleep``, so tests can drive them with a :class:`~plait.triggers.ManualClock`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from plait.errors import BackendError, DuplicateBackendError, TriggerError
from plait.triggers.clock import Clock
from plait.triggers.model import Trigger
from plait.triggers.options import ManualOptions
from plait.triggers.store import FireRecord, TriggerState

if TYPE_CHECKING:
    from plait.plugins import PluginHost

__all__ = [
    "TriggerKind",
    "WatchContext",
    "Watcher",
    "builtin_kinds",
    "get_trigger_kind",
    "trigger_kinds",
]


class WatchContext(Protocol):
    """What the engine gives a watcher."""

    @property
    def trigger(self) -> Trigger: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def state(self) -> TriggerState:
        """The trigger's stored state when the watcher started (catch-up cursor, ...)."""
        ...

    async def sleep_until(self, when: datetime) -> None:
        """Wait on the engine's clock (and tell the engine this watcher is idle)."""
        ...

    async def fire(
        self, payload: Mapping[str, Any] | None = None, *, scheduled_for: datetime | None = None
    ) -> FireRecord | None:
        """Fire the trigger. Returns the recorded fire, or ``None`` when another engine
        already fired this ``scheduled_for``."""
        ...

    async def claim_tick(self, instant: datetime) -> bool:
        """``True`` if this engine is the one to act on ``instant`` (e.g. call a poll check)."""
        ...

    async def record_error(self, message: str) -> None:
        """Record a failure of the trigger's source; the engine keeps running."""
        ...

    async def set_next_fire(self, when: datetime | None) -> None:
        """Tell the store when the trigger fires next (shown by ``plait triggers``)."""
        ...


class Watcher(Protocol):
    """A trigger's source of fires, built by its kind."""

    def next_fire(self, after: datetime) -> datetime | None:
        """The first instant after ``after`` the trigger may fire, if known."""
        ...

    async def watch(self, ctx: WatchContext) -> None:
        """Fire through ``ctx`` until cancelled."""
        ...


@attrs.frozen(kw_only=True)
class TriggerKind:
    """What ``plait_register_trigger_kinds`` returns: a kind's name, its options class and
    its ``watcher(trigger) -> Watcher`` factory. ``distribution`` is filled in by plait."""

    name: str
    options_type: type[Any]
    watcher: Callable[[Trigger], Watcher] = attrs.field(eq=False)
    description: str = ""
    distribution: str | None = None


class ManualWatcher:
    """Fires only through :meth:`plait.engine.Engine.fire` and ``plait fire``."""

    def __init__(self, trigger: Trigger) -> None:
        self.trigger = trigger

    def next_fire(self, after: datetime) -> datetime | None:
        return None

    async def watch(self, ctx: WatchContext) -> None:
        """Nothing to watch: return at once (the trigger stays active for manual fires)."""
        await ctx.set_next_fire(None)


def builtin_kinds() -> list[TriggerKind]:
    """The kinds that ship with plait (registered by the core's own plugin)."""
    from plait.triggers.options import PollOptions, ScheduleOptions
    from plait.triggers.poll import PollWatcher
    from plait.triggers.schedule import ScheduleWatcher

    return [
        TriggerKind(
            name="schedule",
            options_type=ScheduleOptions,
            watcher=ScheduleWatcher,
            description="cron expression (seconds optional) in a time zone",
        ),
        TriggerKind(
            name="poll",
            options_type=PollOptions,
            watcher=PollWatcher,
            description="a callable checked at an interval; a payload fires",
        ),
        TriggerKind(
            name="manual",
            options_type=ManualOptions,
            watcher=ManualWatcher,
            description="fires when asked (plait fire NAME)",
        ),
    ]


def trigger_kinds(host: PluginHost | None = None) -> dict[str, TriggerKind]:
    """Every trigger kind the plugins register, by name. A name registered twice raises
    :class:`~plait.errors.DuplicateBackendError` naming both distributions."""
    from plait.plugins import default_host

    host = host or default_host()
    hook = host.manager.hook.plait_register_trigger_kinds
    dists = {info.name: info.distribution for info in host.plugins()}
    found: dict[str, TriggerKind] = {}
    for impl in reversed(hook.get_hookimpls()):  # registration order
        dist = dists.get(impl.plugin_name) or impl.plugin_name
        returned: Any = impl.function()
        for kind in returned or ():
            if not isinstance(kind, TriggerKind):
                raise BackendError(
                    f"plugin {impl.plugin_name!r} returned {kind!r} from "
                    "plait_register_trigger_kinds; expected TriggerKind records"
                )
            if kind.name in found:
                raise DuplicateBackendError(
                    f"trigger kind {kind.name!r} is registered twice: by "
                    f"{found[kind.name].distribution} and by {dist}; uninstall one or "
                    "disable it with PLAIT_DISABLE_PLUGINS"
                )
            found[kind.name] = attrs.evolve(kind, distribution=dist)
    return found


def get_trigger_kind(
    name: str, host: PluginHost | None = None, *, trigger: str = ""
) -> TriggerKind:
    """The kind ``name``, or :class:`~plait.errors.TriggerError` listing the installed ones."""
    kinds = trigger_kinds(host)
    kind = kinds.get(name)
    if kind is None:
        who = f"trigger {trigger!r}: " if trigger else ""
        raise TriggerError(
            f"{who}unknown trigger kind {name!r} (installed: {', '.join(sorted(kinds))})"
        )
    return kind
