"""The row codec: every record field has a column, the columns are the ones on disk, and a
record comes back from its row unchanged."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest

from plait import NodeStatus, RunStatus
from plait.records import EdgeRecord, LogRecord, NodeRecord, RunRecord
from plait_provenance_sqlite import SqliteProvenance
from plait_provenance_sqlite.codec import (
    EDGES,
    LOGS,
    NODES,
    NOT_STORED,
    RUN_DATA,
    RUNS,
    Column,
    Kind,
    Table,
    edge_entry,
    edge_row,
    history_entry,
)

T0 = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
TABLES = {RunRecord: RUNS, NodeRecord: NODES, EdgeRecord: EDGES, LogRecord: LOGS}


def fields_without_column(record: type, table: Table) -> list[str]:
    """Fields of ``record`` that ``table`` does not store and NOT_STORED does not explain."""
    unexplained = NOT_STORED.get(record, {})
    return [
        f.name
        for f in attrs.fields(record)
        if f.name not in table.stored_fields and not unexplained.get(f.name)
    ]


@pytest.mark.parametrize("record", list(TABLES), ids=lambda r: r.__name__)
def test_every_record_field_has_a_column(record: type) -> None:
    assert fields_without_column(record, TABLES[record]) == []
    # a field listed as not stored has no column, and says why
    for name, reason in NOT_STORED[record].items():
        assert name not in TABLES[record].stored_fields, name
        assert reason.strip(), name


def test_a_field_without_a_column_is_found() -> None:
    """The check above fails for a table that forgets a field."""
    columns = [c for c in NODES.columns if c.name != "worker"]
    short = Table("node_executions", columns, record=NodeRecord, enums={"status": NodeStatus})
    assert fields_without_column(NodeRecord, short) == ["worker"]

    @attrs.frozen(kw_only=True)
    class Wider(NodeRecord):
        priority: int = 0

    assert fields_without_column(Wider, NODES) == ["priority"]


def test_a_column_for_a_field_the_record_lacks_is_refused() -> None:
    with pytest.raises(
        ValueError, match=r"t: columns name fields EdgeRecord does not have: \['nope'\]"
    ):
        Table("t", [Column("run_id"), Column("nope")], record=EdgeRecord)


@pytest.mark.anyio
async def test_columns_are_the_tables_on_disk(tmp_path: Path) -> None:
    async with SqliteProvenance(tmp_path / "p.sqlite3"):
        pass
    conn = sqlite3.connect(tmp_path / "p.sqlite3")
    try:
        for table in (RUNS, NODES, EDGES, RUN_DATA, LOGS):
            on_disk = [name for _, name, *_ in conn.execute(f"PRAGMA table_info({table.name})")]
            # run_no / row_no number rows; the store computes them, records do not hold them
            on_disk = [n for n in on_disk if n not in ("run_no", "row_no")]
            assert sorted(on_disk) == sorted(c.name for c in table.columns), table.name
    finally:
        conn.close()


def run() -> RunRecord:
    return RunRecord(
        run_id="r1",
        dag_nsref="pipelines:etl",
        status=RunStatus.FAILED,
        started_at=T0,
        updated_at=T0 + timedelta(seconds=2),
        finished_at=T0 + timedelta(seconds=3),
        source_inputs={"load": {"path": "/in.csv"}},
        parent_run_id="r0",
        replay_of="rx",
        correlation_id="c-1",
        attempt=3,
        owner_pid=99,
        owner_host="box",
        failed_node="load",
        error_type="ValueError",
        error_message="bad",
        traceback="tb",
        dag_ref="pipelines:etl",
        resumed_at=T0 + timedelta(seconds=1),
        earlier_ms=250.5,
    )


def log_line() -> LogRecord:
    return LogRecord(
        run_id="r1",
        label="load",
        attempt=2,
        seq=7,
        at=T0,
        level=30,
        logger="pkg.load",
        message="slow: ü",
        exc_text="Traceback ...",
    )


def node(**changes: Any) -> NodeRecord:
    fields: dict[str, Any] = {
        "run_id": "r1",
        "label": "load",
        "status": NodeStatus.COMPLETED,
        "updated_at": T0 + timedelta(seconds=2),
        "node_type": "map",
        "attempt": 2,
        "inputs": {"x": [1, 2]},
        "output": {"y": "é"},
        "restorable": True,
        "started_at": T0,
        "finished_at": T0 + timedelta(seconds=1),
        "duration_ms": 1000.5,
        "executor": "thread",
        "host": "box",
        "pid": 7,
        "worker": "w-1",
        "error_type": "E",
        "error_message": "m",
        "traceback": "t",
    }
    fields.update(changes)
    return NodeRecord(**fields)


def edge() -> EdgeRecord:
    return EdgeRecord(
        run_id="r1",
        upstream="a",
        downstream="b",
        parameter="x",
        traversed_at=T0,
        upstream_attempt=2,
        downstream_attempt=3,
    )


@pytest.mark.parametrize(
    ("table", "record"),
    [
        (RUNS, run()),
        (NODES, node()),
        (NODES, node(inputs=None, output=None, started_at=None, finished_at=None)),
        (EDGES, edge()),
        (LOGS, log_line()),
    ],
    ids=["run", "node", "node-empty", "edge", "log"],
)
def test_record_round_trips_through_its_row(table: Table, record: Any) -> None:
    row = table.encode(record)
    assert len(row) == len(table.columns) - len(table.lists)
    assert table.decode(row) == record
    # every field set differs from its default, so every column was read back
    for f in attrs.fields(type(record)):
        if f.name in table.stored_fields:
            assert getattr(table.decode(row), f.name) == getattr(record, f.name)


def test_rows_store_times_as_microseconds() -> None:
    moment = node(finished_at=T0 + timedelta(seconds=2))  # the same moment as updated_at
    row = NODES.encode(moment)
    updated = row[NODES.at["updated_at"]]
    assert updated == int((T0 + timedelta(seconds=2)).timestamp()) * 1_000_000 + 678901
    assert row[NODES.at["finished_at"]] == updated
    assert row[NODES.at["recorded_at"]] == updated
    assert row[NODES.at["started_at"]] == updated - 2_000_000
    assert NODES.columns[NODES.at["recorded_at"]].kind is Kind.TIME


def test_history_entries_are_compact_json() -> None:
    # the format version 3 files hold (the views read it with json_extract)
    assert history_entry("completed", 123) == '["completed",123]'
    assert history_entry("running", 5, 2) == '["running",5,2]'
    assert history_entry('we"ird', 1) == '["we\\"ird",1]'


def test_generated_sql_names_each_column() -> None:
    update = NODES.update_by_number("row_no")
    # keys are checked, the first record's time is kept, placement kept if none
    assert "WHERE row_no = ?23 AND ?1 = run_id AND ?2 = label AND ?3 = attempt" in update
    assert "recorded_at" not in update
    assert "inputs = ifnull(?8, inputs)" in update
    assert "worker = ifnull(?17, worker)" in update
    upsert = RUNS.upsert()
    assert upsert.startswith(f"INSERT INTO runs ({RUNS.names}) VALUES (")
    assert "ON CONFLICT (run_id) DO UPDATE SET dag_nsref = excluded.dag_nsref" in upsert


def test_an_edge_entry_is_its_row_without_the_run_id() -> None:
    entry = edge_entry(edge())
    assert entry == '["a",2,"b",3,"x",' + str(EDGES.encode(edge())[-1]) + "]"
    assert list(edge_row("r1", json.loads(entry))) == EDGES.encode(edge())
    assert EDGES.decode(edge_row("r1", json.loads(entry))) == edge()
