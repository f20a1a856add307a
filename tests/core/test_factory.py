"""DAG factories stand for a Dag (node, map, namespace), and per-source inputs of
``await dag(label={...})``."""

from __future__ import annotations

import _fragments
import pytest

from plait import CallNode, Dag, DagFactory, MapNode, Namespace, dag_factory
from plait.errors import FactoryError, InputError, PlaitError
from plait.factory import origin_of

pytestmark = pytest.mark.anyio


@dag_factory
def scaled(factor: int = 2) -> Dag:
    dag = Dag("scaled")

    def scale(n: int) -> int:
        return n * factor

    dag.node(scale)
    return dag


def numbers(n: int) -> list[int]:
    return list(range(n))


def total(values: list[int]) -> int:
    return sum(values)


def double(n: int) -> int:
    return 2 * n


async def test_a_factory_is_a_dag_factory_and_builds_on_call() -> None:
    assert isinstance(scaled, DagFactory)
    assert scaled.__name__ == "scaled" and scaled.__doc__ is None
    dag = scaled(factor=3)
    assert isinstance(dag, Dag)
    result = await dag(n=2)
    assert result.outputs == {"scale": 6}
    call = origin_of(dag)
    assert call is not None and call.args == {"factor": 3}
    assert call.gref == f"{__name__}:scaled"


async def test_a_factory_stands_for_a_dag_in_node_and_map() -> None:
    dag = Dag("outer")
    one = dag.node(double)
    inner = dag.node(scaled)  # built with its defaults, labelled by the factory's name
    assert isinstance(inner, CallNode) and inner.label == "scaled"
    one >> inner
    result = await dag(n=5)
    assert result.outputs == {"scaled": 20}

    mapped = Dag("mapped")
    node = mapped.map(scaled)
    assert isinstance(node, MapNode) and node.label == "map_scaled"
    mapped.node(numbers) >> node >> mapped.node(total)
    result = await mapped(n=4)
    assert result.outputs == {"total": 2 * (0 + 1 + 2 + 3)}


async def test_a_namespace_entry_holding_a_dag_stands_for_it() -> None:
    ns = Namespace()
    entry = ns.register(scaled, "math:triple", args={"factor": 3})
    assert entry.dag is not None
    dag = Dag("outer")
    dag.node(double) >> dag.node(entry)
    assert (await dag(n=1)).outputs == {"triple": 6}


def test_a_factory_needing_arguments_cannot_stand_in_without_them() -> None:
    with pytest.raises(FactoryError, match=r"'repeat' cannot take args \[\]") as caught:
        Dag().node(_fragments.repeat)
    assert "missing a required argument: 'times'" in str(caught.value)


def test_a_factory_that_returns_something_else_is_named() -> None:
    with pytest.raises(FactoryError, match="DAG factory 'not_a_dag' returned str, not a Dag"):
        _fragments.not_a_dag()
    with pytest.raises(FactoryError, match="not_a_dag"):
        Dag().map(_fragments.not_a_dag)


def test_dag_factory_refuses_a_non_callable() -> None:
    with pytest.raises(FactoryError, match="decorates a function"):
        dag_factory(3)  # type: ignore[arg-type]
    assert issubclass(FactoryError, PlaitError) and issubclass(FactoryError, TypeError)


# ---------------------------------------------------------------------- per-source inputs
def fetch(url: str) -> str:
    return f"<{url}>"


def lookup(key: str, url: str = "default") -> str:
    return f"{key}@{url}"


def join(text: str, found: str) -> str:
    return f"{text}+{found}"


def two_sources() -> Dag:
    dag = Dag("two")
    a = dag.node(fetch)
    b = dag.node(lookup)
    c = dag.node(join)
    dag.connect(a, c, param="text")
    dag.connect(b, c, param="found")
    return dag


async def test_inputs_by_node_label() -> None:
    dag = two_sources()
    result = await dag(fetch={"url": "a"}, lookup={"key": "k", "url": "b"})
    assert result.outputs == {"join": "<a>+k@b"}


async def test_inputs_by_name_reach_every_source_that_takes_them() -> None:
    result = await two_sources()(url="u", key="k")
    assert result.outputs == {"join": "<u>+k@u"}


async def test_both_forms_mix() -> None:
    result = await two_sources()(url="u", lookup={"key": "k"})
    assert result.outputs == {"join": "<u>+k@u"}


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"fetch": "a"}, "inputs of source node 'fetch' must be a dict"),
        ({"join": {"text": "x"}}, "no source node takes 'join'"),
        ({"nothing": 1}, "source nodes: fetch, lookup"),
        (
            {"url": "u", "fetch": {"url": "v"}, "key": "k"},
            "'url' of source node 'fetch' is given twice",
        ),
        ({"fetch": {"uri": "a"}, "key": "k"}, "node 'fetch' has no input parameter 'uri'"),
    ],
)
async def test_bad_per_source_inputs_are_input_errors(
    kwargs: dict[str, object], words: str
) -> None:
    with pytest.raises(InputError, match=words):
        await two_sources()(**kwargs)


async def test_a_label_that_is_also_a_parameter_is_ambiguous() -> None:
    def url(url: str) -> str:  # labelled 'url', and takes 'url'
        return url

    dag = Dag("ambiguous")
    dag.node(url)
    with pytest.raises(InputError, match="'url' is ambiguous"):
        await dag(url={"url": "x"})
