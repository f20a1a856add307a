"""Infinities in outputs, source inputs, run data and cached values: stored (as the JSON
numbers ``1e999`` / ``-1e999``), restored exactly, and never a broken run. NaN, which JSON
cannot spell, is recorded as not restorable with a warning."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from plait import Dag, DagContext, DagPause, DagRunner, cached, inline
from plait.cache import close_backends
from plait.errors import PlaitWarning
from plait_provenance_sqlite import SqliteProvenance

INF = math.inf


@pytest.fixture(autouse=True)
def _close_caches() -> Iterator[None]:
    yield
    close_backends()


def build(work: Path, calls: list[str]) -> Dag:
    @cached(min_ttl=1, max_ttl=2, db_path=work / "cache.sqlite3")
    def bound(scale: float) -> float:
        calls.append("bound")
        return scale * INF

    @inline
    def source(x: float) -> dict[str, list[float]]:
        calls.append("source")
        return {"up": [x, 1.5], "down": [-INF]}

    def measure(spread: dict[str, list[float]], ctx: DagContext) -> float:
        calls.append("measure")
        ctx.set_data("limit", {"hi": INF, "lo": -INF})
        return bound(2.0)

    async def gate(level: float, ctx: DagContext) -> tuple[float, float]:
        calls.append("gate")
        if not (work / "go").exists():
            raise DagPause("waiting")
        return (level, ctx.get_data("limit")["lo"])

    dag = Dag("nonfinite")
    dag.node(source) >> dag.node(measure) >> dag.node(gate)
    return dag


@pytest.mark.anyio
async def test_infinities_round_trip_through_a_run_and_its_restart(tmp_path: Path) -> None:
    pytest.importorskip("plait_cache_sqlite")  # one node is @cached
    db = tmp_path / "prov.sqlite3"
    calls: list[str] = []
    runner = DagRunner(build(tmp_path, calls), provenance=SqliteProvenance(db))
    paused = await runner.run({"source": {"x": INF}})
    assert paused.status == "paused", paused.error
    assert calls == ["source", "measure", "bound", "gate"]

    (tmp_path / "go").write_text("")
    calls.clear()
    restarted = await DagRunner(build(tmp_path, calls), provenance=SqliteProvenance(db)).restart(
        paused.run_id
    )
    assert restarted.status == "completed", restarted.error
    assert calls == ["gate"]  # source and measure restored, infinities included
    assert restarted.outputs == {"gate": (INF, -INF)}

    async with SqliteProvenance(db) as prov:
        run = await prov.get_run(paused.run_id)
        assert run.source_inputs == {"source": {"x": INF}}
        out = await prov.get_node_output(paused.run_id, "source")
        assert out.restorable and out.output == {"up": [INF, 1.5], "down": [-INF]}
        assert await prov.load_run_data(paused.run_id) == {"limit": {"hi": INF, "lo": -INF}}
        nodes = {n.label: n.status for n in await prov.get_node_executions(paused.run_id)}
        assert nodes == {"source": "completed", "measure": "completed", "gate": "completed"}
    # the file holds valid JSON that SQLite itself can read
    conn = sqlite3.connect(db)
    try:
        (text, value) = conn.execute(
            "SELECT output, json_extract(output, '$.down[0]') FROM node_executions "
            "WHERE label = 'source'"
        ).fetchone()
        assert "1e999" in text and value == -INF
    finally:
        conn.close()

    calls.clear()
    again = await DagRunner(build(tmp_path, calls), provenance=SqliteProvenance(db)).run(
        {"source": {"x": -INF}}
    )
    assert again.status == "completed"
    assert "bound" not in calls  # the cached infinity was stored and served


@pytest.mark.anyio
async def test_nan_output_is_recorded_not_restorable_and_the_run_completes(
    tmp_path: Path,
) -> None:
    @inline
    def ratio() -> float:
        return math.nan

    @inline
    def report(ratio: float) -> str:
        return "nan" if ratio != ratio else "number"

    dag = Dag("nan")
    dag.node(ratio) >> dag.node(report)
    db = tmp_path / "prov.sqlite3"
    with pytest.warns(PlaitWarning, match="ratio"):
        result = await DagRunner(dag, provenance=SqliteProvenance(db)).run()
    assert result.status == "completed" and result.outputs == {"report": "nan"}
    async with SqliteProvenance(db) as prov:
        out = await prov.get_node_output(result.run_id, "ratio")
        assert out.status == "completed" and not out.restorable
