"""The python examples of docs/how-to/provenance.md run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).parents[3] / "docs" / "how-to" / "provenance.md"

pytest.importorskip("plait_executors")


def test_how_to_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    assert blocks, f"no python examples in {DOC}"
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), {"__name__": "__doc_example__"})
    assert (tmp_path / "pipeline.sqlite3").exists()


def test_how_to_sql_runs_against_a_real_store(tmp_path: Path) -> None:
    import sqlite3

    import anyio

    from plait import Dag, DagRunner, inline
    from plait_provenance_sqlite import SqliteProvenance

    (query,) = re.findall(r"```sql\n(.*?)```", DOC.read_text(), flags=re.DOTALL)

    @inline
    def first(x: int) -> int:
        return x + 1

    @inline
    def second(first: int) -> int:
        return first * 2

    dag = Dag()
    dag.node(first) >> dag.node(second)
    path = tmp_path / "p.sqlite3"

    async def two_runs() -> list[str]:
        runner = DagRunner(dag, provenance=SqliteProvenance(path))
        return [(await runner.run({"first": {"x": x}})).run_id for x in (1, 2)]

    run_ids = anyio.run(two_runs)
    conn = sqlite3.connect(path)
    try:
        for run_id in run_ids:
            rows = conn.execute(query, {"run_id": run_id}).fetchall()
            assert [(label, attempt, status) for label, attempt, status, _ms in rows] == [
                ("first", 1, "completed"),
                ("second", 1, "completed"),
            ]
    finally:
        conn.close()
