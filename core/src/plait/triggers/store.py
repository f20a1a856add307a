"""Durable trigger state: the records and the :class:`TriggerStore` protocol.

The core defines what is stored; a plugin stores it (``plait-provenance-sqlite`` keeps it in
the provenance file, in tables of its own). A store must make :meth:`TriggerStore.claim_fire`
atomic across processes: of two engines claiming the same (trigger, scheduled instant), one
gets the fire and the other ``None``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import attrs

__all__ = [
    "EngineRecord",
    "FireClaim",
    "FireOutcome",
    "FireRecord",
    "TriggerDefinition",
    "TriggerState",
    "TriggerStore",
]


class FireOutcome(enum.StrEnum):
    """Where a fire stands. ``requested``, ``queued``, ``running`` and ``interrupted`` are
    open (an engine will act on them); the rest are final."""

    REQUESTED = "requested"  #: asked for from outside an engine (``plait fire``)
    QUEUED = "queued"  #: waiting for a free slot (``overlap="queue"``)
    RUNNING = "running"  #: its run is in flight (or being retried)
    INTERRUPTED = "interrupted"  #: its engine stopped mid-run; the next engine resumes it
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PAUSED = "paused"
    SKIPPED = "skipped"  #: ``max_active_runs`` reached with ``overlap="skip"``
    ERROR = "error"  #: no run: the payload did not fit, the DAG did not load, a poll raised

    @property
    def is_open(self) -> bool:
        return self in _OPEN


_OPEN = frozenset(
    {FireOutcome.REQUESTED, FireOutcome.QUEUED, FireOutcome.RUNNING, FireOutcome.INTERRUPTED}
)


@attrs.frozen(kw_only=True)
class FireRecord:
    """One fire of a trigger and what came of it.

    ``fire_id`` is also the correlation id of the run it started (``run_id``).
    ``scheduled_for`` is the instant a schedule or poll fired for (unique per trigger);
    ``None`` for manual fires. ``payload`` is JSON-safe. ``attempt`` counts restarts by the
    retry policy. ``engine_id`` is the engine that owns the fire while it is open.
    """

    fire_id: str
    trigger: str
    fired_at: datetime
    outcome: FireOutcome
    updated_at: datetime
    scheduled_for: datetime | None = None
    payload: dict[str, Any] | None = None
    run_id: str | None = None
    attempt: int = 0
    engine_id: str | None = None
    finished_at: datetime | None = None
    error: str | None = None


@attrs.frozen(kw_only=True)
class TriggerDefinition:
    """A trigger as an engine declares it to the store (``definition`` is its ``to_dict``)."""

    name: str
    kind: str
    definition: dict[str, Any]
    active: bool = True


@attrs.frozen(kw_only=True)
class TriggerState:
    """The durable state of one trigger.

    ``last_scheduled`` is the latest scheduled instant that fired (the catch-up cursor),
    ``next_fire_at`` the next one an engine is waiting for. ``errors`` counts consecutive
    failures of a poll check, ``last_error`` is the latest.
    """

    name: str
    kind: str
    active: bool
    created_at: datetime
    updated_at: datetime
    definition: dict[str, Any] = attrs.field(factory=dict)
    activated_at: datetime | None = None
    last_scheduled: datetime | None = None
    last_fire_at: datetime | None = None
    next_fire_at: datetime | None = None
    last_tick: datetime | None = None
    errors: int = 0
    last_error: str | None = None
    last_error_at: datetime | None = None


@attrs.frozen(kw_only=True)
class EngineRecord:
    """An engine process: who it is and when it last said it was alive."""

    engine_id: str
    pid: int
    host: str
    started_at: datetime
    heartbeat_at: datetime
    stopped_at: datetime | None = None


@attrs.frozen(kw_only=True)
class FireClaim:
    """What an engine asks :meth:`TriggerStore.claim_fire` to record, atomically.

    The store inserts the fire unless (``trigger``, ``scheduled_for``) is already recorded
    (then it returns ``None``); its outcome is ``running`` when the trigger has fewer than
    ``max_active_runs`` running fires, else ``skipped`` or ``queued`` by ``overlap``.
    """

    fire_id: str
    trigger: str
    fired_at: datetime
    engine_id: str
    max_active_runs: int
    overlap: str
    scheduled_for: datetime | None = None
    payload: dict[str, Any] | None = None


@runtime_checkable
class TriggerStore(Protocol):
    """Where triggers, fires and engines are kept. Async resource: ``open`` / ``aclose``.

    Every method is a short transaction of its own; several processes may share a store.
    Unknown trigger names raise :class:`plait.errors.TriggerNotFoundError` naming them.
    """

    async def open(self) -> None: ...

    async def aclose(self) -> None: ...

    # triggers
    async def define_triggers(
        self, triggers: Sequence[TriggerDefinition], now: datetime
    ) -> list[TriggerState]:
        """Insert new triggers (with their ``active``) and refresh the definition and kind of
        known ones, keeping their stored activation. Returns the state of each."""
        ...

    async def list_triggers(self) -> list[TriggerState]: ...

    async def get_trigger(self, name: str) -> TriggerState: ...

    async def activations(self) -> dict[str, bool]:
        """Every trigger's activation by name: what a running engine polls, so it must be
        cheap."""
        ...

    async def set_active(self, name: str, active: bool, now: datetime) -> TriggerState: ...

    async def set_next_fire(self, name: str, when: datetime | None) -> None: ...

    async def record_error(self, name: str, message: str, now: datetime) -> None:
        """Count a failure of the trigger's source (a poll that raised); a fire clears it."""
        ...

    async def claim_tick(self, name: str, instant: datetime) -> bool:
        """Atomically move the trigger's last tick to ``instant`` if it is later: ``True``
        for the one caller that moved it (that caller polls for this tick)."""
        ...

    # fires
    async def claim_fire(self, claim: FireClaim) -> FireRecord | None: ...

    async def request_fire(
        self, fire_id: str, trigger: str, payload: dict[str, Any] | None, now: datetime
    ) -> FireRecord:
        """Record a ``requested`` fire for a running engine to claim."""
        ...

    async def claim_requests(
        self, engine_id: str, limits: Mapping[str, tuple[int, str]], now: datetime
    ) -> list[FireRecord]:
        """Claim the requested fires of the triggers in ``limits`` (name ->
        (max_active_runs, overlap)), deciding each outcome as :meth:`claim_fire` does."""
        ...

    async def promote(
        self, trigger: str, engine_id: str, max_active_runs: int, now: datetime
    ) -> FireRecord | None:
        """Start the oldest queued fire of ``trigger`` if a slot is free: it becomes
        ``running``, owned by ``engine_id``."""
        ...

    async def update_fire(
        self,
        fire_id: str,
        now: datetime,
        *,
        outcome: FireOutcome | None = None,
        run_id: str | None = None,
        attempt: int | None = None,
        error: str | None = None,
    ) -> FireRecord:
        """Change a fire; a final ``outcome`` sets ``finished_at``."""
        ...

    async def get_fire(self, fire_id: str) -> FireRecord: ...

    async def list_fires(
        self,
        *,
        trigger: str | None = None,
        outcome: FireOutcome | str | None = None,
        limit: int | None = None,
    ) -> list[FireRecord]:
        """Fires, newest first."""
        ...

    # engines
    async def register_engine(self, engine: EngineRecord) -> None: ...

    async def heartbeat(self, engine_id: str, now: datetime) -> None: ...

    async def stop_engine(self, engine_id: str, now: datetime) -> None: ...

    async def list_engines(self) -> list[EngineRecord]: ...

    async def adopt_fires(
        self, engine_id: str, dead_engines: Sequence[str], now: datetime
    ) -> list[FireRecord]:
        """Atomically move the open fires of ``dead_engines`` to ``engine_id`` and return
        them: of two engines adopting at once, each fire goes to exactly one."""
        ...
