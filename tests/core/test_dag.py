"""Building, wiring and validating DAGs (SPEC 3)."""

from __future__ import annotations

import functools
import gc

import anyio
import pytest

from plait import Dag, DagContext, DagRunner, DagValidationError, inline
from plait.errors import DuplicateNameError, InputError, PlaitError


def make_int() -> int:
    return 1


def make_str() -> str:
    return "s"


def use_int(v: int) -> int:
    return v


def use_two(a: int, b: int) -> int:
    return a + b


def use_str(s: str) -> str:
    return s


def collect(xs: list[int]) -> int:
    return sum(xs)


def no_params() -> None:
    return None


def problems(dag: Dag) -> tuple[str, ...]:
    with pytest.raises(DagValidationError) as info:
        dag.validate()
    assert isinstance(info.value, PlaitError | ValueError)
    return info.value.problems


def test_chain_returns_downstream_and_validates() -> None:
    with Dag("ok") as dag:
        a = dag.node(make_int)
        b = dag.node(use_int)
        c = dag.node(use_int, label="again")
        assert (a >> b >> c) is c
    plan = dag.plan()
    assert [plan.nodes[i].label for i in plan.order] == ["make_int", "use_int", "again"]
    assert plan.sources == [0] and plan.sinks == [2]


def test_with_block_validates_on_exit() -> None:
    with pytest.raises(DagValidationError, match="required parameter s: str"), Dag() as dag:
        dag.node(make_int) >> dag.node(use_str)


def test_every_problem_is_reported_at_once() -> None:
    dag = Dag("bad")
    i = dag.node(make_int)
    s = dag.node(make_str)
    i >> dag.node(use_str)  # int fits no str parameter
    s >> dag.node(use_int)  # str fits no int parameter
    found = problems(dag)
    assert len(found) == 4  # two mismatched edges, two unfed required parameters
    assert any("'make_int' returns int, which fits no parameter of 'use_str'" in p for p in found)
    assert any("'make_str' returns str, which fits no parameter of 'use_int'" in p for p in found)
    assert any("node 'use_str': required parameter s: str is fed by nothing" in p for p in found)


def test_cycle_is_named() -> None:
    dag = Dag()
    a = dag.node(use_int, label="a")
    b = dag.node(use_int, label="b")
    c = dag.node(use_int, label="c")
    a >> b >> c >> a
    (cycle,) = [p for p in problems(dag) if p.startswith("cycle")]
    assert cycle == "cycle: a -> b -> c -> a"


def test_cycle_is_named_when_a_node_downstream_of_it_comes_first() -> None:
    dag = Dag()
    after = dag.node(use_int, label="after")  # the lowest index among the unordered nodes
    a = dag.node(use_int, label="a")
    b = dag.node(use_int, label="b")
    a >> b >> a
    b >> after
    (cycle,) = [p for p in problems(dag) if p.startswith("cycle")]
    assert cycle == "cycle: a -> b -> a"


def test_self_loop_is_a_cycle() -> None:
    dag = Dag()
    a = dag.node(use_int)
    a >> a
    assert "cycle: use_int -> use_int" in problems(dag)


def test_two_upstreams_into_one_plain_parameter() -> None:
    dag = Dag()
    x, y = dag.node(make_int, label="x"), dag.node(make_int, label="y")
    [x, y] >> dag.node(use_int)
    (p,) = problems(dag)
    assert "parameter v: int is fed by several upstreams ('x', 'y')" in p


def test_fan_in_into_list_parameter_and_fan_out() -> None:
    dag = Dag()
    src = dag.node(make_int)
    branches = [dag.node(use_int, label=f"b{i}") for i in range(3)]
    sink = dag.node(collect)
    src >> branches
    branches >> sink
    plan = dag.validate() or dag.plan()
    assert sorted(u for u, _p, c in plan.by_label["collect"].bindings if c) == [1, 2, 3]


def test_ambiguous_match_asks_for_explicit_binding_and_binding_wins() -> None:
    dag = Dag()
    a = dag.node(make_int, label="a")
    two = dag.node(use_two)
    a >> two
    found = problems(dag)
    assert any("matches several parameters of 'use_two': a: int, b: int" in p for p in found)

    dag = Dag()
    a, b = dag.node(make_int, label="a"), dag.node(make_int, label="b")
    dag.node(use_two).bind(a=a, b=b)
    dag.validate()
    assert sorted(dag.plan().by_label["use_two"].bindings) == [(0, "a", False), (1, "b", False)]


def test_binding_to_unknown_parameter_names_parameters() -> None:
    dag = Dag()
    a = dag.node(make_int)
    dag.node(use_int).bind(nope=a)
    found = problems(dag)
    assert any("node 'use_int' has no parameter 'nope' (parameters: v: int)" in p for p in found)


def test_order_only_edge_and_parameterless_downstream_are_allowed() -> None:
    dag = Dag()
    a = dag.node(make_int)
    s = dag.node(make_str)
    s.after(a)
    a >> dag.node(no_params)
    dag.validate()
    assert dag.plan().by_label["make_str"].bindings == ()


def test_unknown_label_from_another_dag() -> None:
    other = Dag("other")
    foreign = other.node(make_int)
    dag = Dag("mine")
    dag.connect(foreign, dag.node(use_int))
    assert any("node 'make_int' is not in DAG 'mine'" in p for p in problems(dag))


def test_edges_in_the_order_added_each_once() -> None:
    other = Dag("other")
    foreign = other.node(make_int)
    dag = Dag()
    a, b, c = dag.node(make_int), dag.node(use_int), dag.node(use_two)
    a >> b >> c
    c.bind(a=a)
    a >> b  # the same edge again
    c.after(a)
    dag.connect(foreign, c)
    got = [(e.upstream, e.downstream, e.param, e.order_only) for e in dag.edges]
    assert got == [
        (a, b, None, False),
        (b, c, None, False),
        (a, c, "a", False),
        (a, c, None, True),
        (foreign, c, None, False),
    ]
    assert repr(dag) == "<Dag 'dag': 3 nodes, 5 edges>"


def test_a_chain_leaves_the_collector_its_nodes_only() -> None:
    """Issues 7 and 18: each node leaves the cyclic GC one object to track (its DagNode:
    the namespace entry is made on first look) and its edge none, so building a large DAG
    does not slow down as the collector's full passes over it grow; its plan adds none."""
    dag = Dag()
    prev = dag.node(use_int, label="n0")
    gc.collect()
    before = len(gc.get_objects())
    for i in range(1, 1001):
        prev = prev >> dag.node(use_int, label=f"n{i}")
    gc.collect()
    assert len(gc.get_objects()) - before <= 1000 + 100
    assert len(dag.edges) == 1000
    plan = dag.plan()
    gc.collect()
    assert len(gc.get_objects()) - before <= 1000 + 100
    assert plan.successors[0] == 1 and plan.upstreams[1] == 0  # an index, not a tuple
    assert plan.nodes[1].successors == (2,) and plan.nodes[1].upstreams == (0,)
    assert plan.node(1) is plan.nodes[1] is plan.by_label["n1"]
    assert plan.nodes[1].bindings == ((0, "v", False),)
    assert list(plan.order) == list(range(1001))
    assert len(dag.namespace) == 1001  # every entry, once looked for
    assert dag["n7"].nsnode is dag.namespace.get("n7")


def test_namespace_entries_made_on_first_look_keep_their_names_and_errors() -> None:
    """A node's entry is registered when the namespace is next looked at, as if at once:
    the same leaves, in the same order, and the same errors."""
    dag = Dag()
    dag.node(use_int, label="a")
    dag.node(use_int, label="a-b")  # not an identifier: its leaf is "a_b", made at once
    dag.node(use_int, label="c")

    def nested(v: int) -> int:  # a nested function: registered at once with its locals
        return v

    dag.node(nested, label="d")
    dag.node(use_int, label="a_b")  # its leaf is taken by "a-b": "a_b_2"
    assert dag.namespace.nsrefs() == ["a", "a_b", "c", "d", "a_b_2"]
    with pytest.raises(DuplicateNameError, match="'c' is already registered"):
        dag.namespace.register(use_str, "c")
    dag.node(use_int, label="e")
    with pytest.raises(DuplicateNameError, match="cannot create branch 'e'"):
        dag.namespace.register(use_str, "e:f")
    assert dag["e"].nsnode is dag.namespace.get("e")
    other = Dag("other", namespace=dag.namespace)  # a second Dag on the same namespace
    other.node(use_int, label="g")
    dag.node(use_int, label="g")  # "g" is the other Dag's now
    assert dag.namespace.nsrefs()[-2:] == ["g", "g_2"]


def loose(x):  # type: ignore[no-untyped-def]  # unannotated on purpose
    return x


def test_nodes_of_one_callable_are_each_wired_by_their_own_upstream() -> None:
    dag = Dag()
    i, s = dag.node(make_int), dag.node(make_str)
    i >> dag.node(use_int, label="exact")
    i >> dag.node(loose, label="loose") >> dag.node(use_int, label="after_loose")
    s >> dag.node(loose, label="loose_str")
    i >> dag.node(collect, label="one_into_list")
    i >> dag.node(collect, label="another_into_list")
    plan = dag.plan()
    bindings = {n.label: n.bindings for n in plan.nodes if n.bindings}
    assert bindings == {
        "exact": ((0, "v", False),),
        "loose": ((0, "x", False),),
        "after_loose": ((3, "v", False),),
        "loose_str": ((1, "x", False),),
        "one_into_list": ((0, "xs", True),),
        "another_into_list": ((0, "xs", True),),
    }
    ints = {plan.by_label[label].param_types["v"] for label in ("exact", "after_loose")}
    assert ints == {int}
    shared = plan.by_label["exact"].param_types
    assert shared is plan.by_label["after_loose"].param_types  # one callable, one mapping
    with pytest.raises(TypeError):
        shared["v"] = str  # type: ignore[index]

    bad = Dag("bad")
    i, s = bad.node(make_int), bad.node(make_str)
    i >> bad.node(use_int, label="fine")
    s >> bad.node(use_int, label="wrong_type")
    i >> bad.node(use_two, label="two_ints")
    assert sorted(problems(bad)) == [
        "edge 'make_int' -> 'two_ints': 'make_int' returns int, which matches several "
        "parameters of 'two_ints': a: int, b: int; bind it explicitly with "
        "two_ints.bind(a=make_int)",
        "edge 'make_str' -> 'wrong_type': 'make_str' returns str, which fits no parameter of "
        "'wrong_type' (v: int); bind it with wrong_type.bind(param=make_str) or make it "
        "ordering-only with wrong_type.after(make_str)",
        "node 'two_ints': required parameter a: int is fed by nothing (upstreams: "
        "'make_int'); add an edge, bind one, or give it a default",
        "node 'two_ints': required parameter b: int is fed by nothing (upstreams: "
        "'make_int'); add an edge, bind one, or give it a default",
        "node 'wrong_type': required parameter v: int is fed by nothing (upstreams: "
        "'make_str'); add an edge, bind one, or give it a default",
    ]


def test_duplicate_label() -> None:
    dag = Dag()
    dag.node(make_int)
    with pytest.raises(DuplicateNameError, match="label=") as info:
        dag.node(make_int)
    assert "'make_int'" in str(info.value)


def test_context_parameter_is_not_wired() -> None:
    class MyContext(DagContext):
        pass

    def with_ctx(v: int, ctx: MyContext) -> int:
        return v

    dag = Dag()
    dag.node(make_int) >> dag.node(with_ctx)
    dag.validate()
    node = dag.plan().by_label["with_ctx"]
    assert node.context_param == "ctx" and node.context_type is MyContext


def test_closure_with_future_annotations_resolves_types() -> None:
    @inline
    def producer() -> list[int]:
        return [1]

    def consumer(items: list[int]) -> int:
        return len(items)

    dag = Dag()
    dag.node(producer) >> dag.node(consumer)
    dag.validate()
    assert dag.plan().by_label["consumer"].bindings == ((0, "items", False),)


def test_unresolvable_annotation_is_a_validation_problem() -> None:
    def broken(v: NoSuchType) -> int:  # type: ignore[name-defined]  # noqa: F821
        return 1

    dag = Dag()
    dag.node(broken)
    assert any("node 'broken': cannot resolve type hints" in p for p in problems(dag))


def test_source_inputs_are_checked() -> None:
    dag = Dag()
    dag.node(use_int) >> dag.node(use_int, label="next")
    plan = dag.plan()
    with pytest.raises(InputError) as info:
        plan.structure_inputs({"use_int": {"w": 1}, "ghost": {}}, stored=False)
    msg = str(info.value)
    assert "unknown node 'ghost'" in msg
    assert "node 'use_int' has no input parameter 'w'" in msg
    assert "node 'use_int': missing input for required parameter v: int" in msg


def test_render_mermaid_and_dot() -> None:
    dag = Dag("render")
    a = dag.node(make_int)
    b = dag.node(use_int)
    a >> b
    b.after(a)
    mermaid = dag.to_mermaid(statuses={"make_int": "completed"})
    assert mermaid.startswith("flowchart TD")
    assert 'n0["make_int"]' in mermaid and "n0 --> n1" in mermaid and "n0 -.-> n1" in mermaid
    assert "class n0 completed" in mermaid
    dot = dag.to_dot()
    assert dot.startswith('digraph "render" {')
    assert '"make_int" -> "use_int";' in dot


def test_map_over_sub_dag_must_have_one_source_and_sink() -> None:
    sub = Dag("sub")
    sub.node(make_int)
    sub.node(make_str)
    dag = Dag()
    dag.node(make_int) >> dag.map(sub, label="each")
    found = problems(dag)
    assert any("sub-DAG 'sub' must have exactly one source node, it has 2" in p for p in found)


class _Scale:
    """A callable object: its parameters and types come from its class's ``__call__``."""

    def __init__(self, k: int) -> None:
        self.k = k

    def __call__(self, x: int) -> int:
        return x * self.k


def _three() -> int:
    return 3


def _add(x: int, y: int) -> float:
    return x + y


def test_callable_objects_and_partials_are_wired_by_their_annotations() -> None:
    dag = Dag()
    src = dag.node(_three)
    src >> dag.node(_Scale(2), label="scale")
    src >> dag.node(functools.partial(_add, 10), label="plus")
    plan = dag.plan()
    by_label = {n.label: n for n in plan.nodes}
    assert dict(by_label["scale"].param_types) == {"x": int}
    assert dict(by_label["plus"].param_types) == {"y": int}
    assert by_label["scale"].output_type is int and by_label["plus"].output_type is float
    result = anyio.run(DagRunner(dag).run)
    assert result.outputs == {"scale": 6, "plus": 13.0}


def test_drawing_a_dag_with_an_edge_to_another_dags_node_names_it() -> None:
    one, two = Dag("one"), Dag("two")
    one.node(_three) >> two.node(_Scale(2), label="scale")
    for draw in (one.to_mermaid, one.to_dot):
        with pytest.raises(DagValidationError, match=r"'scale' is not in DAG 'one'"):
            draw()
    assert "scale" in two.to_mermaid()  # the other Dag draws its own node
