"""Map and call nodes recorded in SQLite: sub-runs, lineage, grouped commits, partial restart."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from plait import Dag, DagContext, DagRunner, inline
from plait.errors import CompositeError
from plait.records import NodeStatus, RunStatus
from plait_provenance_sqlite import SqliteProvenance

pytestmark = pytest.mark.anyio

KINDS = ["inline", "async", "context"]


class Boom(Exception):
    pass


class Elements:
    """A sub-DAG factory whose element function counts calls and fails on ``bad`` inputs."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.bad: set[int] = set()
        self.calls: Counter[int] = Counter()
        self.offsets: Counter[int] = Counter()

    def sub_dag(self) -> Dag:
        def check(x: int) -> int:
            self.calls[x] += 1
            if x in self.bad:
                raise Boom(f"bad element {x}")
            return x * x

        async def check_async(x: int) -> int:
            await anyio.lowlevel.checkpoint()
            return check(x)

        @inline  # the DagContext parameter is what sends elements down the full path
        def check_ctx(x: int, ctx: DagContext) -> int:
            return check(x)

        @inline
        def offset(v: int) -> int:
            self.offsets[v] += 1
            return v + 1000

        sub = Dag(f"elements_{self.kind}")
        fn: Any = {"inline": inline(check), "async": check_async, "context": check_ctx}[self.kind]
        sub.node(fn, label="check") >> sub.node(offset)
        return sub


@inline
def numbers(n: int) -> list[int]:
    return list(range(n))


@inline
def named(n: int) -> dict[str, int]:
    return {f"k{i}": i for i in range(n)}


def map_dag(sub: Dag, source: Any = numbers) -> Dag:
    dag = Dag("outer")
    dag.node(source, label="src") >> dag.map(sub, label="each")
    return dag


@pytest.mark.parametrize("kind", KINDS)
async def test_each_element_is_a_sub_run_linked_to_the_parent(kind: str, tmp_path: Path) -> None:
    path = tmp_path / "prov.sqlite3"
    result = await DagRunner(
        map_dag(Elements(kind).sub_dag(), named), provenance=SqliteProvenance(path)
    ).run(source_inputs={"src": {"n": 3}})
    assert result.ok, result.error
    assert result.outputs["each"] == {"k0": 1000, "k1": 1001, "k2": 1004}

    async with SqliteProvenance(path) as prov:
        subs = await prov.list_runs(parent_run_id=result.run_id)
        assert sorted(r.dag_nsref for r in subs) == [
            "outer/each[k0]",
            "outer/each[k1]",
            "outer/each[k2]",
        ]
        assert {r.status for r in subs} == {RunStatus.COMPLETED}
        assert {r.parent_run_id for r in subs} == {result.run_id}
        by_nsref = {r.dag_nsref: r for r in subs}
        k2 = by_nsref["outer/each[k2]"]
        assert k2.source_inputs == {"check": {"x": 2}}

        nodes = {n.label: n for n in await prov.get_node_executions(k2.run_id)}
        assert nodes["check"].status == NodeStatus.COMPLETED
        assert nodes["check"].output == 4
        assert nodes["offset"].output == 1004
        lineage = await prov.lineage(k2.run_id, "offset")
        assert [(n.run_id, n.label) for n in lineage] == [(k2.run_id, "check")]

        parent = {n.label: n for n in await prov.get_node_executions(result.run_id)}
        assert parent["each"].node_type == "map"
        assert parent["each"].output == {"k0": 1000, "k1": 1001, "k2": 1004}
        # the whole tree, as a query for runs of one map would find it
        every = await prov.list_runs()
        assert len(every) == 4


async def test_nested_map_sub_runs_nest(tmp_path: Path) -> None:
    elements = Elements("inline")

    @inline
    def rows(n: int) -> list[list[int]]:
        return [list(range(i + 1)) for i in range(n)]

    @inline
    def row(values: list[int]) -> list[int]:
        return values

    inner = Dag("inner")
    inner.node(row) >> inner.map(elements.sub_dag(), label="cells")
    path = tmp_path / "prov.sqlite3"
    result = await DagRunner(map_dag(inner, rows), provenance=SqliteProvenance(path)).run(
        source_inputs={"src": {"n": 3}}
    )
    assert result.outputs["each"] == [[1000], [1000, 1001], [1000, 1001, 1004]]
    async with SqliteProvenance(path) as prov:
        outer_subs = {r.dag_nsref: r for r in await prov.list_runs(parent_run_id=result.run_id)}
        assert sorted(outer_subs) == ["outer/each[0]", "outer/each[1]", "outer/each[2]"]
        deep = await prov.list_runs(parent_run_id=outer_subs["outer/each[2]"].run_id)
        assert sorted(r.dag_nsref for r in deep) == [
            "outer/each[2]/cells[0]",
            "outer/each[2]/cells[1]",
            "outer/each[2]/cells[2]",
        ]


class CountingProvenance(SqliteProvenance):
    """SqliteProvenance that counts the commits that had something to write."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.commits = 0

    async def commit(self) -> None:
        if self._buffer:
            self.commits += 1
        await super().commit()


async def test_each_inline_element_is_committed_before_the_next(tmp_path: Path) -> None:
    """A crash loses at most the element in flight (see test_provenance_sqlite_crash_map)."""
    prov = CountingProvenance(tmp_path / "prov.sqlite3")
    result = await DagRunner(map_dag(Elements("inline").sub_dag()), provenance=prov).run(
        source_inputs={"src": {"n": 640}}
    )
    assert result.ok, result.error
    assert 640 <= prov.commits <= 650  # one per element, and the run's own few
    async with SqliteProvenance(tmp_path / "prov.sqlite3") as reader:
        assert len(await reader.list_runs(parent_run_id=result.run_id)) == 640


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fail_fast", [True, False])
async def test_restart_executes_only_incomplete_elements(
    kind: str, fail_fast: bool, tmp_path: Path
) -> None:
    path = tmp_path / "prov.sqlite3"
    elements = Elements(kind)
    elements.bad = {2, 5}
    dag = map_dag(elements.sub_dag())
    first = await DagRunner(dag, provenance=SqliteProvenance(path), fail_fast=fail_fast).run(
        source_inputs={"src": {"n": 8}}
    )
    assert first.status == "failed"
    assert isinstance(first.exception, CompositeError)
    async with SqliteProvenance(path) as prov:
        subs = await prov.list_runs(parent_run_id=first.run_id)
    completed_first = {
        int(r.dag_nsref.removeprefix("outer/each[").rstrip("]"))
        for r in subs
        if r.status == "completed"
    }
    if kind != "async" or not fail_fast:
        assert {0, 1} <= completed_first
    if not fail_fast:
        assert completed_first == {0, 1, 3, 4, 6, 7}

    elements.bad = set()
    before = Counter(elements.calls)
    offsets_before = Counter(elements.offsets)
    restarted = await DagRunner(dag, provenance=SqliteProvenance(path)).restart(first.run_id)
    assert restarted.ok, restarted.error
    assert restarted.run_id == first.run_id
    assert restarted.outputs["each"] == [1000 + i * i for i in range(8)]
    incomplete = set(range(8)) - completed_first
    finished_again = elements.offsets - offsets_before  # the sink, by its input x*x
    # only incomplete elements run again (one cancelled after its last node completed
    # resumes with nothing left to run)
    assert {4, 25} <= set(finished_again) <= {x * x for x in incomplete}
    if not fail_fast:
        assert set(finished_again) == {4, 25}
    again = elements.calls - before
    assert {2, 5} <= set(again) <= incomplete  # a completed first node is not run again
    assert all(n == 1 for n in again.values())

    async with SqliteProvenance(path) as prov:
        subs = await prov.list_runs(parent_run_id=first.run_id)
        by_nsref = {r.dag_nsref: r for r in subs}
        assert len(subs) == len(by_nsref) == 8  # failed sub-runs resumed in place, no copies
        assert {r.status for r in subs} == {RunStatus.COMPLETED}
        assert by_nsref["outer/each[2]"].attempt == 2
        assert by_nsref["outer/each[0]"].attempt == 1
        history = await prov.status_history(by_nsref["outer/each[2]"].run_id)
        run_statuses = [c.status for c in history if c.label is None]
        assert run_statuses[0] == "running"
        assert run_statuses[1] in ("failed", "cancelled")  # cancelled: 5 failed first
        assert run_statuses[2:] == ["running", "completed"]


async def test_restart_of_a_nested_map_reexecutes_only_the_failed_cell(tmp_path: Path) -> None:
    elements = Elements("inline")
    elements.bad = {11}

    @inline
    def rows(n: int) -> list[list[int]]:
        return [[10 * i + j for j in range(3)] for i in range(n)]

    @inline
    def row(values: list[int]) -> list[int]:
        return values

    inner = Dag("inner")
    inner.node(row) >> inner.map(elements.sub_dag(), label="cells")
    dag = map_dag(inner, rows)
    path = tmp_path / "prov.sqlite3"
    first = await DagRunner(dag, provenance=SqliteProvenance(path), fail_fast=False).run(
        source_inputs={"src": {"n": 3}}
    )
    assert first.status == "failed"
    assert "element 1 failed" in (first.error or "")
    elements.bad = set()
    before = Counter(elements.calls)
    restarted = await DagRunner(dag, provenance=SqliteProvenance(path)).restart(first.run_id)
    assert restarted.ok, restarted.error
    assert restarted.outputs["each"] == [
        [1000 + v * v for v in (10 * i, 10 * i + 1, 10 * i + 2)] for i in range(3)
    ]
    assert elements.calls - before == Counter({11: 1})


async def test_paused_map_resumes_where_it_stopped(tmp_path: Path) -> None:
    path = tmp_path / "prov.sqlite3"
    seen: Counter[int] = Counter()
    box: list[DagRunner] = []

    async def work(x: int) -> int:
        seen[x] += 1
        if x == 3 and box:
            box[0].pause()
        await anyio.lowlevel.checkpoint()
        return x

    sub = Dag("work")
    sub.node(work)
    dag = Dag("outer")
    dag.node(numbers, label="src") >> dag.map(sub, label="each", max_concurrency=1)
    runner = DagRunner(dag, provenance=SqliteProvenance(path))
    box.append(runner)
    first = await runner.run(source_inputs={"src": {"n": 10}})
    assert first.status == "paused"
    assert set(seen) == {0, 1, 2, 3}
    box.clear()
    restarted = await DagRunner(dag, provenance=SqliteProvenance(path)).restart(first.run_id)
    assert restarted.ok, restarted.error
    assert restarted.outputs["each"] == list(range(10))
    assert seen == Counter(range(10))  # nothing ran twice


@pytest.mark.parametrize("inline_nodes", [True, False])
async def test_resumed_element_gets_its_run_data_back(inline_nodes: bool, tmp_path: Path) -> None:
    if not inline_nodes:
        pytest.importorskip("plait_executors")  # the default thread executor is a plugin
    path = tmp_path / "prov.sqlite3"
    stored: Counter[int] = Counter()
    tokens: list[tuple[int, Any, Any]] = []
    broken = {1}

    def a(x: int, ctx: DagContext) -> int:
        stored[x] += 1
        ctx.set_data("token", f"t-{x}")
        return x

    def b(x: int, ctx: DagContext) -> int:
        tokens.append((x, ctx.get_data("token"), ctx.get_data("batch")))
        if x in broken:
            raise Boom(f"bad element {x}")
        return x

    def src(n: int, ctx: DagContext) -> list[int]:
        ctx.set_data("batch", "b-1")  # the parent run's data: elements read it too
        return list(range(n))

    sub = Dag("tokens")
    wrap: Any = inline if inline_nodes else (lambda fn: fn)
    sub.node(wrap(a)) >> sub.node(wrap(b))
    dag = Dag("outer")
    dag.node(inline(src), label="src") >> dag.map(sub, label="each")
    first = await DagRunner(dag, provenance=SqliteProvenance(path), fail_fast=False).run(
        source_inputs={"src": {"n": 3}}
    )
    assert first.status == "failed"
    # every element sees the token its own first node stored, not a sibling's
    assert sorted(tokens) == [(x, f"t-{x}", "b-1") for x in range(3)]

    broken.clear()
    tokens.clear()
    restarted = await DagRunner(dag, provenance=SqliteProvenance(path)).restart(first.run_id)
    assert restarted.ok, restarted.error
    assert restarted.outputs["each"] == [0, 1, 2]
    assert stored == Counter({0: 1, 1: 1, 2: 1})  # `a` of the failed element did not run again
    assert tokens == [(1, "t-1", "b-1")]  # ... and what it stored came back from the store
