"""Keyword arguments of ``await dag(...)`` turned into per-source run inputs.

Two forms, mixable in one call:

- by parameter name: ``await dag(url=...)`` gives ``url`` to every source node that has a
  parameter of that name;
- by node label: ``await dag(fetch={"url": ...})`` gives the dict to the source node
  labelled ``fetch``.

A keyword that is both a source label and a source parameter name is ambiguous, as is a
parameter given both ways to one node: each raises :class:`plait.errors.InputError` naming
it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from plait.errors import InputError
from plait.introspect import ParamInfo

__all__ = ["source_inputs"]


class SourceNode(Protocol):
    """What this module needs of a compiled source node."""

    @property
    def label(self) -> str: ...

    @property
    def input_params(self) -> tuple[ParamInfo, ...]: ...


def source_inputs(
    dag_name: str, sources: Sequence[SourceNode], kwargs: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    """``{label: {param: value}}`` for the runner, from ``kwargs`` in either form."""
    by_label = {node.label: node for node in sources}
    param_names = {p.name for node in sources for p in node.input_params}
    inputs: dict[str, dict[str, Any]] = {}
    unknown = []
    for key, value in kwargs.items():
        if key in by_label:
            if key in param_names:
                raise InputError(
                    f"DAG {dag_name!r}: {key!r} is ambiguous: it is a source node's label and "
                    f"a source parameter; pass run_inputs through DagRunner.run(source_inputs="
                    f"{{{key!r}: {{...}}}}) or rename the node"
                )
            if not isinstance(value, Mapping):
                raise InputError(
                    f"DAG {dag_name!r}: inputs of source node {key!r} must be a dict of "
                    f"parameter values, got {type(value).__name__}"
                )
            inputs.setdefault(key, {}).update(value)
        elif key not in param_names:
            unknown.append(key)
    if unknown:
        raise InputError(
            f"DAG {dag_name!r}: no source node takes {', '.join(map(repr, sorted(unknown)))} "
            f"(source parameters: {', '.join(sorted(param_names)) or 'none'}; "
            f"source nodes: {', '.join(by_label) or 'none'})"
        )
    for node in sources:
        given = inputs.get(node.label)
        for p in node.input_params:
            if p.name in kwargs and p.name not in by_label:
                if given is not None and p.name in given:
                    raise InputError(
                        f"DAG {dag_name!r}: parameter {p.name!r} of source node "
                        f"{node.label!r} is given twice: by name and in {node.label}={{...}}"
                    )
                inputs.setdefault(node.label, {})[p.name] = kwargs[p.name]
    return inputs
