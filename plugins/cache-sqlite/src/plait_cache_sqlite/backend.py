"""``SqliteCache``: plait's cache backend on one SQLite file.

Layout of the file (schema version :data:`SCHEMA_VERSION`, ``PRAGMA user_version``; the
``PRAGMA application_id`` is :data:`APPLICATION_ID` so a foreign database is recognised):

- ``entries(key, callable_id, value_json, stored_at, expires_at)``: one row per cached call,
  indexed by key and by expiry (for :meth:`SqliteCache.prune`). No index by callable since
  schema version 3: it made every miss write one more b-tree page, for the sake of
  ``clear(callable_id)``, which now scans the table (as ``stats`` always did).
- ``counters(callable_id, hits, misses, refreshes)``: persisted statistics.
- ``pushbacks(prefix, until)``: refreshes suppressed under a namespace prefix until
  ``until`` (epoch seconds); added in schema version 2.
- ``meta(name, value)``: who created the file.

An older file is migrated in place on open (one transaction that adds the ``pushbacks``
table, drops the index by callable and bumps the version; its entries and counters are
kept).

Concurrency: two connections per backend, each guarded by a lock and opened with
``check_same_thread=False`` (the backend is used from worker threads). Reads go through
one, writes through the other, so a lookup never waits behind a write that is itself
waiting for another process (WAL lets readers proceed while a writer holds the lock).
A new file is built under a temporary name and linked into place, so another process
never sees a half-initialised database.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from plait import arguments, defaults
from plait.errors import ArgumentError, StoreError

__all__ = ["APPLICATION_ID", "SCHEMA_VERSION", "SqliteCache"]

#: ``PRAGMA application_id`` of a plait cache file: ASCII "PLCA".
APPLICATION_ID = 0x504C4341
#: Current schema version (``PRAGMA user_version``).
SCHEMA_VERSION = 3
#: How long a lookup or write waits for another process holding the lock, in seconds.
BUSY_TIMEOUT = 10.0
#: ``synchronous`` values: ``"normal"`` survives a killed process (the default),
#: ``"full"`` also a power loss or OS crash, at the cost of one fsync per stored value.
SYNCHRONOUS = ("normal", "full")
#: Buffered counters are written at least this often (seconds) while calls keep coming.
FLUSH_INTERVAL = 5.0

# what SQLite raises on a damaged file (the message of a malformed schema may not be UTF-8)
_SQLITE_ERRORS = (sqlite3.Error, UnicodeDecodeError)

_PUSHBACKS_TABLE = """CREATE TABLE pushbacks (
        prefix TEXT PRIMARY KEY,
        until REAL NOT NULL
    ) WITHOUT ROWID"""

_SCHEMA = (
    """CREATE TABLE entries (
        key TEXT PRIMARY KEY,
        callable_id TEXT NOT NULL,
        value_json TEXT NOT NULL,
        stored_at REAL NOT NULL,
        expires_at REAL NOT NULL
    )""",
    "CREATE INDEX entries_by_expiry ON entries (expires_at)",
    """CREATE TABLE counters (
        callable_id TEXT PRIMARY KEY,
        hits INTEGER NOT NULL DEFAULT 0,
        misses INTEGER NOT NULL DEFAULT 0,
        refreshes INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID""",
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    _PUSHBACKS_TABLE,
)

#: Statements that bring a file of version ``n - 1`` to version ``n``.
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    2: (_PUSHBACKS_TABLE,),
    3: ("DROP INDEX IF EXISTS entries_by_callable",),
}

_LOOKUP = "SELECT value_json, stored_at FROM entries WHERE key = ?"
_STORE = (
    "INSERT OR REPLACE INTO entries (key, callable_id, value_json, stored_at, expires_at) "
    "VALUES (?, ?, ?, ?, ?)"
)
_BUMP = (
    "INSERT INTO counters (callable_id, hits, misses, refreshes) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (callable_id) DO UPDATE SET hits = hits + excluded.hits, "
    "misses = misses + excluded.misses, refreshes = refreshes + excluded.refreshes"
)


class Entry(NamedTuple):
    """A stored value as :meth:`SqliteCache.lookup` returns it."""

    value_json: str
    stored_at: float


_new_entry = tuple.__new__  # builds an Entry from a row without NamedTuple's overhead


def default_path() -> Path:
    """``platformdirs.user_cache_dir("plait")/cache.sqlite3``, computed when called
    (:func:`plait.defaults.cache_path`)."""
    return defaults.cache_path()


class SqliteCache:
    """A :class:`plait.protocols.CacheBackend` on one SQLite file, shared by processes.

    ``path`` defaults to ``platformdirs.user_cache_dir("plait")/cache.sqlite3``, resolved when
    the cache opens (on first use or :meth:`open`). New files get mode 0600 and new
    directories 0700. A path that is a directory, not a SQLite file, a SQLite database of
    someone else, or a plait cache of a newer schema raises
    :class:`plait.errors.StoreError` naming the path, and the file is left untouched.

    ``synchronous`` is ``"normal"`` (stored values survive the process being killed) or
    ``"full"`` (they survive a power loss too; each store waits for an fsync).

    Usable as a context manager; :meth:`close` persists buffered counters.
    """

    def __init__(
        self, path: str | os.PathLike[str] | None = None, *, synchronous: str = "normal"
    ) -> None:
        if synchronous not in SYNCHRONOUS:
            raise ArgumentError(
                f"synchronous must be one of {', '.join(map(repr, SYNCHRONOUS))}, "
                f"got {synchronous!r}"
            )
        self.synchronous = synchronous
        self._given = (
            None if path is None else arguments.file_path(path, name="path", where="SqliteCache()")
        )
        self._path: Path | None = None
        self._reader: sqlite3.Connection | None = None
        self._read_cursor: sqlite3.Cursor | None = None
        self._writer: sqlite3.Connection | None = None
        self._read_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._open_lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self._pending: dict[str, list[int]] = {}
        self._last_flush = time.monotonic()

    # ------------------------------------------------------------------ lifecycle
    @property
    def path(self) -> Path:
        """The database file (the default location is computed on first access)."""
        if self._path is None:
            self._path = (self._given or default_path()).expanduser().absolute()
        return self._path

    def __repr__(self) -> str:
        state = "open" if self._reader is not None else "closed"
        return f"SqliteCache({str(self._given or '<default>')!r}, {state})"

    def __enter__(self) -> SqliteCache:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        """Create or check the file and connect. Idempotent and thread-safe."""
        if self._is_open():
            return
        with self._open_lock:
            if self._is_open():  # another thread opened it meanwhile
                return
            path = self.path
            if not path.exists():
                self._create(path)
            if path.is_dir():
                raise StoreError(f"cache database {str(path)!r} is a directory, not a file")
            version = self._identify(path)  # read-only: a refused file keeps its bytes, -wal
            writer = self._connect(path)
            try:
                if version < SCHEMA_VERSION:
                    self._migrate(writer, path)
                reader = self._connect(path)
            except BaseException:
                writer.close()
                raise
            self._writer = writer
            self._read_cursor = reader.cursor()
            self._reader = reader

    def _is_open(self) -> bool:
        return self._reader is not None

    def close(self) -> None:
        """Persist buffered counters and close both connections (reopens on next use)."""
        with self._open_lock:
            if self._reader is None:
                return
            try:
                self._flush()
            finally:
                with self._read_lock, self._write_lock:
                    reader, writer = self._reader, self._writer
                    self._reader = self._writer = None
                    if self._read_cursor is not None:
                        self._read_cursor.close()
                        self._read_cursor = None
                    for conn in (reader, writer):
                        if conn is not None:
                            conn.close()

    # ------------------------------------------------------------------ hot path
    def lookup(self, key: str) -> Entry | None:
        """The entry under ``key`` or ``None``: one prepared primary-key select, no write."""
        while True:
            with self._read_lock:
                cursor = self._read_cursor
                if cursor is not None:
                    try:
                        row = cursor.execute(_LOOKUP, (key,)).fetchone()
                    except _SQLITE_ERRORS as exc:
                        raise self._error("cannot read", exc) from exc
                    break
            self.open()  # not open yet, or closed since: (re)open
        return None if row is None else _new_entry(Entry, row)

    def record_stats(
        self, callable_id: str, *, hits: int = 0, misses: int = 0, refreshes: int = 0
    ) -> None:
        """Add to the counters in memory; they reach the file with the next write."""
        with self._stats_lock:
            counts = self._pending.get(callable_id)
            if counts is None:
                self._pending[callable_id] = [hits, misses, refreshes]
            else:
                counts[0] += hits
                counts[1] += misses
                counts[2] += refreshes
        if time.monotonic() - self._last_flush > FLUSH_INTERVAL:
            # counters stay buffered on failure: a cached call must not fail over them
            with contextlib.suppress(StoreError):
                self._write(None)

    # ------------------------------------------------------------------ pushbacks
    def push_back(self, prefix: str, until: float) -> None:
        """Suppress refreshes under ``prefix`` until epoch ``until`` (replaces an earlier
        pushback of the prefix)."""
        self._write(
            lambda conn: conn.execute(
                "INSERT OR REPLACE INTO pushbacks (prefix, until) VALUES (?, ?)", (prefix, until)
            )
        )

    def pushbacks(self, now: float) -> dict[str, float]:
        """The pushbacks in force at epoch ``now``: prefix -> until."""
        while True:
            with self._read_lock:
                cursor = self._read_cursor
                if cursor is not None:
                    try:
                        rows = cursor.execute(
                            "SELECT prefix, until FROM pushbacks WHERE until > ?", (now,)
                        ).fetchall()
                    except sqlite3.Error as exc:
                        raise self._error("cannot read", exc) from exc
                    return dict(rows)
            self.open()

    # ------------------------------------------------------------------ writes
    def store(
        self, key: str, callable_id: str, value_json: str, stored_at: float, expires_at: float
    ) -> None:
        """Insert or replace one entry (with the buffered counters, in one transaction)."""
        self._write(
            lambda conn: conn.execute(_STORE, (key, callable_id, value_json, stored_at, expires_at))
        )

    def clear(self, callable_id: str | None = None) -> int:
        """Drop the entries and counters of ``callable_id`` (or all); return entries dropped."""

        def clear(conn: sqlite3.Connection) -> int:
            if callable_id is None:
                conn.execute("DELETE FROM counters")
                return conn.execute("DELETE FROM entries").rowcount
            conn.execute("DELETE FROM counters WHERE callable_id = ?", (callable_id,))
            return conn.execute(
                "DELETE FROM entries WHERE callable_id = ?", (callable_id,)
            ).rowcount

        with self._stats_lock:  # counters buffered for what we clear are dropped too
            if callable_id is None:
                self._pending.clear()
            else:
                self._pending.pop(callable_id, None)
        result: int = self._write(clear)
        return result

    def prune(self, now: float | None = None) -> int:
        """Drop entries whose ``expires_at`` is at or before ``now`` (default: the time now)."""
        cutoff = time.time() if now is None else now

        def prune(conn: sqlite3.Connection) -> int:
            conn.execute("DELETE FROM pushbacks WHERE until <= ?", (cutoff,))
            return conn.execute("DELETE FROM entries WHERE expires_at <= ?", (cutoff,)).rowcount

        result: int = self._write(prune)
        return result

    def stats(self) -> dict[str, dict[str, int]]:
        """Counters and entry counts per callable id, as every process has persisted them."""
        self._write(None)  # persist our own buffered counters first
        out: dict[str, dict[str, int]] = {}
        conn = self._reader
        assert conn is not None
        try:
            with self._read_lock:
                conn.execute("BEGIN")
                try:
                    counters = conn.execute(
                        "SELECT callable_id, hits, misses, refreshes FROM counters"
                    ).fetchall()
                    entries = conn.execute(
                        "SELECT callable_id, count(*) FROM entries GROUP BY callable_id"
                    ).fetchall()
                finally:
                    conn.execute("COMMIT")
        except _SQLITE_ERRORS as exc:
            raise self._error("cannot read", exc) from exc
        try:
            for cid, hits, misses, refreshes in counters:
                out[cid] = {"hits": hits, "misses": misses, "refreshes": refreshes, "entries": 0}
            for cid, count in entries:
                out.setdefault(cid, {"hits": 0, "misses": 0, "refreshes": 0, "entries": 0})
                out[cid]["entries"] = count
            return dict(sorted(out.items()))
        except (TypeError, ValueError) as exc:  # values of the wrong type: a damaged file
            raise self._error("holds damaged counters", exc) from exc

    def flush(self) -> None:
        """Persist buffered counters now."""
        if self._reader is not None:
            self._write(None)

    def _flush(self) -> None:
        self._write(None)

    def _write(self, action: Callable[[sqlite3.Connection], Any] | None) -> Any:
        """Run ``action(conn)`` and persist buffered counters in one IMMEDIATE transaction.

        With ``action=None`` only the buffered counters are written (nothing if none).
        """
        if self._writer is None:
            self.open()
        with self._stats_lock:
            pending, self._pending = self._pending, {}
            self._last_flush = time.monotonic()
        if action is None and not pending:
            return None
        try:
            with self._write_lock:
                conn = self._writer
                assert conn is not None
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = None if action is None else action(conn)
                    if pending:
                        conn.executemany(_BUMP, [(cid, *counts) for cid, counts in pending.items()])
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
        except BaseException as exc:
            self._restore_pending(pending)
            if isinstance(exc, _SQLITE_ERRORS):
                raise self._error("cannot write", exc) from exc
            raise
        return result

    def _restore_pending(self, pending: dict[str, list[int]]) -> None:
        with self._stats_lock:
            for cid, (hits, misses, refreshes) in pending.items():
                counts = self._pending.setdefault(cid, [0, 0, 0])
                counts[0] += hits
                counts[1] += misses
                counts[2] += refreshes

    # ------------------------------------------------------------------ opening
    def _error(self, what: str, exc: BaseException) -> StoreError:
        return StoreError(f"cache database {str(self.path)!r}: {what}: {exc}")

    def _connect(self, path: Path) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                path,
                timeout=BUSY_TIMEOUT,
                isolation_level=None,
                check_same_thread=False,
                cached_statements=64,
            )
        except _SQLITE_ERRORS as exc:
            raise self._error("cannot open", exc) from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
            conn.execute(f"PRAGMA synchronous = {self.synchronous.upper()}")
        except _SQLITE_ERRORS as exc:
            conn.close()
            raise self._error("cannot open", exc) from exc
        return conn

    def _identify(self, path: Path) -> int:
        """Check the file through a read-only connection, before any read-write one, and
        return its schema version.

        SQLite itself says whether the file is a database: reading its header with a plain
        ``open()`` and closing it would drop every POSIX lock this process holds on the file
        (another cache object's included). Closing a read-write connection to a file in WAL
        mode merges its ``-wal`` into it and deletes it: a file that is refused must never
        have had one.
        """
        uri = f"{path.absolute().as_uri()}?mode=ro"
        try:
            conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT, isolation_level=None)
        except _SQLITE_ERRORS as exc:
            raise self._error("cannot open", exc) from exc
        try:
            conn.execute("BEGIN")  # one read transaction: the id and version of one state
            (app_id,) = conn.execute("PRAGMA application_id").fetchone()
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            if "not a database" in str(exc):
                raise StoreError(
                    f"cache database {str(path)!r} is not a SQLite database; refusing to use "
                    "it (pass another path, or move the file away)"
                ) from exc
            raise self._error("cannot read its schema", exc) from exc
        except _SQLITE_ERRORS as exc:
            raise self._error("cannot read its schema", exc) from exc
        finally:
            conn.close()
        if app_id != APPLICATION_ID:
            raise StoreError(
                f"cache database {str(path)!r} is a SQLite database of another application "
                f"(application_id {app_id:#x}, expected {APPLICATION_ID:#x}); refusing to use it"
            )
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"cache database {str(path)!r} has schema version {version}, newer than "
                f"this plait-cache-sqlite supports ({SCHEMA_VERSION}); upgrade "
                "plait-cache-sqlite or use another path"
            )
        return int(version)

    def _migrate(self, conn: sqlite3.Connection, path: Path) -> None:
        """Bring an older file to :data:`SCHEMA_VERSION` in one transaction (another process
        may be migrating at once: the version is read again under the write lock)."""
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                (version,) = conn.execute("PRAGMA user_version").fetchone()
                for target in range(version + 1, SCHEMA_VERSION + 1):
                    for statement in _MIGRATIONS[target]:
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise self._error(f"cannot migrate to schema version {SCHEMA_VERSION}", exc) from exc

    def _create(self, path: Path) -> None:
        """Build a fresh database beside ``path`` and link it into place atomically."""
        parent = path.parent
        try:
            _make_private_dirs(parent)
            fd, tmp_name = tempfile.mkstemp(prefix=".cache-", suffix=".tmp", dir=parent)
        except OSError as exc:
            raise StoreError(f"cache database {str(path)!r} cannot be created: {exc}") from exc
        os.close(fd)  # mkstemp made it 0600 and empty: SQLite treats that as a new database
        tmp = Path(tmp_name)
        try:
            conn = sqlite3.connect(tmp, isolation_level=None)
            try:
                conn.execute("BEGIN")
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO meta (name, value) VALUES ('created_by', ?)",
                    (f"plait-cache-sqlite schema {SCHEMA_VERSION}",),
                )
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                conn.execute("COMMIT")
                conn.execute("PRAGMA journal_mode = WAL")
            finally:
                conn.close()
            _publish(tmp, path)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cache database {str(path)!r} cannot be created: {exc}") from exc
        finally:
            tmp.unlink(missing_ok=True)


def _make_private_dirs(directory: Path) -> None:
    """Create ``directory`` and its missing parents, each new one with mode 0700."""
    missing = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for new in reversed(missing):
        new.mkdir(mode=0o700, exist_ok=True)


def _publish(tmp: Path, path: Path) -> None:
    """Put the finished file ``tmp`` at ``path`` unless something is already there.

    A hard link is atomic and never replaces, so a process racing us either sees no file or
    a complete one. Where hard links are unsupported, fall back to an exclusive create + copy.
    """
    try:
        os.link(tmp, path)
        return
    except FileExistsError:
        return
    except OSError:
        pass
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "wb") as out:
        out.write(tmp.read_bytes())
