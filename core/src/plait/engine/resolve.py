"""Turning a trigger's references into objects: its DAG, its kind's watcher, its store."""

from __future__ import annotations

from typing import Any

from plait.dag import Dag
from plait.errors import PlaitError, TriggerError
from plait.namespace import Namespace
from plait.plugins import PluginHost
from plait.records import BackendKind
from plait.triggers.model import Trigger
from plait.triggers.poll import import_gref
from plait.triggers.store import TriggerStore

__all__ = ["open_trigger_store", "resolve_dag"]


def _as_dag(target: Any, trigger: Trigger) -> Dag:
    if not isinstance(target, Dag) and callable(target):
        target = target()
    if not isinstance(target, Dag):
        raise TriggerError(
            f"trigger {trigger.name!r}: {trigger.dag_ref!r} is a {type(target).__name__}, "
            "not a Dag (or a function returning one)"
        )
    return target


def resolve_dag(trigger: Trigger, namespace: Namespace | None) -> Dag:
    """The Dag a trigger runs: the object itself, an entry of ``namespace``, or the object
    at ``"package.module:attribute"``."""
    ref = trigger.dag
    if isinstance(ref, Dag):
        return ref
    if namespace is not None and ref in namespace:
        entry = namespace.get(ref)
        return _as_dag(entry.fn, trigger)
    where = f"trigger {trigger.name!r}: DAG"
    try:
        target = import_gref(ref, what=where)
    except TriggerError:
        if namespace is not None:
            raise TriggerError(
                f"{where} {ref!r} is neither an entry of the namespace nor an importable "
                "'package.module:attribute'"
            ) from None
        raise
    return _as_dag(target, trigger)


def open_trigger_store(
    spec: TriggerStore | str, host: PluginHost, options: dict[str, Any]
) -> TriggerStore:
    """A trigger store instance: ``spec`` itself, or the backend of that name."""
    if not isinstance(spec, str):
        return spec
    try:
        store: TriggerStore = host.create(BackendKind.TRIGGER_STORE, spec, **options)
    except PlaitError:
        raise
    return store
