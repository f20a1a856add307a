"""The WAL stays bounded under a long-lived runner; ``synchronous`` chooses what survives."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from plait import Dag, DagRunner, inline
from plait.errors import ArgumentError, PlaitError
from plait.plugins import PluginHost, get_cache, get_provenance
from plait_provenance_sqlite import SqliteProvenance, store

try:
    from plait_cache_sqlite import SqliteCache
except ImportError:  # the provenance plugin tested alone (nox -s plugin-isolated)
    SqliteCache = None  # type: ignore[assignment,misc]

needs_cache = pytest.mark.skipif(SqliteCache is None, reason="plait-cache-sqlite not installed")


def big_outputs_dag() -> Dag:
    dag = Dag("wal")
    prev = None
    for i in range(10):
        size = 3_000 + 1_700 * i  # 3 to 18 KB: each commit is several pages

        def step(text: str, size: int = size) -> str:
            return (text + "x" * size)[:size]

        step.__name__ = step.__qualname__ = f"s{i}"
        node = dag.node(inline(step), label=f"s{i}")
        if prev is not None:
            prev >> node
        prev = node
    return dag


@pytest.mark.anyio
async def test_the_wal_is_checkpointed_by_size_under_a_long_lived_runner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    limit = 2**20  # the same rule as the 16 MB default, at a size a test reaches quickly
    monkeypatch.setattr(store, "WAL_LIMIT", limit)
    db = tmp_path / "prov.sqlite3"
    wal = db.with_name(db.name + "-wal")
    largest = 0
    async with DagRunner(big_outputs_dag(), provenance=SqliteProvenance(db)) as runner:
        for i in range(60):  # 600 node commits, about 6 MB of outputs
            result = await runner.run({"s0": {"text": str(i)}})
            assert result.status == "completed"
            largest = max(largest, wal.stat().st_size)
    # at most one look (WAL_CHECK_EVERY commits of up to 8 frames: an 18 KB row's pages,
    # the b-tree pages above them) past the limit; unbounded it would pass 6 MB
    slack = store.WAL_CHECK_EVERY * 8 * (4096 + 24)
    assert limit < largest <= limit + slack, largest
    assert db.stat().st_size > 5 * limit  # the outputs did reach the database


@pytest.mark.anyio
@needs_cache
@pytest.mark.parametrize(("synchronous", "level"), [("normal", 1), ("full", 2)])
async def test_synchronous_sets_the_store_and_the_cache(
    tmp_path: Path, synchronous: str, level: int, host: PluginHost
) -> None:
    prov = get_provenance("sqlite", host=host, path=tmp_path / "p.db", synchronous=synchronous)
    assert isinstance(prov, SqliteProvenance) and prov.synchronous == synchronous
    async with prov:
        assert prov._conn is not None
        assert prov._conn.execute("PRAGMA synchronous").fetchone() == (level,)
    cache = get_cache("sqlite", host=host, path=tmp_path / "c.db", synchronous=synchronous)
    assert isinstance(cache, SqliteCache)
    with cache:
        cache.store("k", "m:f", "1", 1.0, 2.0)
        assert cache._writer is not None
        assert cache._writer.execute("PRAGMA synchronous").fetchone() == (level,)
    conn = sqlite3.connect(tmp_path / "c.db")
    assert conn.execute("SELECT value_json FROM entries").fetchall() == [("1",)]
    conn.close()


@pytest.mark.parametrize(
    "factory", [SqliteProvenance, pytest.param(SqliteCache, marks=needs_cache)]
)
@pytest.mark.parametrize("value", ["FULL", "off", "extra", ""])
def test_an_unknown_synchronous_is_an_argument_error_naming_it(
    tmp_path: Path, factory: type, value: str
) -> None:
    with pytest.raises(ArgumentError, match="synchronous") as info:
        factory(tmp_path / "x.db", synchronous=value)
    assert isinstance(info.value, PlaitError) and repr(value) in str(info.value)
    assert not (tmp_path / "x.db").exists()
