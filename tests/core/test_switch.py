"""Switch nodes and map flattening (issue 15 items 7 and 8), without provenance."""

from __future__ import annotations

import anyio.lowlevel
import pytest
from _recorder import Recorder

from plait import Dag, DagContext, DagRunner, Namespace, dag_factory, inline
from plait.dag import SwitchNode
from plait.errors import DagValidationError, MapInputError, PlaitError, SwitchKeyError
from plait.plugins import PluginHost

pytestmark = pytest.mark.anyio


def route(x: int) -> tuple[str, int]:
    return ("even" if x % 2 == 0 else "odd", x)


@inline
def half(x: int) -> int:
    return x // 2


async def triple(x: int) -> int:
    await anyio.lowlevel.checkpoint()
    return 3 * x + 1


def show(n: int) -> str:
    return f"got {n}"


def is_even(x: int) -> bool:
    return x % 2 == 0


def collatz() -> Dag:
    with Dag("collatz") as dag:
        dag.node(route) >> dag.switch({"even": half, "odd": triple}, label="step") >> dag.node(show)
    return dag


@pytest.mark.parametrize(("x", "want"), [(3, "got 10"), (4, "got 2")])
async def test_only_the_chosen_branch_runs(x: int, want: str) -> None:
    ran: list[str] = []

    def even(x: int) -> int:
        ran.append("even")
        return x // 2

    def odd(x: int) -> int:
        ran.append("odd")
        return 3 * x + 1

    with Dag("c") as dag:
        dag.node(route) >> dag.switch({"even": even, "odd": odd}, label="step") >> dag.node(show)
    result = await dag(x=x)
    assert result.ok, result.error
    assert result.outputs == {"show": want}
    assert ran == ["even" if x % 2 == 0 else "odd"]


async def test_select_computes_the_key_and_branches_may_be_dags() -> None:
    sub = Dag("sub")
    sub.node(half, label="h") >> sub.node(triple, label="t")

    def source(x: int) -> int:
        return x

    with Dag("sel") as dag:
        dag.node(source) >> dag.switch({True: sub, False: triple}, label="s", select=is_even)
    assert (await dag(x=4)).outputs == {"s": 7}
    assert (await dag(x=3)).outputs == {"s": 10}


@dag_factory
def scaled(factor: int = 10) -> Dag:
    def scale(x: int) -> int:
        return factor * x

    dag = Dag("scaled")
    dag.node(scale)
    return dag


async def test_branches_may_be_dag_factories_and_namespace_entries() -> None:
    ns = Namespace()
    entry = ns.register(scaled, nsref="math:hundredfold", args={"factor": 100})

    def source(x: int) -> int:
        return x

    with Dag("by-factory") as dag:
        dag.node(source) >> dag.switch({True: scaled, False: entry}, label="s", select=is_even)
    switch = dag["s"]
    assert isinstance(switch, SwitchNode)
    assert (await dag(x=4)).outputs == {"s": 40}  # the factory, built with its defaults
    assert (await dag(x=3)).outputs == {"s": 300}  # the entry's Dag


async def test_the_switch_is_a_composite_with_the_branches_output_type() -> None:
    dag = collatz()
    switch = dag["step"]
    assert isinstance(switch, SwitchNode)
    assert dag.plan().by_label["step"].output_type is int
    assert set(switch.branches) == {"even", "odd"}


async def test_an_unknown_key_fails_the_node_naming_the_key_and_the_known_ones() -> None:
    def bad_route(x: int) -> tuple[str, int]:
        return ("prime", x)

    with Dag("c") as dag:
        dag.node(bad_route) >> dag.switch({"even": half, "odd": triple}, label="step")
    result = await dag(x=7)
    assert result.status == "failed"
    assert result.failed_node == "step"
    assert isinstance(result.exception, SwitchKeyError)
    assert isinstance(result.exception, PlaitError)
    message = str(result.exception)
    assert "'step'" in message and "'prime'" in message
    assert "'even'" in message and "'odd'" in message


async def test_a_value_that_is_not_a_pair_fails_naming_the_switch() -> None:
    def loose(x):  # type: ignore[no-untyped-def]
        return x

    with Dag("c") as dag:
        dag.node(loose) >> dag.switch({"a": half}, label="pick")
    result = await dag(x=7)
    assert isinstance(result.exception, SwitchKeyError)
    assert "switch node 'pick'" in str(result.exception)
    assert "select=" in str(result.exception)


def test_a_branch_with_the_wrong_input_type_is_a_validation_error() -> None:
    def shout(s: str) -> int:
        return len(s)

    dag = Dag("c")
    dag.node(route) >> dag.switch({"even": half, "odd": shout}, label="step")
    with pytest.raises(DagValidationError) as info:
        dag.validate()
    text = str(info.value)
    assert "switch node 'step'" in text
    assert "branch 'odd'" in text and "str" in text and "int" in text


def test_branches_must_return_one_type() -> None:
    def name(x: int) -> str:
        return str(x)

    dag = Dag("c")
    dag.node(route) >> dag.switch({"even": half, "odd": name}, label="step")
    with pytest.raises(DagValidationError, match=r"branch 'odd' output type is str"):
        dag.validate()


def test_an_upstream_that_gives_no_pair_is_a_validation_error() -> None:
    def number(x: int) -> int:
        return x

    dag = Dag("c")
    dag.node(number) >> dag.switch({"even": half}, label="step")
    with pytest.raises(DagValidationError, match=r"switch node 'step' routes on \(key, value\)"):
        dag.validate()


def test_select_checks_the_upstream_type_against_every_branch() -> None:
    def text(x: int) -> str:
        return str(x)

    dag = Dag("c")
    dag.node(text) >> dag.switch({True: half, False: triple}, label="s", select=bool)
    with pytest.raises(DagValidationError) as info:
        dag.validate()
    assert "branch True takes int" in str(info.value)
    assert "branch False takes int" in str(info.value)


def test_bad_switch_arguments() -> None:
    dag = Dag("c")
    with pytest.raises(TypeError, match="non-empty dict"):
        dag.switch({}, label="s")
    with pytest.raises(TypeError, match="branch 'x' must be a Dag or a callable"):
        dag.switch({"x": 3}, label="s")  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="select must be callable"):
        dag.switch({"x": half}, label="s", select=3)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- per element
def numbers(n: int) -> list[int]:
    return list(range(n))


async def test_a_map_over_a_switch_routes_each_element() -> None:
    with Dag("m") as dag:
        dag.node(numbers) >> dag.map(
            dag.switch({True: half, False: triple}, label="step", select=is_even)
        )
    assert "step" not in dag.nodes  # it moved into the map's sub-DAG
    result = await dag(n=5)
    assert result.outputs == {"map_step": [0, 4, 1, 10, 2]}


async def test_a_map_over_a_switch_of_pairs_records_each_branch() -> None:
    recorder = Recorder()
    host = PluginHost()
    host.register(recorder, name="recorder")

    def pairs(n: int) -> list[tuple[str, int]]:
        return [route(i) for i in range(n)]

    with Dag("m") as dag:
        dag.node(pairs) >> dag.map(dag.switch({"even": half, "odd": triple}, label="step"))
    result = await DagRunner(dag, provenance="null", host=host).run({"pairs": {"n": 3}})
    assert result.outputs == {"map_step": [0, 4, 1]}
    nsrefs = {r.dag_nsref for r in recorder.runs_started}
    assert {"m/map_step[0]/step[even]", "m/map_step[1]/step[odd]"} <= nsrefs


def test_a_map_over_a_switch_checks_the_elements_type() -> None:
    def words(n: int) -> list[str]:
        return ["a"] * n

    dag = Dag("m")
    dag.node(words) >> dag.map(dag.switch({True: half}, label="step", select=bool))
    with pytest.raises(DagValidationError, match=r"branch True takes int.*str"):
        dag.validate()


def test_a_switch_with_edges_cannot_become_a_map() -> None:
    dag = Dag("m")
    switch = dag.switch({True: half}, label="step", select=bool)
    dag.node(numbers) >> switch
    with pytest.raises(ValueError, match="'step' is not one"):
        dag.map(switch)


async def test_a_failing_branch_fails_the_switch_with_its_sub_run() -> None:
    def boom(x: int) -> int:
        raise RuntimeError(f"no {x}")

    with Dag("c") as dag:
        dag.node(route) >> dag.switch({"even": half, "odd": boom}, label="step")
    result = await dag(x=3)
    assert result.status == "failed"
    assert "sub-DAG 'step[odd]' failed at node 'boom'" in str(result.exception)


async def test_a_context_in_a_branch_names_the_branch_sub_run() -> None:
    seen: list[str] = []

    def where(x: int, ctx: DagContext) -> int:
        seen.append(ctx.dag_nsref)
        return x

    with Dag("c") as dag:
        dag.node(route) >> dag.switch({"even": where, "odd": where}, label="step")
    await dag(x=2)
    assert seen == ["c/step[even]"]


# ---------------------------------------------------------------------------- flatten
def twice(x: int) -> list[int]:
    return [x, x]


async def test_flatten_joins_the_elements_lists() -> None:
    sub = Dag("sub")
    sub.node(twice)
    with Dag("f") as dag:
        dag.node(numbers) >> dag.map(sub, label="each", flatten=True)
    assert dag.plan().by_label["each"].output_type == list[int]
    assert (await dag(n=3)).outputs == {"each": [0, 0, 1, 1, 2, 2]}


async def test_flatten_over_a_dict_joins_in_key_order() -> None:
    def table() -> dict[str, int]:
        return {"b": 2, "a": 1}

    sub = Dag("sub")
    sub.node(twice)
    with Dag("f") as dag:
        dag.node(table) >> dag.map(sub, label="each", flatten=True)
    assert (await dag()).outputs == {"each": [2, 2, 1, 1]}


def test_flatten_of_a_sub_dag_not_returning_a_list_is_a_validation_error() -> None:
    sub = Dag("sub")
    sub.node(half)
    dag = Dag("f")
    dag.node(numbers) >> dag.map(sub, label="each", flatten=True)
    with pytest.raises(DagValidationError) as info:
        dag.validate()
    assert "map node 'each': flatten=True" in str(info.value)
    assert "'sub' returns int" in str(info.value)


async def test_flatten_of_an_element_that_returns_no_list_fails_naming_it() -> None:
    def lying(x: int) -> list[int]:
        return x  # type: ignore[return-value]

    sub = Dag("sub")
    sub.node(lying)
    with Dag("f") as dag:
        dag.node(numbers) >> dag.map(sub, label="each", flatten=True)
    result = await dag(n=2)
    assert isinstance(result.exception, MapInputError)
    assert "element 0 returned int" in str(result.exception)


def test_render_draws_a_switch_with_its_branch_keys() -> None:
    dag = collatz()
    assert 'n1{{"step: even | odd"}}' in dag.to_mermaid()
    assert '"step" [shape=diamond, label="step: even | odd"];' in dag.to_dot()
