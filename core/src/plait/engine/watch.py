"""``TriggerWatch``: the :class:`~plait.triggers.kinds.WatchContext` an engine gives each
trigger's watcher."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import anyio

from plait.triggers.clock import Clock
from plait.triggers.model import Trigger
from plait.triggers.store import FireRecord, TriggerState

if TYPE_CHECKING:
    from plait.engine.engine import Engine

__all__ = ["TriggerWatch"]


class TriggerWatch:
    """One trigger's view of its engine: its clock, its stored state, and how to fire."""

    def __init__(self, engine: Engine, trigger: Trigger, state: TriggerState) -> None:
        self._engine = engine
        self._trigger = trigger
        self._state = state

    @property
    def trigger(self) -> Trigger:
        return self._trigger

    @property
    def clock(self) -> Clock:
        return self._engine.clock

    @property
    def state(self) -> TriggerState:
        return self._state

    async def sleep_until(self, when: datetime) -> None:
        await self._engine.sleep_until(when)

    async def fire(
        self, payload: Mapping[str, Any] | None = None, *, scheduled_for: datetime | None = None
    ) -> FireRecord | None:
        return await self._engine.claim(self._trigger, payload, scheduled_for)

    async def claim_tick(self, instant: datetime) -> bool:
        with anyio.CancelScope(shield=True):
            claimed = await self._engine.store.claim_tick(self._trigger.name, instant)
        return claimed  # noqa: RET504 - a return inside the scope reads as "may fall through"

    async def record_error(self, message: str) -> None:
        await self._engine.store.record_error(self._trigger.name, message, self.clock.now())

    async def set_next_fire(self, when: datetime | None) -> None:
        await self._engine.store.set_next_fire(self._trigger.name, when)
