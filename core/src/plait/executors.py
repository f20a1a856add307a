"""The executor contract: what plait hands an executor, and what it gets back.

An executor (see :class:`plait.protocols.Executor`) receives a :class:`NodeCall`: the node's
label, its function and its arguments, and the node's :class:`~plait.context.DagContext`.
It calls it where its work runs (a thread, a worker process, a cluster) and returns what
the call returned: ``(value, placement)``. ``placement`` is a :class:`Placement` (host,
process id, worker) when the runner records where nodes ran (``call.record_placement``),
``None`` otherwise, so that nothing is looked up that no record will hold.

A ``NodeCall`` holds nothing private of the runner: it pickles by value (the function by
reference, as pickle does; the context without its link to the run), so an executor that
sends work to another process pickles the call, calls it there and pickles the result back.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

import attrs

from plait.context import CURRENT_CONTEXT, DagContext

__all__ = ["CallResult", "NodeCall", "Placement"]


@attrs.frozen(kw_only=True)
class Placement:
    """Where a call ran: the host name, the process id and the worker (a thread name, a
    worker process name, a cluster worker's address)."""

    host: str
    pid: int
    worker: str

    @classmethod
    def here(cls, worker: str | None = None) -> Placement:
        """This host and process; ``worker`` defaults to the current thread's name."""
        if worker is None:
            worker = threading.current_thread().name
        return cls(host=socket.gethostname(), pid=os.getpid(), worker=worker)


#: What calling a :class:`NodeCall` returns, and what ``Executor.run`` returns.
CallResult: TypeAlias = tuple[Any, Placement | None]


@attrs.frozen(kw_only=True)
class NodeCall:
    """One call of a node's function, as the runner hands it to an executor.

    Call it (``call()``, or ``call(worker=...)`` to name the worker in its placement) where
    the work should run: it makes ``context`` the current context
    (:func:`plait.current_context`) for the duration of the call, calls
    ``function(**arguments)`` and returns ``(value, placement)``. An exception raised by the
    function propagates unchanged.
    """

    #: the node's label in its DAG
    label: str
    #: the node's function (a plain sync callable)
    function: Callable[..., Any]
    #: keyword arguments of the call
    arguments: Mapping[str, Any]
    #: the node's context, current while the function runs
    context: DagContext | None = None
    #: whether the runner records where the call ran (then the result carries a Placement)
    record_placement: bool = False

    def __call__(self, worker: str | None = None) -> CallResult:
        token = CURRENT_CONTEXT.set(self.context)
        try:
            value = self.function(**self.arguments)
        finally:
            CURRENT_CONTEXT.reset(token)
        if not self.record_placement:
            return value, None
        return value, Placement.here(worker)
