"""plait: compose plain callables into DAGs, run them concurrently, remember every run."""

from __future__ import annotations

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
