"""The on-disk schema: identification, creation, forward migrations and refusals.

A provenance file is recognised by three marks written in the same transaction that
creates its tables: ``PRAGMA application_id`` (:data:`APPLICATION_ID`), ``PRAGMA
user_version`` (the schema version) and the ``plait_meta`` table. Anything else that is not
an empty file is refused *before* plait writes a single byte to it.

Times are stored as integer microseconds since the Unix epoch (UTC): exact, compact and
cheap to compare in range queries.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Final

from plait.errors import StoreError

__all__ = [
    "APPLICATION_ID",
    "MIGRATIONS",
    "RUN_SHIFT",
    "SCHEMA_VERSION",
    "check_file",
    "identify",
    "prepare",
    "read_only_uri",
]

#: ``PRAGMA application_id`` of a plait provenance file: the bytes ``b"plPv"``.
APPLICATION_ID: Final = 0x706C5076
#: The schema version this release writes. Older files are migrated forward on open; a
#: new file is created at version 3 and brought forward by the same migrations.
SCHEMA_VERSION: Final = 5
#: A run's node executions have row numbers ``run_no << RUN_SHIFT | seq``: the run's range.
RUN_SHIFT: Final = 32

SQLITE_HEADER: Final = b"SQLite format 3\x00"

# Version 2, kept to migrate version 1 files through it. Each statement separately:
# executescript() would commit mid-transaction.
#
# Layout for a cheap commit per node: a node's whole story (its status history, and the edge
# traversals recorded together with it) lives in its own ``node_executions`` row, so the
# commit after a node touches a single b-tree page. ``history`` and ``edges`` hold
# comma-separated JSON arrays (wrap in ``[...]`` to parse). Edges recorded apart from both
# of their executions go to ``edge_traversals``. The views ``status_history`` and
# ``all_edge_traversals`` present everything as plain rows for SQL users.
CREATE_V2: Final[tuple[str, ...]] = (
    """CREATE TABLE plait_meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE runs (
        run_id         TEXT PRIMARY KEY,
        dag_nsref      TEXT NOT NULL,
        status         TEXT NOT NULL,
        started_at     INTEGER NOT NULL,
        updated_at     INTEGER NOT NULL,
        finished_at    INTEGER,
        source_inputs  TEXT NOT NULL DEFAULT '{}',
        parent_run_id  TEXT,
        replay_of      TEXT,
        correlation_id TEXT,
        attempt        INTEGER NOT NULL DEFAULT 1,
        owner_pid      INTEGER NOT NULL DEFAULT 0,
        owner_host     TEXT NOT NULL DEFAULT '',
        failed_node    TEXT,
        error_type     TEXT,
        error_message  TEXT,
        traceback      TEXT,
        history        TEXT NOT NULL DEFAULT ''
    )""",
    "CREATE INDEX runs_by_started ON runs (started_at, run_id)",
    "CREATE INDEX runs_by_status ON runs (status, started_at)",
    "CREATE INDEX runs_by_dag ON runs (dag_nsref, started_at)",
    "CREATE INDEX runs_by_parent ON runs (parent_run_id) WHERE parent_run_id IS NOT NULL",
    """CREATE TABLE node_executions (
        run_id        TEXT NOT NULL,
        label         TEXT NOT NULL,
        attempt       INTEGER NOT NULL,
        status        TEXT NOT NULL,
        node_type     TEXT NOT NULL,
        recorded_at   INTEGER NOT NULL,
        updated_at    INTEGER NOT NULL,
        inputs        TEXT,
        output        TEXT,
        restorable    INTEGER NOT NULL DEFAULT 0,
        started_at    INTEGER,
        finished_at   INTEGER,
        duration_ms   REAL,
        executor      TEXT,
        host          TEXT,
        pid           INTEGER,
        worker        TEXT,
        error_type    TEXT,
        error_message TEXT,
        traceback     TEXT,
        history       TEXT NOT NULL DEFAULT '',
        edges         TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (run_id, label, attempt)
    ) WITHOUT ROWID""",
    """CREATE TABLE edge_traversals (
        run_id             TEXT NOT NULL,
        upstream           TEXT NOT NULL,
        upstream_attempt   INTEGER NOT NULL,
        downstream         TEXT NOT NULL,
        downstream_attempt INTEGER NOT NULL,
        parameter          TEXT,
        traversed_at       INTEGER NOT NULL
    )""",
    """CREATE UNIQUE INDEX edges_by_downstream ON edge_traversals (
        run_id, downstream, downstream_attempt, upstream, upstream_attempt, ifnull(parameter, '')
    )""",
    """CREATE TABLE run_data (
        run_id     TEXT NOT NULL,
        key        TEXT NOT NULL,
        value      TEXT NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (run_id, key)
    ) WITHOUT ROWID""",
    """CREATE VIEW status_history (run_id, label, attempt, status, at) AS
        SELECT r.run_id, NULL, json_extract(h.value, '$[2]'), json_extract(h.value, '$[0]'),
               json_extract(h.value, '$[1]')
          FROM runs AS r, json_each('[' || r.history || ']') AS h
        UNION ALL
        SELECT n.run_id, n.label, n.attempt, json_extract(h.value, '$[0]'),
               json_extract(h.value, '$[1]')
          FROM node_executions AS n, json_each('[' || n.history || ']') AS h""",
    """CREATE VIEW all_edge_traversals (run_id, upstream, upstream_attempt, downstream,
            downstream_attempt, parameter, traversed_at) AS
        SELECT DISTINCT n.run_id, json_extract(e.value, '$[0]'), json_extract(e.value, '$[1]'),
               json_extract(e.value, '$[2]'), json_extract(e.value, '$[3]'),
               json_extract(e.value, '$[4]'), json_extract(e.value, '$[5]')
          FROM node_executions AS n, json_each('[' || n.edges || ']') AS e
        UNION
        SELECT run_id, upstream, upstream_attempt, downstream, downstream_attempt, parameter,
               traversed_at
          FROM edge_traversals""",
)

# Version 3: the same columns as version 2, clustered so that the commit after a node
# writes about one page.
#
# ``runs.run_no`` numbers runs in creation order. Each run owns the row numbers
# ``[run_no << 32, (run_no + 1) << 32)`` of ``node_executions``: a node execution's
# ``row_no`` is its run's base plus its position in the order the run recorded them. So a new
# run's rows are appended at the end of the table (one leaf page per commit; the version 2
# WITHOUT ROWID primary key kept a copy of each ~400-byte row in interior pages and touched
# 2.5 pages per commit), and every query of one run is a range scan of that range, with no
# secondary index to update per node.
_RUNS_V3: Final = """CREATE TABLE runs (
        run_no         INTEGER PRIMARY KEY,
        run_id         TEXT NOT NULL UNIQUE,
        dag_nsref      TEXT NOT NULL,
        status         TEXT NOT NULL,
        started_at     INTEGER NOT NULL,
        updated_at     INTEGER NOT NULL,
        finished_at    INTEGER,
        source_inputs  TEXT NOT NULL DEFAULT '{}',
        parent_run_id  TEXT,
        replay_of      TEXT,
        correlation_id TEXT,
        attempt        INTEGER NOT NULL DEFAULT 1,
        owner_pid      INTEGER NOT NULL DEFAULT 0,
        owner_host     TEXT NOT NULL DEFAULT '',
        failed_node    TEXT,
        error_type     TEXT,
        error_message  TEXT,
        traceback      TEXT,
        history        TEXT NOT NULL DEFAULT ''
    )"""
_RUN_INDEXES_V3: Final = (
    "CREATE INDEX runs_by_started ON runs (started_at, run_id)",
    "CREATE INDEX runs_by_status ON runs (status, started_at)",
    "CREATE INDEX runs_by_dag ON runs (dag_nsref, started_at)",
    "CREATE INDEX runs_by_parent ON runs (parent_run_id) WHERE parent_run_id IS NOT NULL",
)
_NODES_V3: Final = """CREATE TABLE node_executions (
        row_no        INTEGER PRIMARY KEY,
        run_id        TEXT NOT NULL,
        label         TEXT NOT NULL,
        attempt       INTEGER NOT NULL,
        status        TEXT NOT NULL,
        node_type     TEXT NOT NULL,
        recorded_at   INTEGER NOT NULL,
        updated_at    INTEGER NOT NULL,
        inputs        TEXT,
        output        TEXT,
        restorable    INTEGER NOT NULL DEFAULT 0,
        started_at    INTEGER,
        finished_at   INTEGER,
        duration_ms   REAL,
        executor      TEXT,
        host          TEXT,
        pid           INTEGER,
        worker        TEXT,
        error_type    TEXT,
        error_message TEXT,
        traceback     TEXT,
        history       TEXT NOT NULL DEFAULT '',
        edges         TEXT NOT NULL DEFAULT ''
    )"""
_VIEWS: Final = tuple(s for s in CREATE_V2 if s.startswith("CREATE VIEW"))
CREATE_V3: Final[tuple[str, ...]] = (
    CREATE_V2[0],  # plait_meta
    _RUNS_V3,
    *_RUN_INDEXES_V3,
    _NODES_V3,
    *(s for s in CREATE_V2 if s.startswith(("CREATE TABLE edge_traversals", "CREATE UNIQUE"))),
    *(s for s in CREATE_V2 if s.startswith("CREATE TABLE run_data")),
    *_VIEWS,
)

# Version 5: where a run's DAG came from and its work time (``runs.dag_ref``,
# ``runs.resumed_at``, ``runs.earlier_ms``), and the log lines of nodes (``node_logs``, one
# row per line, clustered by run, node and line number).
_RUNS_V5_COLUMNS: Final = (
    "ALTER TABLE runs ADD COLUMN dag_ref TEXT",
    "ALTER TABLE runs ADD COLUMN resumed_at INTEGER",
    "ALTER TABLE runs ADD COLUMN earlier_ms REAL NOT NULL DEFAULT 0",
)
_LOGS_V5: Final = """CREATE TABLE node_logs (
        run_id   TEXT NOT NULL,
        label    TEXT NOT NULL,
        seq      INTEGER NOT NULL,
        attempt  INTEGER NOT NULL,
        at       INTEGER NOT NULL,
        level    INTEGER NOT NULL,
        logger   TEXT NOT NULL,
        message  TEXT NOT NULL,
        exc_text TEXT,
        PRIMARY KEY (run_id, label, seq)
    ) WITHOUT ROWID"""

#: Tables every version >= 1 has; a file claiming to be ours without them is damaged.
_V1_TABLES: Final = frozenset({"plait_meta", "runs", "node_executions", "edge_traversals"})


def _migrate_1_to_2(conn: sqlite3.Connection) -> None:
    """Version 2: status history, placement (worker), restorability, run data, and node
    executions clustered by (run, label, attempt) with their history and edges inline."""
    conn.execute("ALTER TABLE runs ADD COLUMN history TEXT NOT NULL DEFAULT ''")
    # the latest status version 1 knew becomes the first history entry
    conn.execute("UPDATE runs SET history = json_array(status, updated_at, attempt)")
    conn.execute("ALTER TABLE node_executions RENAME TO node_executions_v1")
    for statement in CREATE_V2:
        if statement.startswith(
            ("CREATE TABLE node_executions", "CREATE TABLE run_data", "CREATE VIEW")
        ):
            conn.execute(statement)
    # version 1 stored only JSON it had produced itself: completed outputs are restorable
    conn.execute(
        "INSERT INTO node_executions (run_id, label, attempt, status, node_type, recorded_at, "
        "updated_at, inputs, output, restorable, started_at, finished_at, duration_ms, "
        "executor, host, pid, error_type, error_message, traceback, history) "
        "SELECT run_id, label, attempt, status, node_type, ifnull(started_at, updated_at), "
        "updated_at, inputs, output, "
        "status IN ('completed', 'skipped') AND output IS NOT NULL, started_at, finished_at, "
        "duration_ms, executor, host, pid, error_type, error_message, traceback, "
        "json_array(status, updated_at) FROM node_executions_v1"
    )
    conn.execute("DROP TABLE node_executions_v1")
    conn.execute("CREATE INDEX runs_by_started ON runs (started_at, run_id)")
    conn.execute(
        "CREATE INDEX runs_by_parent ON runs (parent_run_id) WHERE parent_run_id IS NOT NULL"
    )


def _migrate_2_to_3(conn: sqlite3.Connection) -> None:
    """Version 3: runs numbered by ``run_no``; node executions clustered by run range."""
    # the views name both tables: renaming those would rewrite the views to the old copies
    for view in ("status_history", "all_edge_traversals"):
        conn.execute(f"DROP VIEW {view}")
    for index in ("runs_by_started", "runs_by_status", "runs_by_dag", "runs_by_parent"):
        conn.execute(f"DROP INDEX {index}")
    conn.execute("ALTER TABLE runs RENAME TO runs_v2")
    conn.execute("ALTER TABLE node_executions RENAME TO node_executions_v2")
    conn.execute(_RUNS_V3)
    columns = (
        "run_id, dag_nsref, status, started_at, updated_at, finished_at, source_inputs, "
        "parent_run_id, replay_of, correlation_id, attempt, owner_pid, owner_host, "
        "failed_node, error_type, error_message, traceback, history"
    )
    conn.execute(
        f"INSERT INTO runs ({columns}) SELECT {columns} FROM runs_v2 ORDER BY started_at, run_id"
    )
    conn.execute(_NODES_V3)
    node_columns = (
        "run_id, label, attempt, status, node_type, recorded_at, updated_at, inputs, output, "
        "restorable, started_at, finished_at, duration_ms, executor, host, pid, worker, "
        "error_type, error_message, traceback, history, edges"
    )
    # a node row whose run is missing could not be read in version 2 either: it is dropped
    conn.execute(
        f"INSERT INTO node_executions (row_no, {node_columns}) "
        f"SELECT (r.run_no << {RUN_SHIFT}) + row_number() OVER ("
        "PARTITION BY n.run_id ORDER BY n.recorded_at, n.label, n.attempt) - 1, "
        + ", ".join(f"n.{c.strip()}" for c in node_columns.split(","))
        + " FROM node_executions_v2 AS n JOIN runs AS r ON r.run_id = n.run_id"
    )
    conn.execute("DROP TABLE node_executions_v2")
    conn.execute("DROP TABLE runs_v2")
    for statement in (*_RUN_INDEXES_V3, *_VIEWS):
        conn.execute(statement)


def _owner_started(conn: sqlite3.Connection) -> None:
    """Version 4: ``runs.owner_started``, when the owner process started (a token, see
    :mod:`plait.owners`), so a dead owner whose pid was reused is known to be dead."""
    conn.execute("ALTER TABLE runs ADD COLUMN owner_started TEXT NOT NULL DEFAULT ''")


def _logs_and_work_time(conn: sqlite3.Connection) -> None:
    """Version 5: runs know where their DAG came from and their work time; node log lines."""
    for statement in (*_RUNS_V5_COLUMNS, _LOGS_V5):
        conn.execute(statement)


#: ``MIGRATIONS[n]`` upgrades a version-``n`` file to version ``n + 1`` inside a transaction.
#: From version 3 on, a step is also how a new file gets the change (see ``_create``): a new
#: change is one function and one entry here.
MIGRATIONS: Final[dict[int, Callable[[sqlite3.Connection], None]]] = {
    1: _migrate_1_to_2,
    2: _migrate_2_to_3,
    3: _owner_started,
    4: _logs_and_work_time,
}
#: The version ``CREATE_V3`` makes; the migrations after it make a new file current.
_CREATED_AT: Final = 3


def check_file(path: Path) -> None:
    """Refuse a path that is a directory. (Whether a file is SQLite at all is asked through
    SQLite, in :func:`identify`: a plain ``open()``/``close()`` of the file would drop every
    POSIX lock this process holds on it, SQLite's own included.)"""
    if path.is_dir():
        raise StoreError(f"provenance store {str(path)!r} is a directory, not a SQLite file")


def _not_sqlite(path: Path) -> StoreError:
    return StoreError(
        f"{str(path)!r} is not a SQLite database; refusing to use it as a provenance store "
        "(the file was not modified)"
    )


def read_only_uri(path: Path) -> str:
    """The URI that opens ``path`` read-only (``sqlite3.connect(..., uri=True)``)."""
    return f"{path.absolute().as_uri()}?mode=ro"


def identify(path: Path) -> None:
    """Refuse an existing file that is not a provenance store plait may write, looking at it
    through a read-only connection (which reads, and never merges, the file's ``-wal``).

    Closing a read-write connection to a file in WAL mode checkpoints its ``-wal`` into it
    and deletes it: a file must be judged before plait opens it for writing.
    """
    if not path.exists() or path.stat().st_size == 0:
        return
    try:
        conn = sqlite3.connect(read_only_uri(path), uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read provenance store {str(path)!r}: {exc}") from exc
    try:
        conn.execute("PRAGMA busy_timeout = 5000")
        _verdict(path, *_state(conn))
    except sqlite3.DatabaseError as exc:
        if "not a database" in str(exc):
            raise _not_sqlite(path) from exc
        raise StoreError(
            f"cannot read provenance store {str(path)!r}: {exc} (the file was not modified)"
        ) from exc
    except (sqlite3.Error, UnicodeDecodeError) as exc:  # (a damaged schema's error text)
        raise StoreError(
            f"cannot read provenance store {str(path)!r}: {exc} (the file was not modified)"
        ) from exc
    finally:
        conn.close()


def _state(conn: sqlite3.Connection) -> tuple[int, int, set[str]]:
    """Application id, schema version and tables, read in ONE read transaction: read one by
    one, a file another process creates meanwhile shows its tables without its id."""
    own = not conn.in_transaction
    if own:
        conn.execute("BEGIN")
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        }
    finally:
        if own and conn.in_transaction:
            conn.execute("COMMIT")
    return app_id, version, tables


def _verdict(path: Path, app_id: int, version: int, tables: set[str]) -> str:
    """``"new"``, ``"current"`` or ``"old"``; raises StoreError for files that are not ours."""
    where = repr(str(path))
    if app_id == 0 and version == 0 and not tables:
        return "new"
    if app_id != APPLICATION_ID:
        listed = ", ".join(sorted(tables)[:8]) or "none"
        raise StoreError(
            f"{where} is a SQLite database but not a plait provenance store "
            f"(application_id={app_id:#x}, tables: {listed}); refusing to use it "
            "(the file was not modified)"
        )
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"provenance store {where} has schema version {version}, newer than the "
            f"{SCHEMA_VERSION} this plait-provenance-sqlite understands; upgrade "
            "plait-provenance-sqlite (the file was not modified)"
        )
    missing = _V1_TABLES - tables
    if version < 1 or missing:
        raise StoreError(
            f"provenance store {where} is damaged (schema version {version}, missing tables: "
            f"{', '.join(sorted(missing)) or 'none'}); refusing to use it"
        )
    return "current" if version == SCHEMA_VERSION else "old"


def _create(conn: sqlite3.Connection) -> None:
    for statement in CREATE_V3:
        conn.execute(statement)
    for version in range(_CREATED_AT, SCHEMA_VERSION):
        MIGRATIONS[version](conn)
    conn.execute(
        "INSERT INTO plait_meta (key, value) VALUES ('schema_version', ?), ('created_by', ?)",
        (str(SCHEMA_VERSION), "plait-provenance-sqlite"),
    )
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _migrate(conn: sqlite3.Connection, version: int) -> None:
    while version < SCHEMA_VERSION:
        MIGRATIONS[version](conn)
        version += 1
    conn.execute(
        "INSERT INTO plait_meta (key, value) VALUES ('schema_version', ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (str(SCHEMA_VERSION),),
    )
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def prepare(conn: sqlite3.Connection, path: Path) -> None:
    """Identify the database behind ``conn``; create or migrate it if it is new or ours.

    Every check that can refuse the file runs before the first write (WAL mode included).
    ``conn`` is in autocommit mode and has a busy timeout for concurrent openers.
    """
    verdict = _verdict(path, *_state(conn))
    if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise StoreError(f"provenance store {str(path)!r}: cannot enable WAL mode ({mode})")
    if verdict == "current":
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        # another process may have created or migrated the file since we looked
        app_id, version, tables = _state(conn)
        verdict = _verdict(path, app_id, version, tables)
        if verdict == "new":
            _create(conn)
        elif verdict == "old":
            _migrate(conn, version)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
