"""``DagContext``: what a node may know about the run it is part of."""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING, Any

from plait.converter import to_json_safe

if TYPE_CHECKING:
    from plait.runner import _RunState

__all__ = ["DagContext", "current_context"]

_CURRENT: contextvars.ContextVar[DagContext | None] = contextvars.ContextVar(
    "plait_current_context", default=None
)


class DagContext:
    """Injected into a node parameter annotated ``DagContext`` (or a subclass).

    ``set_data``/``get_data`` keep small named values for the run: visible to later nodes,
    stored by the provenance backend, and restored when the run is restarted.
    """

    __slots__ = ("_state", "dag_nsref", "node_label", "run_id")

    def __init__(self, *, dag_nsref: str, node_label: str, run_id: str) -> None:
        self.dag_nsref = dag_nsref
        self.node_label = node_label
        self.run_id = run_id
        self._state: _RunState | None = None

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(dag_nsref={self.dag_nsref!r}, "
            f"node_label={self.node_label!r}, run_id={self.run_id!r})"
        )

    def set_data(self, key: str, value: Any) -> None:
        """Store ``value`` (anything the converter turns into JSON) under ``key`` for this run."""
        data = to_json_safe(value, where=f"run {self.run_id} data {key!r}")
        if self._state is not None:
            self._state.set_data(key, value, data)

    def get_data(self, key: str, default: Any = None) -> Any:
        """The value stored under ``key`` in this run (by any node, or before a restart)."""
        if self._state is None:
            return default
        return self._state.data.get(key, default)


def current_context() -> DagContext | None:
    """The context of the node whose code is running now (``None`` outside a run)."""
    return _CURRENT.get()
