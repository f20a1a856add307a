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
