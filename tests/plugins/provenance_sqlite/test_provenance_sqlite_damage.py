"""A damaged store raises StoreError naming the file (and the run or node read), never a raw
JSONDecodeError, UnicodeDecodeError, ValueError or sqlite3.DatabaseError.

Two kinds of damage: values made wrong inside a sound SQLite file (what a bad hand edit or a
bug of another writer leaves), and files cut short or with bytes flipped (a seeded loop over
damaged copies of one real store).
"""

from __future__ import annotations

import random
import shutil
import sqlite3
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from plait.errors import PlaitError, StoreError
from plait.records import EdgeRecord, NodeRecord, NodeStatus, RunRecord, RunStatus
from plait_provenance_sqlite import SqliteProvenance

T0 = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


async def write_sample(path: Path) -> None:
    """Runs with nodes (inputs, outputs, history), edges inline and loose, data, a sub-run."""
    async with SqliteProvenance(path) as prov:
        for n in range(3):
            run_id = f"run-{n}"
            t = T0 + timedelta(minutes=n)
            prov.write_run(
                RunRecord(
                    run_id=run_id,
                    dag_nsref="m:dag",
                    status=RunStatus.RUNNING,
                    started_at=t,
                    updated_at=t,
                    source_inputs={"a": {"x": n, "s": "é"}},
                )
            )
            for i, label in enumerate(("a", "b", "c")):
                prov.write_nodes(
                    [
                        NodeRecord(
                            run_id=run_id,
                            label=label,
                            status=NodeStatus.RUNNING,
                            updated_at=t,
                            started_at=t,
                            inputs={"x": [i, "ü" * 40]},
                        )
                    ]
                )
                prov.write_nodes(
                    [
                        NodeRecord(
                            run_id=run_id,
                            label=label,
                            status=NodeStatus.COMPLETED,
                            updated_at=t,
                            finished_at=t,
                            output={"v": i, "t": "x" * 300},
                            restorable=True,
                        )
                    ]
                )
                await prov.commit()
            prov.write_edges(
                [
                    EdgeRecord(
                        run_id=run_id, upstream="a", downstream="b", parameter="x", traversed_at=t
                    ),
                    EdgeRecord(
                        run_id=run_id, upstream="z", downstream="y", parameter=None, traversed_at=t
                    ),
                ]
            )
            prov.write_run_data(run_id, "k", {"n": n})
            prov.write_run(
                RunRecord(
                    run_id=run_id,
                    dag_nsref="m:dag",
                    status=RunStatus.COMPLETED,
                    started_at=t,
                    updated_at=t,
                    finished_at=t,
                    parent_run_id="run-0" if n == 2 else None,
                )
            )
            await prov.commit()


READS: list[tuple[str, Callable[[SqliteProvenance], Awaitable[Any]]]] = [
    ("get_run", lambda p: p.get_run("run-1")),
    ("list_runs", lambda p: p.list_runs()),
    ("get_node_executions", lambda p: p.get_node_executions("run-1")),
    ("get_node_attempts", lambda p: p.get_node_attempts("run-1", "b")),
    ("get_node_output", lambda p: p.get_node_output("run-1", "b")),
    ("get_pending_nodes", lambda p: p.get_pending_nodes("run-1")),
    ("get_edge_traversals", lambda p: p.get_edge_traversals("run-1")),
    ("lineage", lambda p: p.lineage("run-1", "b")),
    ("status_history", lambda p: p.status_history("run-1")),
    ("load_run_data", lambda p: p.load_run_data("run-1")),
    ("iter_runs", lambda p: _collect(p.iter_runs(batch_size=2))),
    ("iter_history", lambda p: _collect(p.iter_history(batch_size=5))),
]


async def _collect(pages: Any) -> list[Any]:
    return [page async for page in pages]


async def read_everything(path: Path) -> list[BaseException]:
    """Every read of the API on ``path``; the errors they raised (PlaitErrors only, or the
    test fails with the raw one)."""
    raised: list[BaseException] = []
    prov = SqliteProvenance(path, timeout=1.0)
    try:
        for _name, read in READS:
            try:
                await read(prov)
            except PlaitError as exc:
                raised.append(exc)
    finally:
        try:
            await prov.aclose()
        except PlaitError as exc:
            raised.append(exc)
    return raised


# value damage: (table, column, SQL value, which run's rows), each read must name the file
VALUE_DAMAGE = [
    ("node_executions", "output", "'{\"v\": '", "truncated JSON"),
    ("node_executions", "inputs", "CAST(x'7b2278223affff7d' AS TEXT)", "invalid UTF-8"),
    ("node_executions", "history", "'[1,2'", "broken history list"),
    ("node_executions", "history", "'\"x\"'", "history entry of the wrong shape"),
    ("node_executions", "edges", "'[\"a\"]'", "edge entry of the wrong shape"),
    ("node_executions", "status", "'exploded'", "unknown status"),
    ("node_executions", "updated_at", "'yesterday'", "text for a time"),
    ("node_executions", "started_at", "9223372036854775807", "time out of range"),
    ("runs", "source_inputs", "'{\"a\":'", "truncated JSON"),
    ("runs", "status", "'bogus'", "unknown status"),
    ("runs", "history", "'[\"running\", 1]'", "history entry of the wrong shape"),
    ("runs", "started_at", "x'00ff'", "a blob for a time"),
    ("run_data", "value", "'{nope}'", "broken JSON"),
    ("edge_traversals", "traversed_at", "'soon'", "text for a time"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("table", "column", "value", "_why"),
    VALUE_DAMAGE,
    ids=[f"{d[0]}.{d[1]}-{d[3]}" for d in VALUE_DAMAGE],
)
async def test_a_damaged_value_is_a_store_error_naming_the_file(
    tmp_path: Path, table: str, column: str, value: str, _why: str
) -> None:
    db = tmp_path / "prov.sqlite3"
    await write_sample(db)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute(f"UPDATE {table} SET {column} = {value}")
    conn.close()
    raised = await read_everything(db)
    assert raised, "a damaged value went unnoticed by every read"
    for exc in raised:
        assert isinstance(exc, StoreError), repr(exc)
        assert str(db) in str(exc)
    # a read of one run names it
    named = [str(e) for e in raised if "run 'run-1'" in str(e) or "the runs" in str(e)]
    assert named, [str(e) for e in raised]


def _damaged_copy(source: bytes, rng: random.Random, target: Path) -> str:
    data = bytearray(source)
    if rng.random() < 0.3:
        cut = rng.randrange(0, len(data))
        target.write_bytes(bytes(data[:cut]))
        return f"cut at {cut}"
    flips = rng.randint(1, 24)
    for _ in range(flips):
        at = rng.randrange(0, len(data))
        data[at] ^= 1 << rng.randrange(8)
    target.write_bytes(bytes(data))
    return f"{flips} bits flipped"


@pytest.mark.slow
@pytest.mark.anyio
async def test_cut_and_bit_flipped_copies_raise_only_store_errors(tmp_path: Path) -> None:
    sound = tmp_path / "sound.sqlite3"
    await write_sample(sound)
    source = sound.read_bytes()
    rng = random.Random(20261201)
    kinds: dict[str, int] = {}
    for n in range(150):
        copy = tmp_path / f"damaged-{n}.sqlite3"
        how = _damaged_copy(source, rng, copy)
        try:
            raised = await read_everything(copy)
        except BaseException as exc:  # anything but a PlaitError escaped
            raise AssertionError(f"copy {n} ({how}): {exc!r}") from exc
        for exc in raised:
            kinds[type(exc).__name__] = kinds.get(type(exc).__name__, 0) + 1
            if isinstance(exc, StoreError):
                assert str(copy) in str(exc), (how, str(exc))
        for sibling in copy.parent.glob(f"{copy.name}*"):
            sibling.unlink()
    assert kinds.get("StoreError", 0) > 50, kinds  # the damage was seen, and reported
    shutil.rmtree(tmp_path, ignore_errors=True)
