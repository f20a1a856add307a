"""Wiring by type: the single-edge fast path answers what the full rule answers.

A node with exactly one edge, by type, takes the answer its callable's shape cached for
the upstream's type; with a second (ordering-only) edge the same node goes through every
step of the rule. Both must bind the same parameter, collect the same way, and fail alike.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from plait import Dag, DagContext, DagValidationError


def give_int() -> int:
    return 1


def give_str() -> str:
    return "s"


def give_ints() -> list[int]:
    return [1]


def give_map() -> dict[str, int]:
    return {"a": 1}


def give_loose():  # type: ignore[no-untyped-def]
    return 1


def give_any() -> Any:
    return 1


def nothing() -> None:
    return None


def take_int(x: int) -> int:
    return x


def take_ints(xs: list[int]) -> int:
    return sum(xs)


def take_loose(v):  # type: ignore[no-untyped-def]
    return v


def take_two(a: int, b: str) -> str:
    return b


def take_default(a: int, b: str = "") -> str:
    return b


def take_ctx(x: int, ctx: DagContext) -> int:
    return x


def take_two_ints(a: int, b: int) -> int:
    return a + b


def take_nothing() -> int:
    return 0


def square(v: int) -> int:
    return v * v


UPSTREAMS = [give_int, give_str, give_ints, give_map, give_loose, give_any, nothing]
DOWNSTREAMS = [
    take_int,
    take_ints,
    take_loose,
    take_two,
    take_default,
    take_ctx,
    take_two_ints,
    take_nothing,
    "call",
    "map",
]


def wire(upstream: Any, downstream: Any, *, full_rule: bool) -> tuple[Any, ...] | str:
    """The downstream's (bindings, output type), or 'invalid' when its wiring fails."""
    dag = Dag("wired")
    up = dag.node(upstream, label="up")
    if downstream in ("call", "map"):
        sub = Dag("sub")
        sub.node(square)
        down = dag.map(sub, label="down") if downstream == "map" else dag.node(sub, label="down")
    else:
        down = dag.node(downstream, label="down")
    up >> down
    if full_rule:
        down.after(dag.node(nothing, label="first"))
    try:
        plan = dag.plan()
    except DagValidationError as exc:
        return "invalid" if any("'down'" in p for p in exc.problems) else str(exc)
    node = plan.by_label["down"]
    bindings = tuple((plan.nodes[u].label, name, collect) for u, name, collect in node.bindings)
    return bindings, node.output_type


@pytest.mark.parametrize(
    ("upstream", "downstream"),
    list(itertools.product(UPSTREAMS, DOWNSTREAMS)),
    ids=lambda f: f if isinstance(f, str) else f.__name__,
)
def test_one_edge_by_type_wires_as_the_full_rule(upstream: Any, downstream: Any) -> None:
    assert wire(upstream, downstream, full_rule=False) == wire(upstream, downstream, full_rule=True)


def test_the_cached_answer_is_per_upstream_type() -> None:
    """Many nodes of one callable behind upstreams of different types: each gets its own."""
    dag = Dag("mixed")
    ints = dag.node(give_ints)
    for i, up in enumerate([give_int, give_ints, give_int, give_ints]):
        dag.node(up, label=f"u{i}") >> dag.node(take_ints, label=f"d{i}")
    ints >> dag.node(take_ints, label="last")
    plan = dag.plan()
    collects = [plan.by_label[f"d{i}"].bindings[0][2] for i in range(4)]
    assert collects == [True, False, True, False]
    assert plan.by_label["last"].bindings[0][1:] == ("xs", False)


def test_the_fast_path_leaves_no_required_parameter_unfed() -> None:
    dag = Dag("half")
    dag.node(give_int) >> dag.node(take_two)
    with pytest.raises(DagValidationError) as info:
        dag.validate()
    (problem,) = info.value.problems
    assert problem == (
        "node 'take_two': required parameter b: str is fed by nothing (upstreams: "
        "'give_int'); add an edge, bind one, or give it a default"
    )
