"""``SqliteTriggerStore``: durable trigger state in the provenance file (trigger store
``sqlite``).

Its own connection and its own tables (see :mod:`trigger_schema`) in the same SQLite file as
the runs, so one path holds a pipeline's whole history. Every method is one short
transaction on a worker thread (a capacity limiter of one, so the connection is used by one
thread at a time); writes take the write lock up front (``BEGIN IMMEDIATE``), which is what
makes a claim atomic between processes: the fire row is unique per (trigger, scheduled
instant), and the count of running fires it is decided against is read under the same lock.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, TypeVar

import anyio
import anyio.to_thread

from plait import defaults
from plait.converter import dumps, loads
from plait.errors import StoreError, TriggerNotFoundError
from plait.loops import LoopLocal
from plait.triggers.store import (
    EngineRecord,
    FireClaim,
    FireOutcome,
    FireRecord,
    TriggerDefinition,
    TriggerState,
)
from plait_provenance_sqlite import _schema
from plait_provenance_sqlite.trigger_schema import prepare_triggers

__all__ = ["SqliteTriggerStore"]

T = TypeVar("T")

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_OPEN: Final = ("requested", "queued", "running", "interrupted")

# Columns, named once: the record field of the same name reads each one.
FIRE_COLUMNS: Final = (
    "fire_id",
    "trigger",
    "fired_at",
    "outcome",
    "updated_at",
    "scheduled_for",
    "payload",
    "run_id",
    "attempt",
    "engine_id",
    "finished_at",
    "error",
)
TRIGGER_COLUMNS: Final = (
    "name",
    "kind",
    "definition",
    "active",
    "created_at",
    "updated_at",
    "activated_at",
    "last_scheduled",
    "last_fire_at",
    "next_fire_at",
    "last_tick",
    "errors",
    "last_error",
    "last_error_at",
)
ENGINE_COLUMNS: Final = ("engine_id", "pid", "host", "started_at", "heartbeat_at", "stopped_at")
_TIME_COLUMNS: Final = frozenset(
    {
        "fired_at",
        "updated_at",
        "scheduled_for",
        "finished_at",
        "created_at",
        "activated_at",
        "last_scheduled",
        "last_fire_at",
        "next_fire_at",
        "last_tick",
        "last_error_at",
        "started_at",
        "heartbeat_at",
        "stopped_at",
    }
)
_JSON_COLUMNS: Final = frozenset({"payload", "definition"})


def us(dt: datetime) -> int:
    """Microseconds since the epoch of an aware datetime."""
    if dt.tzinfo is None:
        raise ValueError(f"naive datetime {dt!r}: plait stores aware UTC times")
    return (dt - _EPOCH) // timedelta(microseconds=1)


def _us_or_none(dt: datetime | None) -> int | None:
    return None if dt is None else us(dt)


def _decode(row: sqlite3.Row) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in row.keys():  # noqa: SIM118 - sqlite3.Row has no __iter__ over names
        value = row[key]
        if value is not None and key in _TIME_COLUMNS:
            value = _EPOCH + timedelta(microseconds=value)
        elif value is not None and key in _JSON_COLUMNS:
            value = loads(value)
        out[key] = value
    return out


def _fire(row: sqlite3.Row) -> FireRecord:
    data = _decode(row)
    data["outcome"] = FireOutcome(data["outcome"])
    return FireRecord(**data)


def _state(row: sqlite3.Row) -> TriggerState:
    data = _decode(row)
    data["active"] = bool(data["active"])
    return TriggerState(**data)


def _engine(row: sqlite3.Row) -> EngineRecord:
    return EngineRecord(**_decode(row))


_FIRES: Final = ", ".join(FIRE_COLUMNS)
_TRIGGERS: Final = ", ".join(TRIGGER_COLUMNS)
_ENGINES: Final = ", ".join(ENGINE_COLUMNS)


class SqliteTriggerStore:
    """Trigger state in the SQLite provenance file at ``path`` (default: the provenance
    store's default file). Implements :class:`plait.triggers.TriggerStore`.

    ``timeout`` is how many seconds a write waits for other processes holding the file.
    """

    def __init__(
        self, path: str | os.PathLike[str] | None = None, *, timeout: float = 30.0
    ) -> None:
        self._path = None if path is None else Path(path).expanduser()
        self.timeout = timeout
        self._conn: sqlite3.Connection | None = None
        self._tools: LoopLocal[tuple[anyio.Lock, anyio.CapacityLimiter]] = LoopLocal(
            lambda: (anyio.Lock(), anyio.CapacityLimiter(1))
        )

    def __repr__(self) -> str:
        state = "open" if self._conn is not None else "closed"
        return f"SqliteTriggerStore({str(self.path)!r}, {state})"

    @property
    def path(self) -> Path:
        if self._path is None:
            return defaults.provenance_path()  # the provenance store's file: one file
        return self._path

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> SqliteTriggerStore:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def open(self) -> None:
        """Open the file (creating a provenance store, or adding the trigger tables to one);
        refuse a file that is not a plait store, unchanged."""
        if self._conn is not None:
            return
        lock, limiter = self._tools.get()
        async with lock:
            if self._conn is None:
                self._conn = await anyio.to_thread.run_sync(self._open_sync, limiter=limiter)

    def _open_sync(self) -> sqlite3.Connection:
        path = self._path = self.path
        # Never open the file with plain open(): closing such a descriptor drops every POSIX
        # lock this process holds on it, including those of a provenance connection to the
        # same file, and another process could then delete the WAL under it. SQLite itself
        # tells a file that is not a database (below), before writing anything.
        if path.is_dir():
            raise StoreError(f"trigger store {str(path)!r} is a directory, not a SQLite file")
        if not path.exists():
            with contextlib.suppress(FileExistsError):
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        try:
            conn = sqlite3.connect(
                path, timeout=self.timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open trigger store {str(path)!r}: {exc}") from exc
        try:
            _schema.prepare(conn, path)
            prepare_triggers(conn, path)
            conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StoreError(
                f"{str(path)!r} is not a plait store ({exc}); refusing to use it as a trigger "
                "store (the file was not modified)"
            ) from exc
        except BaseException:
            conn.close()
            raise
        conn.row_factory = sqlite3.Row
        return conn

    async def aclose(self) -> None:
        if self._conn is None:
            return
        lock, limiter = self._tools.get()
        with anyio.CancelScope(shield=True):
            async with lock:
                conn, self._conn = self._conn, None
                if conn is not None:
                    await anyio.to_thread.run_sync(conn.close, limiter=limiter)

    async def _run(self, fn: Callable[[sqlite3.Connection], T], *, write: bool = True) -> T:
        """``fn(conn)`` in one transaction on the store's worker thread."""
        await self.open()
        lock, limiter = self._tools.get()

        def in_transaction() -> T:
            conn = self._conn
            if conn is None:
                raise StoreError(f"trigger store {str(self.path)!r} is closed")
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                result = fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

        async with lock:
            try:
                return await anyio.to_thread.run_sync(in_transaction, limiter=limiter)
            except sqlite3.Error as exc:
                raise StoreError(f"trigger store {str(self.path)!r}: {exc}") from exc

    # ------------------------------------------------------------------ triggers
    async def define_triggers(
        self, triggers: Sequence[TriggerDefinition], now: datetime
    ) -> list[TriggerState]:
        at = us(now)

        def define(conn: sqlite3.Connection) -> list[TriggerState]:
            conn.executemany(
                "INSERT INTO triggers (name, kind, definition, active, created_at, updated_at, "
                "activated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                "kind = excluded.kind, definition = excluded.definition, "
                "updated_at = excluded.updated_at",
                [
                    (
                        t.name,
                        t.kind,
                        dumps(t.definition),
                        int(t.active),
                        at,
                        at,
                        at if t.active else None,
                    )
                    for t in triggers
                ],
            )
            wanted = {t.name for t in triggers}
            return [s for s in self._all_states(conn) if s.name in wanted]

        return await self._run(define)

    @staticmethod
    def _all_states(conn: sqlite3.Connection) -> list[TriggerState]:
        return [_state(r) for r in conn.execute(f"SELECT {_TRIGGERS} FROM triggers ORDER BY name")]

    def _missing(self, name: str) -> TriggerNotFoundError:
        return TriggerNotFoundError(
            f"no trigger named {name!r} in the trigger store {str(self.path)!r}"
        )

    def _one_state(self, conn: sqlite3.Connection, name: str) -> TriggerState:
        row = conn.execute(f"SELECT {_TRIGGERS} FROM triggers WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise self._missing(name)
        return _state(row)

    async def list_triggers(self) -> list[TriggerState]:
        return await self._run(self._all_states, write=False)

    async def activations(self) -> dict[str, bool]:
        return await self._run(
            lambda conn: {n: bool(a) for n, a in conn.execute("SELECT name, active FROM triggers")},
            write=False,
        )

    async def get_trigger(self, name: str) -> TriggerState:
        return await self._run(lambda conn: self._one_state(conn, name), write=False)

    async def set_active(self, name: str, active: bool, now: datetime) -> TriggerState:
        def change(conn: sqlite3.Connection) -> TriggerState:
            conn.execute(
                "UPDATE triggers SET activated_at = CASE WHEN ?1 AND NOT active THEN ?2 "
                "ELSE activated_at END, active = ?1, updated_at = ?2 WHERE name = ?3",
                (int(active), us(now), name),
            )
            return self._one_state(conn, name)

        return await self._run(change)

    async def set_next_fire(self, name: str, when: datetime | None) -> None:
        await self._run(
            lambda conn: conn.execute(
                "UPDATE triggers SET next_fire_at = ? WHERE name = ?", (_us_or_none(when), name)
            )
        )

    async def record_error(self, name: str, message: str, now: datetime) -> None:
        await self._run(
            lambda conn: conn.execute(
                "UPDATE triggers SET errors = errors + 1, last_error = ?, last_error_at = ? "
                "WHERE name = ?",
                (message, us(now), name),
            )
        )

    async def claim_tick(self, name: str, instant: datetime) -> bool:
        def claim(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE triggers SET last_tick = ?1 WHERE name = ?2 "
                "AND (last_tick IS NULL OR last_tick < ?1)",
                (us(instant), name),
            )
            return cur.rowcount == 1

        return await self._run(claim)

    # ------------------------------------------------------------------ fires
    @staticmethod
    def _decide(conn: sqlite3.Connection, trigger: str, max_active: int, overlap: str) -> str:
        """The outcome of a new fire: ``running`` if a slot is free, else by ``overlap``."""
        (running,) = conn.execute(
            "SELECT count(*) FROM trigger_fires WHERE outcome = 'running' AND trigger = ?",
            (trigger,),
        ).fetchone()
        if running < max_active:
            return "running"
        return "queued" if overlap == "queue" else "skipped"

    @staticmethod
    def _get_fire(conn: sqlite3.Connection, fire_id: str) -> FireRecord | None:
        row = conn.execute(f"SELECT {_FIRES} FROM trigger_fires WHERE fire_id = ?", (fire_id,))
        found = row.fetchone()
        return None if found is None else _fire(found)

    async def claim_fire(self, claim: FireClaim) -> FireRecord | None:
        at = us(claim.fired_at)
        instant = _us_or_none(claim.scheduled_for)

        def insert(conn: sqlite3.Connection) -> FireRecord | None:
            if instant is not None:
                taken = conn.execute(
                    "SELECT 1 FROM trigger_fires WHERE trigger = ? AND scheduled_for = ?",
                    (claim.trigger, instant),
                ).fetchone()
                if taken:
                    return None
            outcome = self._decide(conn, claim.trigger, claim.max_active_runs, claim.overlap)
            conn.execute(
                "INSERT INTO trigger_fires (fire_id, trigger, fired_at, outcome, updated_at, "
                "scheduled_for, payload, engine_id, finished_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    claim.fire_id,
                    claim.trigger,
                    at,
                    outcome,
                    at,
                    instant,
                    None if claim.payload is None else dumps(claim.payload),
                    claim.engine_id,
                    at if outcome == "skipped" else None,
                ),
            )
            conn.execute(
                "UPDATE triggers SET last_fire_at = ?1, errors = 0, "
                "last_scheduled = CASE WHEN ?2 IS NULL THEN last_scheduled "
                "ELSE max(ifnull(last_scheduled, ?2), ?2) END WHERE name = ?3",
                (at, instant, claim.trigger),
            )
            return self._get_fire(conn, claim.fire_id)

        return await self._run(insert)

    async def request_fire(
        self, fire_id: str, trigger: str, payload: dict[str, Any] | None, now: datetime
    ) -> FireRecord:
        at = us(now)

        def insert(conn: sqlite3.Connection) -> FireRecord:
            self._one_state(conn, trigger)
            conn.execute(
                "INSERT INTO trigger_fires (fire_id, trigger, fired_at, outcome, updated_at, "
                "payload) VALUES (?, ?, ?, 'requested', ?, ?)",
                (fire_id, trigger, at, at, None if payload is None else dumps(payload)),
            )
            fire = self._get_fire(conn, fire_id)
            assert fire is not None
            return fire

        return await self._run(insert)

    async def claim_requests(
        self, engine_id: str, limits: Mapping[str, tuple[int, str]], now: datetime
    ) -> list[FireRecord]:
        at = us(now)
        pending = await self._run(
            lambda conn: conn.execute(
                "SELECT 1 FROM trigger_fires WHERE outcome = 'requested' LIMIT 1"
            ).fetchone(),
            write=False,
        )
        if pending is None:  # the usual case, polled every second: no write lock taken
            return []

        def claim(conn: sqlite3.Connection) -> list[FireRecord]:
            rows = conn.execute(
                "SELECT fire_id, trigger FROM trigger_fires WHERE outcome = 'requested' "
                "ORDER BY fired_at, rowid"
            ).fetchall()
            claimed = []
            for fire_id, trigger in rows:
                if trigger not in limits:
                    continue
                outcome = self._decide(conn, trigger, *limits[trigger])
                conn.execute(
                    "UPDATE trigger_fires SET outcome = ?, engine_id = ?, updated_at = ?, "
                    "finished_at = ? WHERE fire_id = ?",
                    (outcome, engine_id, at, at if outcome == "skipped" else None, fire_id),
                )
                conn.execute("UPDATE triggers SET last_fire_at = ? WHERE name = ?", (at, trigger))
                claimed.append(self._get_fire(conn, fire_id))
            return [f for f in claimed if f is not None]

        return await self._run(claim)

    async def promote(
        self, trigger: str, engine_id: str, max_active_runs: int, now: datetime
    ) -> FireRecord | None:
        def promote(conn: sqlite3.Connection) -> FireRecord | None:
            if self._decide(conn, trigger, max_active_runs, "skip") != "running":
                return None
            row = conn.execute(
                "SELECT fire_id FROM trigger_fires WHERE outcome = 'queued' AND trigger = ? "
                "ORDER BY fired_at, rowid LIMIT 1",
                (trigger,),
            ).fetchone()
            if row is None:
                return None
            conn.execute(
                "UPDATE trigger_fires SET outcome = 'running', engine_id = ?, updated_at = ? "
                "WHERE fire_id = ?",
                (engine_id, us(now), row[0]),
            )
            return self._get_fire(conn, row[0])

        return await self._run(promote)

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
        at = us(now)
        final = outcome is not None and not FireOutcome(outcome).is_open

        def update(conn: sqlite3.Connection) -> FireRecord:
            conn.execute(
                "UPDATE trigger_fires SET outcome = ifnull(?1, outcome), "
                "run_id = ifnull(?2, run_id), attempt = ifnull(?3, attempt), "
                "error = CASE WHEN ?1 = 'completed' THEN NULL ELSE ifnull(?4, error) END, "
                "updated_at = ?5, finished_at = CASE WHEN ?6 THEN ?5 ELSE NULL END "
                "WHERE fire_id = ?7",
                (
                    None if outcome is None else FireOutcome(outcome).value,
                    run_id,
                    attempt,
                    error,
                    at,
                    int(final),
                    fire_id,
                ),
            )
            fire = self._get_fire(conn, fire_id)
            if fire is None:
                raise TriggerNotFoundError(
                    f"no fire {fire_id!r} in the trigger store {str(self.path)!r}"
                )
            return fire

        return await self._run(update)

    async def get_fire(self, fire_id: str) -> FireRecord:
        def get(conn: sqlite3.Connection) -> FireRecord:
            fire = self._get_fire(conn, fire_id)
            if fire is None:
                raise TriggerNotFoundError(
                    f"no fire {fire_id!r} in the trigger store {str(self.path)!r}"
                )
            return fire

        return await self._run(get, write=False)

    async def list_fires(
        self,
        *,
        trigger: str | None = None,
        outcome: FireOutcome | str | None = None,
        limit: int | None = None,
    ) -> list[FireRecord]:
        where, args = [], []
        if trigger is not None:
            where.append("trigger = ?")
            args.append(trigger)
        if outcome is not None:
            where.append("outcome = ?")
            args.append(FireOutcome(outcome).value)
        sql = f"SELECT {_FIRES} FROM trigger_fires"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY fired_at DESC, rowid DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return await self._run(
            lambda conn: [_fire(r) for r in conn.execute(sql, args)], write=False
        )

    # ------------------------------------------------------------------ engines
    async def register_engine(self, engine: EngineRecord) -> None:
        await self._run(
            lambda conn: conn.execute(
                f"INSERT INTO trigger_engines ({_ENGINES}) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    engine.engine_id,
                    engine.pid,
                    engine.host,
                    us(engine.started_at),
                    us(engine.heartbeat_at),
                    _us_or_none(engine.stopped_at),
                ),
            )
        )

    async def heartbeat(self, engine_id: str, now: datetime) -> None:
        await self._run(
            lambda conn: conn.execute(
                "UPDATE trigger_engines SET heartbeat_at = ? WHERE engine_id = ?",
                (us(now), engine_id),
            )
        )

    async def stop_engine(self, engine_id: str, now: datetime) -> None:
        await self._run(
            lambda conn: conn.execute(
                "UPDATE trigger_engines SET stopped_at = ?, heartbeat_at = ? WHERE engine_id = ?",
                (us(now), us(now), engine_id),
            )
        )

    async def list_engines(self) -> list[EngineRecord]:
        return await self._run(
            lambda conn: [
                _engine(r)
                for r in conn.execute(
                    f"SELECT {_ENGINES} FROM trigger_engines ORDER BY started_at DESC"
                )
            ],
            write=False,
        )

    async def adopt_fires(
        self, engine_id: str, dead_engines: Sequence[str], now: datetime
    ) -> list[FireRecord]:
        if not dead_engines:
            return []
        marks = ", ".join("?" for _ in dead_engines)

        def adopt(conn: sqlite3.Connection) -> list[FireRecord]:
            rows = conn.execute(
                "UPDATE trigger_fires SET engine_id = ?, updated_at = ?, outcome = CASE "
                "WHEN outcome = 'interrupted' THEN 'running' ELSE outcome END "
                f"WHERE engine_id IN ({marks}) AND outcome IN ('queued', 'running', "
                f"'interrupted') RETURNING {_FIRES}",
                (engine_id, us(now), *dead_engines),
            ).fetchall()
            conn.execute(
                f"UPDATE trigger_engines SET stopped_at = ifnull(stopped_at, heartbeat_at) "
                f"WHERE engine_id IN ({marks})",
                tuple(dead_engines),
            )
            return sorted((_fire(r) for r in rows), key=lambda f: (f.fired_at, f.fire_id))

        return await self._run(adopt)
