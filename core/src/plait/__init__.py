"""plait: compose plain callables into DAGs, run them concurrently, remember every run."""

from __future__ import annotations

from plait.errors import DagPause, DagValidationError, PlaitError
from plait.hookspecs import hookimpl
from plait.null import NullProvenance
from plait.plugins import PluginHost, get_cache, get_executor, get_provenance
from plait.records import EdgeRecord, NodeRecord, NodeStatus, RunRecord, RunStatus

__all__ = [
    "DagPause",
    "DagValidationError",
    "EdgeRecord",
    "NodeRecord",
    "NodeStatus",
    "NullProvenance",
    "PlaitError",
    "PluginHost",
    "RunRecord",
    "RunStatus",
    "get_cache",
    "get_executor",
    "get_provenance",
    "hookimpl",
]

__version__ = "0.1.0"
