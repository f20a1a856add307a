"""``plait.current_context()`` inside nodes that ask for no context: plain nodes on every
kind of call, and the nodes of map elements, recorded or not."""

from __future__ import annotations

from typing import Any

import pytest
from _recorder import Recorder

from plait import Dag, DagContext, DagRunner, current_context, inline
from plait.plugins import PluginHost

pytestmark = pytest.mark.anyio


def seen() -> tuple[str, str, str]:
    ctx = current_context()
    assert isinstance(ctx, DagContext)
    return ctx.run_id, ctx.dag_nsref, ctx.node_label


@inline
def on_loop(x: int) -> tuple[str, str, str]:
    return seen()


async def awaited(x: int) -> tuple[str, str, str]:
    return seen()


def threaded(x: int) -> tuple[str, str, str]:
    return seen()


@pytest.mark.parametrize("fn", [on_loop, awaited, threaded])
async def test_a_node_without_a_context_parameter_sees_its_context(fn: Any) -> None:
    dag = Dag("ctx")
    dag.node(fn, label="it")
    result = await dag(x=1)
    assert result.outputs == {"it": (result.run_id, "ctx", "it")}
    assert current_context() is None


@pytest.mark.parametrize("fn", [on_loop, awaited, threaded])
@pytest.mark.parametrize("observed", [False, True])
async def test_map_element_nodes_see_their_element(
    fn: Any, observed: bool, host: PluginHost
) -> None:
    """Unrecorded elements have no run of their own: the context names the parent run and
    the element's sub-DAG. Recorded ones name their sub-run."""
    recorder = Recorder()
    if observed:
        host.register(recorder, name="recorder")
    sub = Dag("sub")
    sub.node(fn, label="inner")
    dag = Dag("outer")

    @inline
    def items() -> list[int]:
        return [10, 20]

    dag.node(items) >> dag.map(sub, label="each")
    result = await DagRunner(dag, host=host).run()
    assert result.ok, result.error
    (rid0, nsref0, label0), (rid1, nsref1, label1) = result.outputs["each"]
    assert (nsref0, nsref1) == ("outer/each[0]", "outer/each[1]")
    assert label0 == label1 == "inner"
    if observed:
        sub_runs = {r.dag_nsref: r.run_id for r in recorder.runs_started}
        assert (rid0, rid1) == (sub_runs["outer/each[0]"], sub_runs["outer/each[1]"])
    else:
        assert rid0 == rid1 == result.run_id
