"""``--input LABEL.PARAM=VALUE`` strings as run inputs, structured to the parameter types."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import rich_click as click

from plait.converter import structure
from plait.dag import Plan
from plait.errors import ConversionError, InputError
from plait.introspect import EMPTY

__all__ = ["parse_inputs"]


def _json_or_text(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _coerce(raw: str, tp: Any, where: str) -> Any:
    if tp is str:
        return raw
    data = _json_or_text(raw)
    if tp is None or tp is EMPTY or tp is Any:
        return data
    try:
        return structure(data, tp, where=where)
    except ConversionError:
        if data is raw or not isinstance(raw, str):
            raise
        return structure(raw, tp, where=where)


def _targets(plan: Plan, item: str, key: str) -> tuple[list[str], str]:
    """The labels ``LABEL.PARAM`` (or a bare ``PARAM``) feeds, and the parameter."""
    label, dot, param = key.rpartition(".")
    if dot:
        return [label], param
    param = key
    targets = [
        plan.labels[i]
        for i in plan.sources
        if any(p.name == param for p in plan.node(i).input_params)
    ]
    if not targets:
        names = sorted({p.name for i in plan.sources for p in plan.node(i).input_params})
        raise InputError(
            f"--input {item!r}: no source node takes a parameter {param!r} "
            f"(source parameters: {', '.join(names) or 'none'})"
        )
    return targets, param


def parse_inputs(plan: Plan, items: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``LABEL.PARAM=VALUE`` strings as run inputs, structured to the parameter types.

    A value is parsed as JSON when it is valid JSON, else taken as a string; then the
    converter turns it into the parameter's annotated type (``2024-05-01`` becomes a
    ``date`` for a ``date`` parameter). ``PARAM=VALUE`` without a label feeds every source
    node that has a parameter of that name.
    """
    inputs: dict[str, dict[str, Any]] = {}
    for item in items:
        key, eq, raw = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise click.BadParameter(f"{item!r} is not LABEL.PARAM=VALUE", param_hint="--input")
        targets, param = _targets(plan, item, key)
        for target in targets:
            node = plan.by_label.get(target)
            tp = node.param_types.get(param) if node is not None else None
            value = _coerce(raw, tp, where=f"--input {target}.{param}")
            inputs.setdefault(target, {})[param] = value
    return inputs
