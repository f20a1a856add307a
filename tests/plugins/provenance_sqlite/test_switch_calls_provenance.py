"""Switch nodes, ctx.call and the inspection tree recorded in SQLite (issue 15 items 5, 7, 9):
branch sub-runs and skipped branches, restart and replay through a switch, calls as sub-runs
of the calling node, lineage through calls, one tree per run."""

from __future__ import annotations

from pathlib import Path

import pytest

from plait import Dag, DagContext, DagRunner, inline
from plait.errors import CallError, CompositeError, InputError, PlaitError, RunNotFoundError
from plait.inspection import build_run_tree, inspect_run, node_output
from plait.records import NodeStatus, RunStatus
from plait_provenance_sqlite import SqliteProvenance

pytestmark = pytest.mark.anyio


class Switchboard:
    """A DAG ``route -> step (switch even/odd) -> show`` whose parts can be told to fail or
    to route differently, counting what ran."""

    def __init__(self) -> None:
        self.flip = False
        self.fail_even = False
        self.fail_show = False
        self.ran: list[str] = []

    def dag(self) -> Dag:
        def route(x: int) -> tuple[str, int]:
            self.ran.append("route")
            even = x % 2 == 0
            return ("even" if even != self.flip else "odd", x)

        def even(x: int) -> int:
            self.ran.append("even")
            if self.fail_even:
                raise RuntimeError("even is down")
            return x // 2

        def odd(x: int) -> int:
            self.ran.append("odd")
            return 3 * x + 1

        def show(n: int) -> str:
            self.ran.append("show")
            if self.fail_show:
                raise RuntimeError("show is down")
            return f"got {n}"

        with Dag("c") as dag:
            (
                dag.node(route)
                >> dag.switch({"even": even, "odd": odd}, label="step")
                >> dag.node(show)
            )
        return dag


async def test_the_chosen_branch_is_a_sub_run_and_the_others_are_skipped(tmp_path: Path) -> None:
    board = Switchboard()
    result = await DagRunner(board.dag(), provenance=SqliteProvenance(tmp_path / "p.db")).run(
        {"route": {"x": 4}}
    )
    assert result.outputs == {"show": "got 2"}
    async with SqliteProvenance(tmp_path / "p.db") as prov:
        nodes = {r.label: r for r in await prov.get_node_executions(result.run_id)}
        subs = await prov.list_runs(parent_run_id=result.run_id)
    assert nodes["step"].node_type == "switch" and nodes["step"].status == "completed"
    assert nodes["step"].output == 2
    assert nodes["step[odd]"].status == NodeStatus.SKIPPED
    assert nodes["step[odd]"].node_type == "branch"
    assert "step[even]" not in nodes
    assert [s.dag_nsref for s in subs] == ["c/step[even]"]


async def test_restart_resumes_the_failed_branch_in_place(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    board = Switchboard()
    board.fail_even = True
    dag = board.dag()
    first = await DagRunner(dag, provenance=SqliteProvenance(path)).run({"route": {"x": 4}})
    assert first.status == "failed" and first.failed_node == "step"
    assert isinstance(first.exception, CompositeError)
    board.fail_even = False
    board.ran.clear()
    again = await DagRunner(dag, provenance=SqliteProvenance(path)).restart(first.run_id)
    assert again.ok, again.error
    assert again.outputs == {"show": "got 2"}
    assert board.ran == ["even", "show"]  # route completed: restored, not run again
    async with SqliteProvenance(path) as prov:
        subs = await prov.list_runs(parent_run_id=first.run_id)
    assert [(s.dag_nsref, s.attempt, s.status) for s in subs] == [
        ("c/step[even]", 2, RunStatus.COMPLETED)
    ]


async def test_restart_after_the_switch_does_not_run_a_branch_again(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    board = Switchboard()
    board.fail_show = True
    dag = board.dag()
    first = await DagRunner(dag, provenance=SqliteProvenance(path)).run({"route": {"x": 3}})
    assert first.failed_node == "show"
    board.fail_show = False
    board.ran.clear()
    again = await DagRunner(dag, provenance=SqliteProvenance(path)).restart(first.run_id)
    assert again.outputs == {"show": "got 10"}
    assert board.ran == ["show"]


async def test_a_replayed_switch_may_choose_another_branch(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    board = Switchboard()
    dag = board.dag()
    first = await DagRunner(dag, provenance=SqliteProvenance(path)).run({"route": {"x": 4}})
    assert first.outputs == {"show": "got 2"}
    board.flip = True
    board.ran.clear()
    replay = await DagRunner(dag, provenance=SqliteProvenance(path)).replay(
        first.run_id, rerun_nodes={"route"}
    )
    assert replay.outputs == {"show": "got 13"}
    assert board.ran == ["route", "odd", "show"]
    async with SqliteProvenance(path) as prov:
        nodes = {r.label: r for r in await prov.get_node_executions(replay.run_id)}
        subs = await prov.list_runs(parent_run_id=replay.run_id)
        # the switch of a replay that copies it is skipped, with its output
        board.ran.clear()
        copy = await DagRunner(dag, provenance=prov).replay(replay.run_id, rerun_nodes={"show"})
    assert nodes["step[even]"].status == "skipped" and "step[odd]" not in nodes
    assert [s.dag_nsref for s in subs] == ["c/step[odd]"]
    assert copy.outputs == {"show": "got 13"} and board.ran == ["show"]


async def test_a_map_over_a_switch_restarts_only_the_failed_element(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    calls: list[int] = []
    broken = {3}

    def numbers(n: int) -> list[int]:
        return list(range(n))

    def odd(x: int) -> int:
        calls.append(x)
        if x in broken:
            raise RuntimeError(f"odd {x}")
        return 3 * x + 1

    @inline
    def even(x: int) -> int:
        return x // 2

    def is_even(x: int) -> bool:
        return x % 2 == 0

    with Dag("m") as dag:
        dag.node(numbers) >> dag.map(
            dag.switch({True: even, False: odd}, label="step", select=is_even), label="each"
        )
    runner = DagRunner(dag, provenance=SqliteProvenance(path), fail_fast=False)
    first = await runner.run({"numbers": {"n": 5}})
    assert first.status == "failed"
    broken.clear()
    calls.clear()
    again = await DagRunner(dag, provenance=SqliteProvenance(path)).restart(first.run_id)
    assert again.outputs == {"each": [0, 4, 1, 10, 2]}
    assert calls == [3]
    async with SqliteProvenance(path) as prov:
        tree = await prov.inspect_run(first.run_id)
        assert tree == await build_run_tree(prov, first.run_id)
    element = next(c for c in tree.children if c.name == "each[3]")
    assert element.via == "map"
    assert [(c.name, c.via, c.run.attempt) for c in element.children] == [
        ("step[False]", "switch", 2)
    ]
    assert element.node("step[True]").status == "skipped"


# ---------------------------------------------------------------------------- ctx.call
def lookup(key: str) -> int:
    return len(key) * 10


async def alookup(key: str) -> int:
    return len(key)


def calls_dag() -> Dag:
    def enrich(key: str, ctx: DagContext) -> int:
        return ctx.call("lookup", key=key) + ctx.call("tools:alookup", key=key)

    async def total(n: int, ctx: DagContext) -> int:
        return n + await ctx.acall("lookup", key="abc")

    with Dag("calls") as dag:
        dag.namespace.register(lookup)
        dag.namespace.register(alookup, "tools:alookup")
        dag.node(enrich) >> dag.node(total)
    return dag


@pytest.mark.parametrize("max_concurrency", [None, 1])
async def test_calls_are_sub_runs_of_the_calling_node(
    tmp_path: Path, max_concurrency: int | None
) -> None:
    path = tmp_path / "p.db"
    runner = DagRunner(
        calls_dag(), provenance=SqliteProvenance(path), max_concurrency=max_concurrency
    )
    result = await runner.run({"enrich": {"key": "abcd"}})
    assert result.outputs == {"total": 74}
    async with SqliteProvenance(path) as prov:
        subs = {s.dag_nsref: s for s in await prov.list_runs(parent_run_id=result.run_id)}
        assert set(subs) == {
            "calls/enrich/call:lookup#1",
            "calls/enrich/call:tools:alookup#2",
            "calls/total/call:lookup#1",
        }
        (rec,) = await prov.get_node_executions(subs["calls/enrich/call:lookup#1"].run_id)
        assert (rec.label, rec.status, rec.output, rec.inputs) == (
            "lookup",
            "completed",
            40,
            {"key": "abcd"},
        )
        assert rec.executor == "caller-thread"
        (arec,) = await prov.get_node_executions(subs["calls/total/call:lookup#1"].run_id)
        assert arec.executor == "thread"  # acall runs a sync entry on its executor
        lineage = await prov.lineage(result.run_id, "total")
    assert [(r.label, r.output) for r in lineage] == [
        ("lookup", 30),  # total's own call
        ("enrich", 44),
        ("lookup", 40),  # enrich's calls, in call order
        ("alookup", 4),
    ]


async def test_a_call_of_an_unknown_nsref_fails_the_node_naming_it(tmp_path: Path) -> None:
    def caller(x: int, ctx: DagContext) -> int:
        return ctx.call("nowhere:fn", x=x)

    with Dag("bad") as dag:
        dag.namespace.register(lookup)
        dag.node(caller)
    result = await DagRunner(dag, provenance=SqliteProvenance(tmp_path / "p.db")).run(
        {"caller": {"x": 1}}
    )
    assert result.failed_node == "caller"
    assert isinstance(result.exception, CallError)
    assert isinstance(result.exception, PlaitError)
    message = str(result.exception)
    assert "'nowhere:fn'" in message and "'caller'" in message and "lookup" in message


async def test_a_call_with_wrong_arguments_is_an_input_error() -> None:
    def caller(x: int, ctx: DagContext) -> int:
        return ctx.call("lookup", nope=x)

    with Dag("bad") as dag:
        dag.namespace.register(lookup)
        dag.node(caller)
    result = await dag(x=1)
    assert isinstance(result.exception, InputError)
    assert "'nope'" in str(result.exception)


async def test_ctx_call_on_the_event_loop_asks_for_acall() -> None:
    @inline
    def caller(x: int, ctx: DagContext) -> int:
        return ctx.call("lookup", key="k")

    with Dag("bad") as dag:
        dag.namespace.register(lookup)
        dag.node(caller)
    result = await dag(x=1)
    assert isinstance(result.exception, CallError)
    assert "await ctx.acall" in str(result.exception)


async def test_an_entry_that_raises_raises_in_the_caller_and_is_recorded(tmp_path: Path) -> None:
    def sour(key: str) -> int:
        raise ValueError(f"no {key}")

    def caller(key: str, ctx: DagContext) -> int:
        try:
            return ctx.call("sour", key=key)
        except ValueError:
            return -1

    with Dag("r") as dag:
        dag.namespace.register(sour)
        dag.node(caller)
    path = tmp_path / "p.db"
    result = await DagRunner(dag, provenance=SqliteProvenance(path)).run({"caller": {"key": "k"}})
    assert result.outputs == {"caller": -1}
    async with SqliteProvenance(path) as prov:
        (sub,) = await prov.list_runs(parent_run_id=result.run_id)
        (rec,) = await prov.get_node_executions(sub.run_id)
    assert sub.status == "failed" and rec.status == "failed"
    assert rec.error_message == "no k"


async def test_a_completed_node_is_restored_without_calling_again(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    counted: list[str] = []
    fail = [True]

    def count(key: str) -> int:
        counted.append(key)
        return 1

    def first(key: str, ctx: DagContext) -> str:
        ctx.call("count", key=key)
        return key

    def second(key: str) -> str:
        if fail[0]:
            raise RuntimeError("down")
        return key

    with Dag("r") as dag:
        dag.namespace.register(count)
        dag.node(first) >> dag.node(second)
    one = await DagRunner(dag, provenance=SqliteProvenance(path)).run({"first": {"key": "k"}})
    assert one.failed_node == "second"
    fail[0] = False
    two = await DagRunner(dag, provenance=SqliteProvenance(path)).restart(one.run_id)
    assert two.ok and counted == ["k"]


# ---------------------------------------------------------------------------- the tree
async def test_inspect_run_gives_one_tree_of_nodes_edges_and_sub_runs(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    board = Switchboard()
    result = await DagRunner(board.dag(), provenance=SqliteProvenance(path)).run(
        {"route": {"x": 3}}
    )
    calls = await DagRunner(calls_dag(), provenance=SqliteProvenance(path)).run(
        {"enrich": {"key": "ab"}}
    )
    async with SqliteProvenance(path) as prov:
        tree = await prov.inspect_run(result.run_id)
        same = await inspect_run(prov, result.run_id)
        ctree = await inspect_run(prov, calls.run_id)
        # the store's own tree (one read transaction) is the default one
        assert tree == await build_run_tree(prov, result.run_id)
        assert ctree == await build_run_tree(prov, calls.run_id)
        output = await node_output(prov, result.run_id, "show")
        typed = await node_output(prov, result.run_id, "step", int)
        with pytest.raises(RunNotFoundError, match="nope"):
            await prov.inspect_run("nope")
    assert tree == same
    assert tree.run.run_id == result.run_id and tree.name == "" and tree.via == ""
    assert {n.label for n in tree.nodes} == {"route", "step", "step[even]", "show"}
    assert all(n.output is None for n in tree.nodes)  # outputs are loaded on demand
    assert (output, typed) == ("got 10", 10)
    assert {(e.upstream, e.downstream) for e in tree.edges} == {
        ("route", "step"),
        ("step", "show"),
    }
    (branch,) = tree.children_of("step")
    assert (branch.name, branch.via) == ("step[odd]", "switch")
    assert [n.label for n in branch.nodes] == ["odd"]
    assert [c.name for c in ctree.children_of("enrich")] == [
        "enrich/call:lookup#1",
        "enrich/call:tools:alookup#2",
    ]
    assert {c.via for c in ctree.children} == {"ctx.call"}
    assert len(ctree.walk()) == 4
