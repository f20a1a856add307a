"""plait: compose plain callables into DAGs, run them concurrently, remember every run.

Every public name is imported on first use (PEP 562), so ``import plait`` stays cheap: the
engine, the converter (cattrs) and the cache load only when a program touches them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from plait.cache import cached, register_cached_callable
    from plait.context import DagContext, current_context
    from plait.dag import CallNode, Dag, DagNode, MapNode, SwitchNode
    from plait.entries import CachePolicy, entry
    from plait.errors import CachePushback, DagPause, DagValidationError, PlaitError
    from plait.factory import DagFactory, dag_factory
    from plait.hookspecs import hookimpl
    from plait.markers import inline
    from plait.namespace import Namespace, NamespaceNode
    from plait.null import NullProvenance
    from plait.plugins import PluginHost, get_cache, get_executor, get_provenance
    from plait.records import EdgeRecord, NodeRecord, NodeStatus, RunRecord, RunStatus
    from plait.runner import DagRunner, DagRunResult

# Public name -> the module that defines it; one sorted row per name.
_EXPORTS: dict[str, str] = {
    "CachePolicy": "plait.entries",
    "CachePushback": "plait.errors",
    "CallNode": "plait.dag",
    "Dag": "plait.dag",
    "DagContext": "plait.context",
    "DagFactory": "plait.factory",
    "DagNode": "plait.dag",
    "DagPause": "plait.errors",
    "DagRunResult": "plait.runner",
    "DagRunner": "plait.runner",
    "DagValidationError": "plait.errors",
    "EdgeRecord": "plait.records",
    "MapNode": "plait.dag",
    "Namespace": "plait.namespace",
    "NamespaceNode": "plait.namespace",
    "NodeRecord": "plait.records",
    "NodeStatus": "plait.records",
    "NullProvenance": "plait.null",
    "PlaitError": "plait.errors",
    "PluginHost": "plait.plugins",
    "RunRecord": "plait.records",
    "RunStatus": "plait.records",
    "SwitchNode": "plait.dag",
    "cached": "plait.cache",
    "current_context": "plait.context",
    "dag_factory": "plait.factory",
    "entry": "plait.entries",
    "get_cache": "plait.plugins",
    "get_executor": "plait.plugins",
    "get_provenance": "plait.plugins",
    "hookimpl": "plait.hookspecs",
    "inline": "plait.markers",
    "register_cached_callable": "plait.cache",
}

__all__ = [
    "CachePolicy",
    "CachePushback",
    "CallNode",
    "Dag",
    "DagContext",
    "DagFactory",
    "DagNode",
    "DagPause",
    "DagRunResult",
    "DagRunner",
    "DagValidationError",
    "EdgeRecord",
    "MapNode",
    "Namespace",
    "NamespaceNode",
    "NodeRecord",
    "NodeStatus",
    "NullProvenance",
    "PlaitError",
    "PluginHost",
    "RunRecord",
    "RunStatus",
    "SwitchNode",
    "cached",
    "current_context",
    "dag_factory",
    "entry",
    "get_cache",
    "get_executor",
    "get_provenance",
    "hookimpl",
    "inline",
    "register_cached_callable",
]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """Import the module behind a public name on first use and keep the name here."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'plait' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
