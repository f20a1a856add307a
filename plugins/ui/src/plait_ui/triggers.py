"""What the triggers pages show, read from a trigger store (:class:`plait.triggers.TriggerStore`),
and the fire a button requests.

Reads are bounded: a page of triggers costs one ``list_triggers`` (the protocol has no
paging), one ``list_fires(limit=1)`` per trigger on the page and one ``list_fires`` of the
newest fires; a trigger's page reads its newest :data:`FIRES_SHOWN` fires. No page loads the
whole fire history.

Next fire times of a schedule are computed by the trigger kind's own watcher
(``Watcher.next_fire``, the function the engine sleeps on), so the page and the engine agree
at every daylight-saving change. Other kinds show what the engine last recorded: building
a poll's watcher would import its check into the web server.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

import attrs

from plait.engine import engine_alive, find_fire_run
from plait.errors import TriggerError
from plait.triggers import (
    FireOutcome,
    FireRecord,
    TriggerState,
    TriggerStore,
    spec_text,
    upcoming_fires,
)
from plait_ui.queries import BadQueryError, PageNotFoundError

if TYPE_CHECKING:
    from plait.plugins import PluginHost
    from plait.protocols import ProvenanceBackend
    from plait.records import RunRecord

__all__ = [
    "FIRES_SHOWN",
    "FireView",
    "TriggerRow",
    "TriggerView",
    "TriggersPage",
    "load_fire",
    "load_trigger",
    "parse_payload",
    "request_fire",
    "schedule_text",
    "triggers_page",
]

#: Newest fires listed on a trigger's page (and across all triggers on the list page).
FIRES_SHOWN: Final = 50
RECENT_SHOWN: Final = 20
#: Next fire times listed per trigger on the list page, and on a trigger's page.
NEXT_ON_LIST: Final = 3
NEXT_ON_PAGE: Final = 10
#: An engine whose heartbeat is older than this is not running (as ``plait engine status``).


@attrs.frozen(kw_only=True)
class TriggerRow:
    """One trigger as the pages show it. ``problem`` says why no next fire time could be
    computed (its definition no longer builds, say a kind whose plugin is gone)."""

    state: TriggerState
    dag: str
    schedule: str
    next_fires: tuple[datetime, ...]
    problem: str | None = None
    last_fire: FireRecord | None = None


@attrs.frozen(kw_only=True)
class TriggersPage:
    rows: tuple[TriggerRow, ...]
    total: int
    recent: tuple[FireRecord, ...]
    next_cursor: str | None


@attrs.frozen(kw_only=True)
class TriggerView:
    row: TriggerRow
    fires: tuple[FireRecord, ...]
    more_fires: bool


@attrs.frozen(kw_only=True)
class FireView:
    fire: FireRecord
    run: RunRecord | None


def schedule_text(state: TriggerState) -> str:
    """The kind's spec in a few words (:func:`plait.triggers.spec_text`); a manual trigger
    fires ``on request``."""
    return "on request" if state.kind == "manual" else spec_text(state)


def _row(
    state: TriggerState,
    host: PluginHost | None,
    now: datetime,
    count: int,
    last: FireRecord | None,
) -> TriggerRow:
    times, problem = upcoming_fires(state, now, count, host)
    return TriggerRow(
        state=state,
        dag=str(state.definition.get("dag", "")),
        schedule=schedule_text(state),
        next_fires=times,
        problem=problem,
        last_fire=last,
    )


async def _last_fire(store: TriggerStore, name: str) -> FireRecord | None:
    fires = await store.list_fires(trigger=name, limit=1)
    return fires[0] if fires else None


async def triggers_page(
    store: TriggerStore,
    host: PluginHost | None,
    now: datetime,
    after: str | None,
    size: int,
) -> TriggersPage:
    """The triggers named after ``after`` (by name), ``size`` of them, with their next fire
    times and last fire, and the newest fires of all triggers."""
    states = sorted(await store.list_triggers(), key=lambda s: s.name)
    total = len(states)
    if after is not None:
        states = [s for s in states if s.name > after]
    shown = states[:size]
    rows = [_row(s, host, now, NEXT_ON_LIST, await _last_fire(store, s.name)) for s in shown]
    more = len(states) > size
    return TriggersPage(
        rows=tuple(rows),
        total=total,
        recent=tuple(await store.list_fires(limit=RECENT_SHOWN)) if after is None else (),
        next_cursor=shown[-1].name if more else None,
    )


async def load_trigger(
    store: TriggerStore, host: PluginHost | None, name: str, now: datetime
) -> TriggerView:
    state = await store.get_trigger(name)
    fires = await store.list_fires(trigger=name, limit=FIRES_SHOWN + 1)
    row = _row(state, host, now, NEXT_ON_PAGE, fires[0] if fires else None)
    return TriggerView(
        row=row, fires=tuple(fires[:FIRES_SHOWN]), more_fires=len(fires) > FIRES_SHOWN
    )


async def load_fire(
    store: TriggerStore, prov: ProvenanceBackend, name: str, fire_id: str
) -> FireView:
    """A fire of trigger ``name`` and the run it started, found as the engine finds it (by
    the fire's run id, else by the run whose correlation id is the fire's id)."""
    fire = await store.get_fire(fire_id)
    if fire.trigger != name:
        raise PageNotFoundError(
            f"fire {fire_id!r} is a fire of trigger {fire.trigger!r}, not of {name!r}"
        )
    run = None
    if fire.run_id is not None or fire.outcome in (FireOutcome.RUNNING, FireOutcome.INTERRUPTED):
        run = await find_fire_run(prov, fire)
    return FireView(fire=fire, run=run)


# ---------------------------------------------------------------------- firing
def parse_payload(text: str) -> dict[str, Any] | None:
    """The fire form's payload: empty, or a JSON object of run inputs (as ``--payload``)."""
    if not text.strip():
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadQueryError(f"payload is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadQueryError(
            f"payload must be a JSON object of run inputs, got {type(data).__name__}"
        )
    return data


async def request_fire(
    store: TriggerStore, name: str, payload: Mapping[str, Any] | None, now: datetime
) -> tuple[FireRecord, bool]:
    """Fire trigger ``name`` as ``plait fire`` does: refuse an inactive trigger, record a
    ``requested`` fire that a running engine claims within a second. Returns the fire and
    whether an engine is running on the store (else the fire waits for the next one)."""
    state = await store.get_trigger(name)
    if not state.active:
        raise TriggerError(
            f"trigger {name!r} is inactive (`plait triggers activate {name}` enables it)"
        )
    data = None if payload is None else dict(payload)
    record = await store.request_fire(uuid.uuid4().hex, name, data, now)
    alive = any(engine_alive(e, now) for e in await store.list_engines())
    return record, alive
