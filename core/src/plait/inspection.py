"""One inspection tree: a recorded run with its nodes, edges and sub-runs (map elements,
call nodes, switch branches, ``ctx.call`` calls) as one :class:`~plait.records.RunTree`.

Every provenance backend gets :func:`inspect_run` from the queries of the
:class:`~plait.protocols.ProvenanceBackend` protocol (and edge traversals when the backend
offers ``get_edge_traversals``); a backend may answer faster with its own
``inspect_run(run_id)`` method (the :class:`~plait.protocols.RunInspector` capability),
which :func:`inspect_run` then uses. :class:`InspectsRuns` gives a backend class the
default method. Outputs are not part of the tree: :func:`node_output` loads one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import attrs

from plait.converter import structure
from plait.errors import RunNotFoundError
from plait.protocols import ProvenanceBackend, RunInspector
from plait.records import EdgeRecord, NodeRecord, RunRecord, RunTree

__all__ = [
    "InspectsRuns",
    "build_run_tree",
    "child_name",
    "inspect_run",
    "node_output",
    "sub_run_order",
    "without_outputs",
]


async def inspect_run(prov: ProvenanceBackend, run_id: str) -> RunTree:
    """The run ``run_id`` as a tree, from the backend's own ``inspect_run`` if it has one.

    Raises :class:`~plait.errors.RunNotFoundError` naming the run when it is not recorded.
    """
    if isinstance(prov, RunInspector):
        return await prov.inspect_run(run_id)
    return await build_run_tree(prov, run_id)


async def build_run_tree(prov: ProvenanceBackend, run_id: str) -> RunTree:
    """The default implementation: ``get_run``, ``get_node_executions``,
    ``get_edge_traversals`` (if offered) and ``list_runs(parent_run_id=...)``, recursively."""
    run = await prov.get_run(run_id)
    return await _tree(prov, run, name="", via="")


def without_outputs(records: Iterable[NodeRecord]) -> tuple[NodeRecord, ...]:
    """Node records as a tree holds them: without their outputs."""
    return tuple(attrs.evolve(r, output=None) if r.output is not None else r for r in records)


def child_name(
    parent: RunRecord, node_types: Mapping[str, str], child: RunRecord
) -> tuple[str, str]:
    """A sub-run's ``name`` (its nsref below ``parent``'s) and ``via`` (the type of the
    node that made it, by ``node_types`` of the parent's nodes, or ``"ctx.call"``)."""
    name = child.dag_nsref.removeprefix(f"{parent.dag_nsref}/")
    caller, sep, _entry = name.partition("/call:")
    return name, "ctx.call" if sep else node_types.get(caller.split("[", 1)[0], "")


def sub_run_order(run: RunRecord) -> tuple[datetime, str]:
    """The order of a tree's children: when they started, then by nsref."""
    return run.started_at, run.dag_nsref


async def _tree(prov: ProvenanceBackend, run: RunRecord, *, name: str, via: str) -> RunTree:
    nodes = without_outputs(await prov.get_node_executions(run.run_id))
    get_edges = getattr(prov, "get_edge_traversals", None)
    edges: tuple[EdgeRecord, ...] = tuple(await get_edges(run.run_id)) if get_edges else ()
    types = {rec.label: rec.node_type for rec in nodes}
    children = []
    for sub in sorted(await prov.list_runs(parent_run_id=run.run_id), key=sub_run_order):
        child, child_via = child_name(run, types, sub)
        children.append(await _tree(prov, sub, name=child, via=child_via))
    return RunTree(run=run, nodes=nodes, edges=edges, children=tuple(children), name=name, via=via)


async def node_output(prov: ProvenanceBackend, run_id: str, label: str, as_type: Any = None) -> Any:
    """The stored output of node ``label`` of run ``run_id`` (JSON-safe data, or restored as
    ``as_type``); a LookupError naming the run and node when there is none."""
    for rec in await prov.get_node_executions(run_id):
        if rec.label == label:
            if as_type is None or not rec.status.has_output:
                return rec.output
            return structure(rec.output, as_type, where=f"run {run_id} node {label!r} output")
    raise RunNotFoundError(f"run {run_id!r} has no recorded node {label!r}")


class InspectsRuns:
    """Gives a provenance backend class ``await prov.inspect_run(run_id)`` (the default
    :func:`build_run_tree`); override it to answer faster."""

    async def inspect_run(self, run_id: str) -> RunTree:
        """The run ``run_id`` with its nodes, edges and sub-runs as one tree."""
        prov: Any = self
        return await build_run_tree(prov, run_id)
