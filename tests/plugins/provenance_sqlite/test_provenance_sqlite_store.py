"""SqliteProvenance on real files: discovery, round trips, queries, refusals, migration."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest

from plait import NodeStatus, PluginHost, RunStatus, get_provenance
from plait.errors import ArgumentError, PlaitError, RunNotFoundError, StoreError
from plait.protocols import ProvenanceBackend
from plait.records import EdgeRecord, LogRecord, NodeRecord, RunRecord
from plait_provenance_sqlite import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    DagProvenance,
    NodeNotFoundError,
    SqliteProvenance,
)

FIXTURES = Path(__file__).parent / "fixtures"
T0 = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def run_record(run_id: str = "r1", **changes: Any) -> RunRecord:
    fields: dict[str, Any] = {
        "run_id": run_id,
        "dag_nsref": "pipelines:etl",
        "status": RunStatus.RUNNING,
        "started_at": at(0),
        "updated_at": at(0),
        "source_inputs": {"load": {"path": "/data/in.csv", "limit": 3}},
        "owner_pid": 4242,
        "owner_host": "box",
    }
    fields.update(changes)
    return RunRecord(**fields)


def node_record(label: str, status: str = "completed", run_id: str = "r1", **changes: Any):
    fields: dict[str, Any] = {
        "run_id": run_id,
        "label": label,
        "status": NodeStatus(status),
        "updated_at": at(changes.pop("t", 1)),
    }
    fields.update(changes)
    return NodeRecord(**fields)


def edge(up: str, down: str, run_id: str = "r1", **changes: Any) -> EdgeRecord:
    fields: dict[str, Any] = {
        "run_id": run_id,
        "upstream": up,
        "downstream": down,
        "parameter": "x",
        "traversed_at": at(2),
    }
    fields.update(changes)
    return EdgeRecord(**fields)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "prov.sqlite3"


# --------------------------------------------------------------------------- discovery
def test_plugin_is_installed(db: Path) -> None:
    info = PluginHost().backends("provenance")["sqlite"]
    assert info.distribution == "plait-provenance-sqlite"
    backend = get_provenance("sqlite", path=db, host=PluginHost())
    assert isinstance(backend, SqliteProvenance)
    assert isinstance(backend, ProvenanceBackend)
    assert backend.stores_values is True
    assert DagProvenance is SqliteProvenance


@pytest.mark.anyio
async def test_default_path_is_private_and_resolved_at_open(tmp_path: Path) -> None:
    backend = SqliteProvenance()  # XDG_DATA_HOME points into this test's home
    data_home = Path(os.environ["XDG_DATA_HOME"])
    assert not data_home.exists()  # noqa: ASYNC240
    async with backend:
        path = backend.path
        assert path == data_home / "plait" / "provenance.sqlite3"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE(data_home.stat().st_mode) == 0o700  # noqa: ASYNC240


@pytest.mark.anyio
async def test_str_path_and_reopen(db: Path) -> None:
    async with SqliteProvenance(str(db)) as prov:
        prov.write_run(run_record())
    async with SqliteProvenance(db) as prov:
        assert (await prov.get_run("r1")).dag_nsref == "pipelines:etl"
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        meta = dict(conn.execute("SELECT key, value FROM plait_meta"))
        assert meta["schema_version"] == str(SCHEMA_VERSION)
    finally:
        conn.close()


# --------------------------------------------------------------------------- round trips
@pytest.mark.anyio
async def test_records_round_trip(db: Path) -> None:
    run = run_record(
        status=RunStatus.FAILED,
        updated_at=at(9),
        finished_at=at(9),
        parent_run_id="p0",
        replay_of="r0",
        correlation_id="req-7",
        attempt=2,
        failed_node="load",
        error_type="ValueError",
        error_message="bad row 3",
        traceback="Traceback ...\nValueError: bad row 3",
    )
    node = node_record(
        "load",
        node_type="map",
        attempt=3,
        inputs={"path": "/data/in.csv", "opts": {"sep": ",", "cols": [1, 2]}},
        output={"rows": [[1, "a"], [2, None]], "ok": True, "ratio": 0.5},
        restorable=True,
        started_at=at(1),
        finished_at=at(1.5),
        duration_ms=500.25,
        executor="thread",
        host="box",
        pid=4242,
        worker="ThreadPoolExecutor-0_1",
        t=1.5,
    )
    failed = node_record(
        "save",
        "failed",
        error_type="OSError",
        error_message="disk full",
        traceback="Traceback\nOSError",
        t=3,
    )
    e = edge("load", "save", upstream_attempt=3, parameter=None)
    async with SqliteProvenance(db) as prov:
        prov.write_run(run)
        prov.write_nodes([node, failed])
        prov.write_edges([e])
        await prov.commit()
    async with SqliteProvenance(db) as prov:
        assert await prov.get_run("r1") == run
        assert await prov.get_node_executions("r1") == [node, failed]
        assert await prov.get_edge_traversals("r1") == [e]


@pytest.mark.anyio
async def test_later_record_of_an_execution_keeps_inputs_and_placement(db: Path) -> None:
    running = node_record(
        "a",
        "running",
        inputs={"x": 1},
        started_at=at(1),
        executor="inline",
        host="h",
        pid=7,
        worker="MainThread",
        t=1,
    )
    done = node_record("a", "completed", output=2, restorable=True, finished_at=at(2), t=2)
    async with SqliteProvenance(db) as prov:
        prov.write_run(run_record())
        prov.write_nodes([running])
        await prov.commit()
        prov.write_nodes([done])  # separate commit: merged in SQL
        await prov.commit()
        prov.write_nodes([attrs.evolve(running, label="b"), attrs.evolve(done, label="b")])
        await prov.commit()  # same batch: merged in memory
        for label in ("a", "b"):
            (got,) = [n for n in await prov.get_node_executions("r1") if n.label == label]
            assert got.inputs == {"x": 1}
            assert (got.executor, got.host, got.pid, got.worker) == ("inline", "h", 7, "MainThread")
            assert got.started_at == at(1)
            assert got.status == "completed"
            assert got.output == 2


@pytest.mark.anyio
@pytest.mark.parametrize("same_commit", [False, True])
async def test_a_run_another_store_wrote_is_updated_with_its_executions(
    db: Path, same_commit: bool
) -> None:
    """A store writing a run it did not create (a restart in another process) updates the
    stored run and its executions, alone or in one commit with a node."""
    async with SqliteProvenance(db) as first:
        first.write_run(run_record())
        first.write_nodes([node_record("a", "running", t=1)])
        await first.commit()
    async with SqliteProvenance(db) as second:
        second.write_run(run_record(status=RunStatus.COMPLETED, updated_at=at(3), attempt=2))
        if not same_commit:
            await second.commit()
        second.write_nodes([node_record("a", "completed", output=1, t=2)])
        second.write_nodes([node_record("b", "completed", t=2)])
        await second.commit()
        run = await second.get_run("r1")
        assert (run.status, run.attempt) == ("completed", 2)
        nodes = await second.get_node_executions("r1")
        assert [(n.label, n.status) for n in nodes] == [("a", "completed"), ("b", "completed")]
        changes = await second.status_history("r1")
        assert [(c.label, c.status) for c in changes if c.label is None] == [
            (None, "running"),
            (None, "completed"),
        ]


@pytest.mark.anyio
async def test_run_data_from_threads(db: Path) -> None:
    async with SqliteProvenance(db) as prov:
        prov.write_run(run_record())

        def worker(i: int) -> None:
            for j in range(50):
                prov.write_run_data("r1", f"k{i}-{j}", {"i": i, "j": j})

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        prov.write_run_data("r1", "k0-0", "overwritten")
        await prov.commit()
    async with SqliteProvenance(db) as prov:
        data = await prov.load_run_data("r1")
        assert len(data) == 200
        assert data["k0-0"] == "overwritten"
        assert data["k3-49"] == {"i": 3, "j": 49}
        assert await prov.load_run_data("nope") == {}


# --------------------------------------------------------------------------- history
@pytest.mark.anyio
async def test_status_history_keeps_every_transition(db: Path) -> None:
    async with SqliteProvenance(db) as prov:
        prov.write_run(run_record())
        prov.write_nodes([node_record("a", "pending", t=0.5)])
        await prov.commit()
        prov.write_nodes([node_record("a", "running", t=1)])
        prov.write_nodes([node_record("a", "running", t=1.1)])  # no transition: no entry
        prov.write_nodes([node_record("a", "failed", t=2)])
        prov.write_run(run_record(status=RunStatus.FAILED, updated_at=at(3)))
        await prov.commit()
        # restart: attempt 2 of the run and of the node
        prov.write_run(run_record(attempt=2, updated_at=at(4)))
        prov.write_nodes([node_record("a", "running", attempt=2, t=5)])
        prov.write_nodes([node_record("a", "completed", attempt=2, t=6)])
        prov.write_run(run_record(attempt=2, status=RunStatus.COMPLETED, updated_at=at(7)))
        await prov.commit()

        history = await prov.status_history("r1")
        assert [(c.label, c.attempt, c.status, c.at) for c in history] == [
            (None, 1, "running", at(0)),
            ("a", 1, "pending", at(0.5)),
            ("a", 1, "running", at(1)),
            ("a", 1, "failed", at(2)),
            (None, 1, "failed", at(3)),
            (None, 2, "running", at(4)),
            ("a", 2, "running", at(5)),
            ("a", 2, "completed", at(6)),
            (None, 2, "completed", at(7)),
        ]
        only_a = await prov.status_history("r1", "a")
        assert [c.status for c in only_a] == [
            "pending",
            "running",
            "failed",
            "running",
            "completed",
        ]
        attempts = await prov.get_node_attempts("r1", "a")
        assert [(n.attempt, n.status) for n in attempts] == [(1, "failed"), (2, "completed")]
    # the SQL view shows the same history to anyone with sqlite3
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute(
            "SELECT label, status FROM status_history WHERE run_id = 'r1' ORDER BY at"
        ).fetchall()
        assert len(rows) == 9
        assert rows[0] == (None, "running")
    finally:
        conn.close()


# --------------------------------------------------------------------------- queries
@pytest.mark.anyio
async def test_list_runs_filters(db: Path) -> None:
    async with SqliteProvenance(db) as prov:
        for i in range(6):
            prov.write_run(
                run_record(
                    f"r{i}",
                    started_at=at(i * 10),
                    updated_at=at(i * 10),
                    status=RunStatus.COMPLETED if i % 2 else RunStatus.FAILED,
                    dag_nsref="a:x" if i < 3 else "b:y",
                    parent_run_id="r0" if i == 5 else None,
                )
            )
        ids = lambda runs: [r.run_id for r in runs]  # noqa: E731
        assert ids(await prov.list_runs()) == ["r5", "r4", "r3", "r2", "r1", "r0"]
        assert ids(await prov.list_runs(status="completed")) == ["r5", "r3", "r1"]
        assert ids(await prov.list_runs(status=RunStatus.FAILED, dag_nsref="a:x")) == ["r2", "r0"]
        assert ids(await prov.list_runs(parent_run_id="r0")) == ["r5"]
        assert ids(await prov.list_runs(started_after=at(20), started_before=at(40))) == [
            "r3",
            "r2",
        ]
        assert ids(await prov.list_runs(limit=2)) == ["r5", "r4"]
        with pytest.raises(ValueError, match="timezone-aware"):
            await prov.list_runs(started_after=datetime(2026, 1, 1))
        with pytest.raises(ValueError, match="is not a run status"):
            await prov.list_runs(status="bogus")


@pytest.mark.anyio
async def test_node_output_pending_and_latest(db: Path) -> None:
    @attrs.frozen
    class Point:
        x: int
        y: tuple[int, int]

    async with SqliteProvenance(db) as prov:
        prov.write_run(run_record())
        prov.write_nodes(
            [
                node_record("a", output={"x": 1, "y": [2, 3]}, restorable=True, t=1),
                node_record("b", "failed", t=2),
                node_record("b", "completed", attempt=2, output=5, restorable=True, t=3),
                node_record("c", "running", t=4),
                node_record("d", "pending", t=5),
                node_record("e", "skipped", output=[1], restorable=True, t=6),
            ]
        )
        out = await prov.get_node_output("r1", "a")
        assert (out.output, out.restorable, out.status) == (
            {"x": 1, "y": [2, 3]},
            True,
            "completed",
        )
        typed = await prov.get_node_output("r1", "a", as_type=Point)
        assert typed.output == Point(x=1, y=(2, 3))
        assert (await prov.get_node_output("r1", "b")).attempt == 2
        latest = await prov.get_node_executions("r1")
        assert [(n.label, n.attempt) for n in latest] == [
            ("a", 1),
            ("b", 2),
            ("c", 1),
            ("d", 1),
            ("e", 1),
        ]
        pending = await prov.get_pending_nodes("r1")
        assert [n.label for n in pending] == ["c", "d"]
        with pytest.raises(NodeNotFoundError, match="'zz'"):
            await prov.get_node_output("r1", "zz")


@pytest.mark.anyio
async def test_unknown_run_ids_are_named(db: Path) -> None:
    async with SqliteProvenance(db) as prov:
        for query in (
            prov.get_run,
            prov.get_node_executions,
            prov.get_pending_nodes,
            prov.get_edge_traversals,
            prov.status_history,
        ):
            with pytest.raises(RunNotFoundError, match="'no-such-run'"):
                await query("no-such-run")
        with pytest.raises(RunNotFoundError, match="'no-such-run'"):
            await prov.lineage("no-such-run", "a")
        with pytest.raises(RunNotFoundError, match="'no-such-run'"):
            await prov.get_node_output("no-such-run", "a")


@pytest.mark.anyio
async def test_edges_and_lineage(db: Path) -> None:
    #   src -> left  -> join -> sink
    #   src -> right -/          other (unrelated)
    async with SqliteProvenance(db) as prov:
        prov.write_run(run_record())
        prov.write_nodes([node_record("src", output=1, t=1), node_record("other", t=1)])
        await prov.commit()
        # edges recorded with their downstream's records (inline)...
        prov.write_nodes([node_record("left", t=2), node_record("right", t=2)])
        prov.write_edges([edge("src", "left", traversed_at=at(2)), edge("src", "right")])
        await prov.commit()
        # ...with their upstream's record only...
        prov.write_nodes([node_record("join", "failed", t=3)])
        prov.write_edges(
            [edge("left", "join", parameter="a"), edge("right", "join", parameter="b")]
        )
        await prov.commit()
        # ...and with neither (a "loose" edge, stored in edge_traversals)
        prov.write_edges(
            [
                edge("left", "join", downstream_attempt=2, parameter="a", traversed_at=at(4)),
                edge("right", "join", downstream_attempt=2, parameter="b", traversed_at=at(4)),
            ]
        )
        await prov.commit()
        prov.write_nodes([node_record("join", attempt=2, t=5), node_record("sink", t=6)])
        prov.write_edges([edge("join", "sink", upstream_attempt=2, traversed_at=at(6))])
        await prov.commit()

        edges = await prov.get_edge_traversals("r1")
        assert len(edges) == 7
        assert edges[-1] == edge("join", "sink", upstream_attempt=2, traversed_at=at(6))

        lineage = await prov.lineage("r1", "sink")
        assert [(n.label, n.attempt) for n in lineage] == [
            ("join", 2),
            ("left", 1),
            ("right", 1),
            ("src", 1),
        ]
        assert [n.label for n in await prov.lineage("r1", "left")] == ["src"]
        assert await prov.lineage("r1", "src") == []
        with pytest.raises(NodeNotFoundError, match="'nope'"):
            await prov.lineage("r1", "nope")
    conn = sqlite3.connect(db)
    try:
        count = conn.execute(
            "SELECT count(*) FROM all_edge_traversals WHERE run_id = 'r1'"
        ).fetchone()[0]
        assert count == 7
    finally:
        conn.close()


# --------------------------------------------------------------------------- export, purge
@pytest.mark.anyio
async def test_iter_runs_and_history_in_batches(db: Path) -> None:
    async with SqliteProvenance(db) as prov:
        for i in range(25):
            prov.write_run(run_record(f"r{i:02}", started_at=at(i), updated_at=at(i)))
            prov.write_nodes([node_record("n", run_id=f"r{i:02}", t=i + 0.5)])
        batches = [b async for b in prov.iter_runs(at(3), at(20), batch_size=5)]
        assert [len(b) for b in batches] == [5, 5, 5, 2]
        assert [r.run_id for b in batches for r in b] == [f"r{i:02}" for i in range(3, 20)]
        everything = [b async for b in prov.iter_runs(batch_size=100)]
        assert len(everything) == 1 and len(everything[0]) == 25

        history = [b async for b in prov.iter_history(at(10), at(12), batch_size=3)]
        assert [len(b) for b in history] == [3, 1]
        assert [(c.run_id, c.label) for b in history for c in b] == [
            ("r10", None),
            ("r10", "n"),
            ("r11", None),
            ("r11", "n"),
        ]
        total = sum([len(b) async for b in prov.iter_history(batch_size=7)])
        assert total == 50
        with pytest.raises(ValueError, match="batch_size"):
            [b async for b in prov.iter_runs(batch_size=0)]


@pytest.mark.anyio
async def test_purge_keeps_every_run_of_a_tree_that_is_still_running(db: Path) -> None:
    """A finished sub-run (a completed map element) of a running run is not purged: a
    restart after a crash needs it. Sub-runs go only with their top-level run."""
    now = datetime.now(UTC)
    specs = [
        ("live", RunStatus.RUNNING, None),
        ("live-el-0", RunStatus.COMPLETED, "live"),
        ("live-el-1", RunStatus.FAILED, "live"),
        ("done", RunStatus.COMPLETED, None),
        ("done-el", RunStatus.COMPLETED, "done"),
        ("done-el-el", RunStatus.COMPLETED, "done-el"),
        ("stuck", RunStatus.FAILED, None),
        ("stuck-el", RunStatus.RUNNING, "stuck"),  # a sub-run left running: keep the tree
        ("orphan", RunStatus.COMPLETED, "gone"),  # its parent was deleted by hand
    ]
    async with SqliteProvenance(db) as prov:
        for run_id, status, parent in specs:
            prov.write_run(
                run_record(
                    run_id, started_at=now, updated_at=now, status=status, parent_run_id=parent
                )
            )
            prov.write_nodes([node_record("a", run_id=run_id)])
        assert await prov.purge(status="completed") == 4  # done (+2 below it), orphan
        remaining = {r.run_id for r in await prov.list_runs()}
        assert remaining == {"live", "live-el-0", "live-el-1", "stuck", "stuck-el"}
        assert await prov.purge() == 0
        assert await prov.purge(status="failed") == 0  # stuck's tree is not finished
        (node,) = await prov.get_node_executions("live-el-0")
        assert node.status == "completed"
        assert await prov.purge(status="running") == 3  # asked for: the live tree goes


@pytest.mark.anyio
@pytest.mark.parametrize("age", [timedelta(days=-1), timedelta(microseconds=-1)])
async def test_purge_refuses_a_negative_age(db: Path, age: timedelta) -> None:
    async with SqliteProvenance(db) as prov:
        prov.write_run(run_record("r1", status=RunStatus.COMPLETED))
        with pytest.raises(ArgumentError, match="older_than") as info:
            await prov.purge(older_than=age)
        assert isinstance(info.value, PlaitError)
        assert isinstance(info.value, ValueError)
        assert [r.run_id for r in await prov.list_runs()] == ["r1"]
        assert await prov.purge(older_than=timedelta(0)) == 1


@pytest.mark.anyio
async def test_purge(db: Path) -> None:
    now = datetime.now(UTC)
    async with SqliteProvenance(db) as prov:
        specs = [
            ("old-done", 30, RunStatus.COMPLETED, None),
            ("old-child", 30, RunStatus.COMPLETED, "old-done"),
            ("old-failed", 30, RunStatus.FAILED, None),
            ("old-running", 30, RunStatus.RUNNING, None),
            ("new-done", 0, RunStatus.COMPLETED, None),
        ]
        for run_id, days, status, parent in specs:
            started = now - timedelta(days=days)
            prov.write_run(
                run_record(
                    run_id,
                    started_at=started,
                    updated_at=started,
                    status=status,
                    parent_run_id=parent,
                )
            )
            prov.write_nodes([node_record("a", run_id=run_id)])
            prov.write_edges([edge("a", "b", run_id=run_id)])
            prov.write_run_data(run_id, "k", 1)
        assert await prov.purge(older_than=timedelta(days=7), status="failed") == 1
        assert await prov.purge(older_than=now - timedelta(days=7)) == 2  # + its sub-run
        remaining = {r.run_id for r in await prov.list_runs()}
        assert remaining == {"old-running", "new-done"}  # running runs are kept
        with pytest.raises(RunNotFoundError):
            await prov.get_node_executions("old-done")
        assert await prov.load_run_data("old-child") == {}
        assert await prov.purge(status="running") == 1
        assert await prov.purge() == 1
        assert await prov.list_runs() == []
    conn = sqlite3.connect(db)
    try:
        for table in ("runs", "node_executions", "edge_traversals", "run_data"):
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0
    finally:
        conn.close()


# --------------------------------------------------------------------------- refusals
def _foreign_sqlite(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    conn.execute("INSERT INTO invoices (total) VALUES (9.5)")
    conn.commit()
    conn.close()


def _newer_schema(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE plait_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    for table in ("runs", "node_executions", "edge_traversals"):
        conn.execute(f"CREATE TABLE {table} (x)")
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_bytes(os.urandom(4096)), "not a SQLite database"),
        (lambda p: p.write_text("name,total\nwidget,3\n"), "not a SQLite database"),
        (_foreign_sqlite, "not a plait provenance store"),
        (_newer_schema, f"schema version {SCHEMA_VERSION + 1}"),
    ],
    ids=["random-bytes", "text-file", "foreign-sqlite", "newer-schema"],
)
async def test_refuses_files_that_are_not_ours(db: Path, make: Any, message: str) -> None:
    make(db)
    before = sha256(db)
    siblings = sorted(p.name for p in db.parent.iterdir())
    prov = SqliteProvenance(db)
    with pytest.raises(StoreError, match=message) as info:
        await prov.open()
    assert str(db) in str(info.value)
    with pytest.raises(StoreError):  # queries open on demand, and refuse the same way
        await prov.list_runs()
    prov.write_run(run_record())
    with pytest.raises(StoreError):
        await prov.commit()
    assert sha256(db) == before
    assert sorted(p.name for p in db.parent.iterdir()) == siblings  # no -wal, no -shm
    await prov.aclose()


@pytest.mark.anyio
async def test_refuses_a_directory(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="is a directory") as info:
        await SqliteProvenance(tmp_path).open()
    assert str(tmp_path) in str(info.value)
    assert list(tmp_path.iterdir()) == []  # noqa: ASYNC240


# --------------------------------------------------------------------------- migration
@pytest.mark.anyio
async def test_migrates_a_version_1_file(db: Path) -> None:
    conn = sqlite3.connect(db)
    conn.executescript((FIXTURES / "schema_v1.sql").read_text())
    conn.close()
    async with SqliteProvenance(db) as prov:
        run = await prov.get_run("v1-run")
        assert run.status == "completed" and run.source_inputs == {"a": {"n": 2}}
        nodes = await prov.get_node_executions("v1-run")
        assert [(n.label, n.status, n.output, n.restorable) for n in nodes] == [
            ("a", "completed", 4, True),
            ("b", "failed", None, False),
        ]
        assert [(c.label, c.status) for c in await prov.status_history("v1-run")] == [
            ("a", "completed"),
            ("b", "failed"),
            (None, "completed"),
        ]
        assert [(e.upstream, e.downstream) for e in await prov.get_edge_traversals("v1-run")] == [
            ("a", "b")
        ]
        # new features work on the migrated file
        prov.write_run_data("v1-run", "k", [1])
        prov.write_nodes([node_record("b", run_id="v1-run", attempt=2, worker="w1", t=99)])
        assert await prov.load_run_data("v1-run") == {"k": [1]}
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        meta = dict(conn.execute("SELECT key, value FROM plait_meta"))
        assert meta["schema_version"] == str(SCHEMA_VERSION)
    finally:
        conn.close()


@pytest.mark.anyio
async def test_migrates_a_version_2_file(db: Path) -> None:
    # made by the version 2 release itself (see the fixture's header)
    conn = sqlite3.connect(db)
    conn.executescript((FIXTURES / "schema_v2.sql").read_text())
    conn.close()
    async with SqliteProvenance(db) as prov:
        run = await prov.get_run("v2-run")
        assert (run.status, run.failed_node, run.correlation_id) == ("failed", "c", "corr-1")
        nodes = await prov.get_node_executions("v2-run")
        assert [(n.label, n.status, n.output, n.restorable, n.worker) for n in nodes] == [
            ("a", "completed", 4, True, "w-1"),
            ("b", "completed", {"k": [1, 2]}, True, "MainThread"),
            ("c", "pending", None, False, None),
        ]
        assert [(c.label, c.status) for c in await prov.status_history("v2-run")] == [
            (None, "running"),
            ("a", "running"),
            ("a", "completed"),
            ("b", "running"),
            ("b", "completed"),
            (None, "failed"),  # at the same moment as c's: the run's change comes first
            ("c", "pending"),
        ]
        edges = await prov.get_edge_traversals("v2-run")
        assert [(e.upstream, e.downstream, e.parameter) for e in edges] == [
            ("a", "b", "x"),
            ("a", "c", None),
        ]
        assert [n.label for n in await prov.lineage("v2-run", "b")] == ["a"]
        assert await prov.load_run_data("v2-run") == {"token": {"v": 7}}
        (sub,) = await prov.list_runs(parent_run_id="v2-run")
        assert (sub.run_id, sub.status) == ("v2-sub", "failed")
        assert [n.error_type for n in await prov.get_pending_nodes("v2-sub")] == ["ValueError"]
        # the migrated runs keep working: a restart's new attempt lands in the run's range
        prov.write_nodes([node_record("c", run_id="v2-run", attempt=2, node_type="map", t=99)])
        prov.write_run(run_record("v3-run"))
        prov.write_nodes([node_record("x", run_id="v3-run")])
        latest = {n.label: n.attempt for n in await prov.get_node_executions("v2-run")}
        assert latest == {"a": 1, "b": 1, "c": 2}
        assert [n.label for n in await prov.get_node_executions("v3-run")] == ["x"]
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        assert not {"runs_v2", "node_executions_v2"} & tables
        # every row sits in its run's range
        strays = conn.execute(
            "SELECT count(*) FROM node_executions AS n JOIN runs AS r USING (run_id) "
            "WHERE n.row_no >> 32 != r.run_no"
        ).fetchone()[0]
        assert strays == 0
    finally:
        conn.close()


@pytest.mark.anyio
async def test_migrates_the_version_3_release_file_through_4_to_5(db: Path) -> None:
    # made by the version 3 release itself (see the fixture's header)
    conn = sqlite3.connect(db)
    conn.executescript((FIXTURES / "schema_v3.sql").read_text())
    conn.close()
    async with SqliteProvenance(db) as prov:
        run = await prov.get_run("v3-run")
        # what version 3 knew is kept; the new fields have their defaults
        assert (run.status, run.failed_node, run.owner_pid) == ("failed", "b", 7)
        assert (run.dag_ref, run.resumed_at, run.earlier_ms) == (None, None, 0.0)
        assert run.owner_started == ""
        assert run.work_ms() == 5000.0
        nodes = await prov.get_node_executions("v3-run")
        assert [(n.label, n.status, n.output) for n in nodes] == [
            ("a", "completed", [0, 1]),
            ("b", "failed", None),
        ]
        assert [n.label for n in await prov.lineage("v3-run", "b")] == ["a"]
        assert await prov.load_run_data("v3-run") == {"token": {"v": 3}}
        assert await prov.get_logs("v3-run") == []
        # the migrated run takes log lines and the new run fields
        line = LogRecord(
            run_id="v3-run",
            label="b",
            attempt=2,
            seq=0,
            at=datetime(2026, 1, 2, tzinfo=UTC),
            level=20,
            logger="pkg",
            message="retrying b",
        )
        prov.write_logs([line])
        prov.write_run(attrs.evolve(run, dag_ref="pipe:dag", earlier_ms=5000.0, attempt=2))
        await prov.commit()
        assert await prov.get_logs("v3-run", label="b") == [line]
        assert (await prov.get_run("v3-run")).dag_ref == "pipe:dag"
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 5
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        meta = dict(conn.execute("SELECT key, value FROM plait_meta"))
        assert meta["schema_version"] == "5"
    finally:
        conn.close()


@pytest.mark.anyio
async def test_migrates_a_version_3_file(db: Path) -> None:
    """Version 4 adds the owner's start token; runs recorded before have none ('')."""
    from plait_provenance_sqlite import _schema

    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("BEGIN")
    for statement in _schema.CREATE_V3:  # what the version 3 release created
        conn.execute(statement)
    conn.execute("INSERT INTO plait_meta VALUES ('schema_version', '3')")
    conn.execute(
        "INSERT INTO runs (run_id, dag_nsref, status, started_at, updated_at, owner_pid, "
        "owner_host, history) VALUES ('v3-run', 'm:d', 'failed', 1, 2, 77, 'box', "
        '\'["running",1,1],["failed",2,1]\')'
    )
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute("PRAGMA user_version = 3")
    conn.execute("COMMIT")
    conn.close()
    async with SqliteProvenance(db) as prov:
        run = await prov.get_run("v3-run")
        assert (run.owner_pid, run.owner_host, run.owner_started) == (77, "box", "")
        prov.write_run(run_record("v4-run", owner_started="linux:b:9"))
        assert (await prov.get_run("v4-run")).owner_started == "linux:b:9"
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()


@pytest.mark.anyio
async def test_log_lines_are_purged_with_their_run(db: Path) -> None:
    async with SqliteProvenance(db) as prov:
        for run_id, started in (("old", 0), ("kept", 10_000)):
            prov.write_run(
                run_record(
                    run_id,
                    status=RunStatus.COMPLETED,
                    started_at=at(started),
                    updated_at=at(started),
                )
            )
            prov.write_logs(
                [
                    LogRecord(
                        run_id=run_id,
                        label="a",
                        seq=0,
                        at=datetime(2026, 1, 2, tzinfo=UTC),
                        level=20,
                        logger="pkg",
                        message=f"line of {run_id}",
                    )
                ]
            )
        await prov.commit()
        assert await prov.purge(older_than=at(5000)) == 1
        assert await prov.get_logs("old") == []
        assert [x.message for x in await prov.get_logs("kept")] == ["line of kept"]


@pytest.mark.anyio
async def test_node_records_of_a_run_never_written_are_refused_naming_it(db: Path) -> None:
    async with SqliteProvenance(db) as prov:
        prov.write_run(run_record("r1"))
        await prov.commit()
        prov.write_nodes([node_record("a"), node_record("ghost-node", run_id="ghost")])
        with pytest.raises(StoreError, match=r"'ghost'.*no run record"):
            await prov.commit()
        # the orphan records are dropped; the rest of the batch is kept and lands
        await prov.commit()
        assert [n.label for n in await prov.get_node_executions("r1")] == ["a"]
        with pytest.raises(RunNotFoundError, match="'ghost'"):
            await prov.get_node_executions("ghost")
