"""plait-ui: a local web view of plait runs (SPEC section 14).

``plait ui [--config FILE] [--store PATH] [--host 127.0.0.1] [--port 8765]
[--allow-actions]`` serves a read-only site over a provenance store: runs (filtered,
keyset-paged), each run's DAG drawn as a picture with nodes coloured by status, a timeline,
live updates while it runs, every node's inputs, output, error, logs, attempts, status
history, placement and lineage, the sub-runs of map and call nodes, the triggers of the
store's trigger store with their next fire times and recent fires, and cache statistics.
Build the app yourself with :func:`create_app` and :class:`UiConfig` to embed it in another
ASGI server.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from plait_ui.actions import ActionRefusedError, Actions
    from plait_ui.app import LOCAL_HOSTS, UiConfig, create_app
    from plait_ui.layout import Picture, lay_out
    from plait_ui.queries import BadQueryError, PageNotFoundError

__all__ = [
    "LOCAL_HOSTS",
    "ActionRefusedError",
    "Actions",
    "BadQueryError",
    "PageNotFoundError",
    "Picture",
    "UiConfig",
    "create_app",
    "lay_out",
]

# Loaded on first use: plait imports this package's entry point (plait_ui.plugin) whenever
# it loads its plugins (every DagRunner, every plait command), and the web stack (Starlette,
# Jinja2) must not come with it.
_EXPORTS: dict[str, str] = {
    "LOCAL_HOSTS": "plait_ui.app",
    "ActionRefusedError": "plait_ui.actions",
    "Actions": "plait_ui.actions",
    "BadQueryError": "plait_ui.queries",
    "PageNotFoundError": "plait_ui.queries",
    "Picture": "plait_ui.layout",
    "UiConfig": "plait_ui.app",
    "create_app": "plait_ui.app",
    "lay_out": "plait_ui.layout",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'plait_ui' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
