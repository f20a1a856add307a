"""A fire's payload as a run's inputs.

A payload is JSON-safe data (it is stored with the fire, so a new engine can resume the run
after a crash). It is either ``{"label": {"param": value}}`` by source node, or
``{"param": value}`` by source parameter name (as ``await dag(**kwargs)`` takes them); the
trigger's static ``inputs`` come first and the payload overrides them. Values are restored to
each parameter's annotated type through the one converter (an ISO string becomes a
``datetime`` for a ``datetime`` parameter).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from plait.converter import structure, to_json_safe
from plait.dag import Dag
from plait.errors import ConversionError, InputError
from plait.introspect import EMPTY

__all__ = ["json_payload", "run_inputs"]


def json_payload(payload: Mapping[str, Any] | None, *, trigger: str) -> dict[str, Any] | None:
    """``payload`` as JSON-safe data (raises :class:`ConversionError` naming the trigger)."""
    if payload is None:
        return None
    data = to_json_safe(dict(payload), where=f"payload of trigger {trigger!r}")
    assert isinstance(data, dict)
    return data


def _by_label(dag: Dag, data: Mapping[str, Any], where: str) -> dict[str, dict[str, Any]]:
    plan = dag.plan()
    sources = {plan.labels[i]: plan.node(i) for i in plan.sources}
    if data and all(k in sources and isinstance(v, Mapping) for k, v in data.items()):
        return {label: dict(params) for label, params in data.items()}
    out: dict[str, dict[str, Any]] = {}
    used: set[str] = set()
    for label, node in sources.items():
        for p in node.input_params:
            if p.name in data:
                out.setdefault(label, {})[p.name] = data[p.name]
                used.add(p.name)
    unknown = sorted(set(data) - used)
    if unknown:
        names = sorted({p.name for n in sources.values() for p in n.input_params})
        raise InputError(
            f"{where}: DAG {dag.nsref!r} has no source parameter or source node "
            f"{', '.join(map(repr, unknown))} (source parameters: {', '.join(names) or 'none'})"
        )
    return out


def run_inputs(
    dag: Dag, static: Mapping[str, Any], payload: Mapping[str, Any] | None, *, where: str
) -> dict[str, dict[str, Any]]:
    """The ``source_inputs`` of a run: ``static`` overridden by ``payload``, typed."""
    merged = _by_label(dag, static, where)
    for label, params in _by_label(dag, payload or {}, where).items():
        merged.setdefault(label, {}).update(params)
    plan = dag.plan()
    typed: dict[str, dict[str, Any]] = {}
    for label, params in merged.items():
        types = {p.name: p.annotation for p in plan.by_label[label].input_params}
        typed[label] = {}
        for name, value in params.items():
            try:
                typed[label][name] = structure(
                    value, types.get(name, EMPTY), where=f"{where}: input {label}.{name}"
                )
            except ConversionError as exc:
                raise InputError(str(exc)) from exc
    return typed
