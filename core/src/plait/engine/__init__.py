"""The trigger engine: ``Engine`` runs triggers in the foreground (``plait engine``)."""

from __future__ import annotations

from plait.engine.engine import Engine, serve_until_signalled
from plait.engine.liveness import ALIVE_WITHIN, engine_alive
from plait.engine.resolve import resolve_dag
from plait.engine.runs import find_fire_run

__all__ = [
    "ALIVE_WITHIN",
    "Engine",
    "engine_alive",
    "find_fire_run",
    "resolve_dag",
    "serve_until_signalled",
]
