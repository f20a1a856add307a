"""The executor contract: what plait hands an executor, and what it gets back.

An executor (see :class:`plait.protocols.Executor`) receives a :class:`NodeCall`: the node's
label, its function and its arguments, and the node's :class:`~plait.context.DagContext`.
It calls it where its work runs (a thread, a worker process, a cluster) and returns what
the call returned: ``(value, placement, log_lines)``. ``placement`` is a :class:`Placement`
(host, process id, worker) when the runner records where nodes ran
(``call.record_placement``), ``None`` otherwise, so that nothing is looked up that no record
will hold. ``log_lines`` are the node's ``logging`` records, collected where the call ran
when the runner keeps them (``call.logs``, a :class:`~plait.logcapture.LogCapture`), else
``()``: a worker process or a cluster worker sends them back with the value. When the
function raises, the exception carries the lines logged before it
(:func:`plait.logcapture.lines_of`); it pickles with them.

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
from plait.logcapture import LogCapture
from plait.records import LogRecord

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


#: What calling a :class:`NodeCall` returns, and what ``Executor.run`` returns: the value,
#: where it ran, and the log lines the call emitted (when ``NodeCall.logs`` asked for them).
CallResult: TypeAlias = tuple[Any, Placement | None, tuple[LogRecord, ...]]


@attrs.frozen(kw_only=True)
class NodeCall:
    """One call of a node's function, as the runner hands it to an executor.

    Call it (``call()``, or ``call(worker=...)`` to name the worker in its placement) where
    the work should run: it makes ``context`` the current context
    (:func:`plait.current_context`) for the duration of the call, collects the log lines
    ``logs`` asks for, calls ``function(**arguments)`` and returns
    ``(value, placement, log_lines)``. An exception raised by the function propagates
    unchanged (carrying the lines logged before it, see :func:`plait.logcapture.lines_of`).
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
    #: which log lines to collect while the function runs (``None``: none)
    logs: LogCapture | None = None

    def __call__(self, worker: str | None = None) -> CallResult:
        token = CURRENT_CONTEXT.set(self.context)
        try:
            if self.logs is None:
                value = self.function(**self.arguments)
                lines: tuple[LogRecord, ...] = ()
            else:
                with self.logs.collect() as collected:
                    value = self.function(**self.arguments)
                lines = collected.records()
        finally:
            CURRENT_CONTEXT.reset(token)
        if not self.record_placement:
            return value, None, lines
        return value, Placement.here(worker), lines
