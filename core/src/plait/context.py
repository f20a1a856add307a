"""``DagContext``: what a node may know about the run it is part of.

:func:`current_context` answers inside every node, whether or not the node asks for a
context parameter, on every executor. The engine keeps the current node in the
:data:`CURRENT_CONTEXT` context variable: a :class:`DagContext`, or for the cheapest
nodes (inline ones) a ``(source, node)`` pair that builds the context only when asked.
"""

from __future__ import annotations

import contextvars
from typing import Any, Protocol

from plait.converter import to_json_safe
from plait.errors import CallError

__all__ = ["DagContext", "current_context"]


class RunData(Protocol):
    """The run-scoped data a context reads and writes (the engine's run state)."""

    data: dict[str, Any]

    def set_data(self, key: str, value: Any, json_data: Any) -> None: ...

    def call_entry(self, caller: str, nsref: str, kwargs: dict[str, Any]) -> Any: ...

    async def acall_entry(self, caller: str, nsref: str, kwargs: dict[str, Any]) -> Any: ...


class ContextSource(Protocol):
    """Builds the context of a node on demand (see :data:`CURRENT_CONTEXT`)."""

    def context_of(self, node: Any) -> DagContext: ...


#: The current node: a DagContext, a ``(ContextSource, node)`` pair, or ``None``.
CURRENT_CONTEXT: contextvars.ContextVar[DagContext | tuple[ContextSource, Any] | None] = (
    contextvars.ContextVar("plait_current_context", default=None)
)


class DagContext:
    """Injected into a node parameter annotated ``DagContext`` (or a subclass).

    ``set_data``/``get_data`` keep small named values for the run: visible to later nodes,
    stored by the provenance backend, and restored when the run is restarted. A context
    pickles without its link to the run: in another process (the ``process`` executor, a
    Dask worker) it still names the run and the node, but ``set_data`` stores nothing there
    and ``get_data`` returns the default.
    """

    __slots__ = ("_run", "dag_nsref", "node_label", "run_id")

    def __init__(
        self, *, dag_nsref: str, node_label: str, run_id: str, run: RunData | None = None
    ) -> None:
        self.dag_nsref = dag_nsref
        self.node_label = node_label
        self.run_id = run_id
        self._run = run

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(dag_nsref={self.dag_nsref!r}, "
            f"node_label={self.node_label!r}, run_id={self.run_id!r})"
        )

    def __getstate__(self) -> dict[str, Any]:
        return {"dag_nsref": self.dag_nsref, "node_label": self.node_label, "run_id": self.run_id}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.dag_nsref = state["dag_nsref"]
        self.node_label = state["node_label"]
        self.run_id = state["run_id"]
        self._run = None

    def set_data(self, key: str, value: Any) -> None:
        """Store ``value`` (anything the converter turns into JSON) under ``key`` for this run."""
        data = to_json_safe(value, where=f"run {self.run_id} data {key!r}")
        if self._run is not None:
            self._run.set_data(key, value, data)

    def call(self, nsref: str, /, **kwargs: Any) -> Any:
        """Call the namespace entry ``nsref`` (of this node's DAG) with ``kwargs`` from a
        sync node running in a worker thread; the entry runs in this thread. Recorded as a
        sub-run of this run (nsref ``"<dag>/<node>/call:<nsref>#<n>"``). An async or
        ``@inline`` node uses :meth:`acall`. Raises :class:`~plait.errors.CallError` for an
        unknown nsref, and whatever the entry raises."""
        return self._linked("call", nsref).call_entry(self.node_label, nsref, kwargs)

    async def acall(self, nsref: str, /, **kwargs: Any) -> Any:
        """:meth:`call` for async nodes: the entry runs as a sub-run through the runner
        (coroutines on the event loop, sync entries on their executor)."""
        return await self._linked("acall", nsref).acall_entry(self.node_label, nsref, kwargs)

    def _linked(self, how: str, nsref: str) -> RunData:
        if self._run is None:
            raise CallError(
                f"node {self.node_label!r}: ctx.{how}({nsref!r}) needs the run, which this "
                "context is not linked to (another process, or an unrecorded map element "
                "that did not ask for a DagContext parameter)"
            )
        return self._run

    def get_data(self, key: str, default: Any = None) -> Any:
        """The value stored under ``key`` in this run (by any node, or before a restart)."""
        if self._run is None:
            return default
        return self._run.data.get(key, default)


def current_context() -> DagContext | None:
    """The context of the node whose code is running now (``None`` outside a run).

    Answers in every node, with or without a ``DagContext`` parameter, on every executor.
    """
    current = CURRENT_CONTEXT.get()
    if type(current) is tuple:
        source, node = current
        return source.context_of(node)
    return current  # type: ignore[return-value]
