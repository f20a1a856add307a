"""The log lines of nodes: stdlib ``logging`` records tagged with their run and node, and
collected per node attempt for the provenance backend.

Two mechanisms, both cheap when nobody logs:

- A log record factory (:func:`install_record_factory`, installed by the runner and by
  :class:`~plait.executors.NodeCall` in worker processes) gives every record created while
  a node runs the attributes ``plait_run_id`` and ``plait_label`` (``None`` outside a node),
  so a formatter can show them: ``logging.basicConfig(format="%(plait_label)s %(message)s")``.
- A :class:`LogCapture` (what to keep of one node attempt: the minimum level, at most how
  many lines) collects, while :meth:`LogCapture.collect` is active in a thread or task,
  every record of that level or above that the code running there creates. It works in
  whatever process the node runs in; the lines come back as :class:`~plait.records.LogRecord`
  values for the provenance backend.

Records are created only when their logger is enabled for their level: plait does not
change the levels you set. When logging is not configured at all (the root logger has no
handler), :func:`capturing` lowers the root logger's level to the capture level while runs
record, so ``logger.info`` in a node is kept without printing anything new (with no handler,
Python prints only warnings and errors, as before). A worker process (of the ``process``
executor, a Dask worker) whose logging is not configured gets the same, for good.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import multiprocessing
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import attrs

from plait.context import current_context
from plait.records import LogRecord

__all__ = [
    "DEFAULT_LEVEL",
    "DEFAULT_LIMIT",
    "LogCapture",
    "NodeLines",
    "ShippedLines",
    "capturing",
    "emit",
    "install_record_factory",
    "lines_of",
]

#: Lines below this level are not kept (``logging.INFO``).
DEFAULT_LEVEL = logging.INFO
#: At most this many lines are kept per node attempt; past it, the first and the last
#: halves are kept with one line between them that says how many were dropped.
DEFAULT_LIMIT = 1000

#: The attribute of an exception raised by a node's function that carries the lines the
#: call logged before it raised (set by :meth:`LogCapture.collect`).
EXCEPTION_ATTRIBUTE = "__plait_log_lines__"

_Line = tuple[float, int, str, str, str | None]  # created, level, logger, message, exc_text

_SINK: contextvars.ContextVar[NodeLines | None] = contextvars.ContextVar(
    "plait_log_sink", default=None
)
_lock = threading.Lock()
_previous_factory: Callable[..., logging.LogRecord] | None = None
_capturing = 0
_lowered_root_from: int | None = None
_plain = logging.Formatter()


def _tagging_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    assert _previous_factory is not None
    record = _previous_factory(*args, **kwargs)
    sink = _SINK.get()
    if sink is not None:
        record.plait_run_id = sink.run_id
        record.plait_label = sink.label
        if record.levelno >= sink.level:
            sink.add(record)
            if sink.shipped:
                _mute_here(record)
        return record
    ctx = current_context()
    if ctx is None:
        record.plait_run_id = None
        record.plait_label = None
    else:
        record.plait_run_id = ctx.run_id
        record.plait_label = ctx.node_label
    return record


def _not_shipped(record: logging.LogRecord) -> bool:
    return not getattr(record, "plait_shipped", False)


def _mute_here(record: logging.LogRecord) -> None:
    """In a worker process: the record goes to the runner's process with the node's lines
    (:class:`ShippedLines`), which prints it through its own logging; the handlers here
    (a ``logging.basicConfig`` run at import of the node's module, say) skip it, so it is
    printed once, and not straight onto the terminal under the runner's progress display."""
    record.plait_shipped = True
    logger: logging.Logger | None = logging.getLogger(record.name)
    while logger is not None:
        for handler in logger.handlers:
            if _not_shipped not in handler.filters:
                handler.addFilter(_not_shipped)
        logger = logger.parent if logger.propagate else None


class ShippedLines(tuple[LogRecord, ...]):
    """The lines of a node call that ran in a worker process (one with no run of its own),
    not printed there; ``pid`` and ``process_name`` name that process. The runner hands them
    to its own logging with :func:`emit` as the call returns (or raises)."""

    pid: int
    process_name: str

    def __new__(cls, lines: Sequence[LogRecord], pid: int, process_name: str) -> ShippedLines:
        shipped = super().__new__(cls, lines)
        shipped.pid = pid
        shipped.process_name = process_name
        return shipped

    def __reduce__(self) -> tuple[Any, ...]:
        return (ShippedLines, (tuple(self), self.pid, self.process_name))


def emit(lines: Sequence[LogRecord]) -> None:
    """Hand the lines of a call that ran in another process (:class:`ShippedLines`) to this
    process's logging, as records of their loggers, levels and times, carrying
    ``plait_run_id``, ``plait_label`` and the worker's ``process``/``processName``. Lines of
    a call that ran here were printed as they were logged: nothing is done for them."""
    if not isinstance(lines, ShippedLines):
        return
    for line in lines:
        logger = logging.getLogger(line.logger)
        if not logger.isEnabledFor(line.level):
            continue
        created = line.at.timestamp()
        record = logging.makeLogRecord(
            {
                "name": line.logger,
                "msg": line.message,
                "levelno": line.level,
                "levelname": logging.getLevelName(line.level),
                "created": created,
                "msecs": (created - int(created)) * 1000,
                "exc_text": line.exc_text,
                "process": lines.pid,
                "processName": lines.process_name,
                "plait_run_id": line.run_id,
                "plait_label": line.label,
            }
        )
        logger.handle(record)


def install_record_factory() -> None:
    """Make every log record carry ``plait_run_id`` and ``plait_label`` (idempotent).

    The factory wraps whatever factory was installed before it and stays installed: outside
    a node it costs one context-variable look-up per record.
    """
    global _previous_factory
    with _lock:
        current = logging.getLogRecordFactory()
        if current is _tagging_factory:
            return
        _previous_factory = current
        logging.setLogRecordFactory(_tagging_factory)


def _lower_unconfigured_root(level: int) -> None:
    """In a process with no run of its own (a worker): let records of ``level`` be created
    when logging is not configured there (for good: the process serves runs)."""
    root = logging.getLogger()
    if not root.handlers and root.level > level:
        with _lock:
            root.setLevel(level)


@contextlib.contextmanager
def capturing(level: int = DEFAULT_LEVEL) -> Iterator[None]:
    """While active (in any number of runs at once), nodes' records of ``level`` and above
    are created even when logging is not configured (see the module's docstring)."""
    global _capturing, _lowered_root_from
    install_record_factory()
    root = logging.getLogger()
    with _lock:
        _capturing += 1
        if _capturing == 1 and not root.handlers and root.level > level:
            _lowered_root_from = root.level
            root.setLevel(level)
    try:
        yield
    finally:
        with _lock:
            _capturing -= 1
            if _capturing == 0 and _lowered_root_from is not None:
                if not root.handlers and root.level <= _lowered_root_from:
                    root.setLevel(_lowered_root_from)
                _lowered_root_from = None


class NodeLines:
    """The lines one node attempt logs while it is entered (``with lines:``), bounded (see
    :data:`DEFAULT_LIMIT`); :meth:`records` makes them :class:`~plait.records.LogRecord`
    values. An exception leaving the block carries the lines so far (see :func:`lines_of`).

    The runner makes one per attempt of a node it records on the event loop; in an
    executor, :meth:`LogCapture.collect` makes it.
    """

    __slots__ = (
        "attempt",
        "dropped",
        "first_seq",
        "head",
        "label",
        "level",
        "limit",
        "run_id",
        "shipped",
        "tail",
        "token",
    )

    def __init__(
        self,
        run_id: str,
        label: str,
        attempt: int,
        first_seq: int,
        level: int = DEFAULT_LEVEL,
        limit: int = DEFAULT_LIMIT,
    ) -> None:
        self.run_id = run_id
        self.label = label
        self.attempt = attempt
        self.first_seq = first_seq
        self.level = level
        self.limit = limit
        self.head: list[_Line] = []
        self.tail: deque[_Line] | None = None  # made when the head is full
        self.dropped = 0
        self.token: contextvars.Token[NodeLines | None] | None = None
        #: collected in a worker process: its lines are printed by the runner's process
        self.shipped = False

    def __enter__(self) -> NodeLines:
        self.token = _SINK.set(self)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        assert self.token is not None
        _SINK.reset(self.token)
        if exc is not None and self.head:
            with contextlib.suppress(AttributeError, TypeError):
                setattr(exc, EXCEPTION_ATTRIBUTE, self.records())

    def add(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a bad %-format: keep what was given
            message = str(record.msg)
        exc_text = None
        if record.exc_info:
            exc_text = _plain.formatException(record.exc_info)
        line = (record.created, record.levelno, record.name, message, exc_text)
        keep_last = max(self.limit // 2, 1)
        if len(self.head) < self.limit - keep_last:
            self.head.append(line)
            return
        if self.tail is None:
            self.tail = deque(maxlen=keep_last)
        elif len(self.tail) == keep_last:
            self.dropped += 1
        self.tail.append(line)

    def records(self) -> tuple[LogRecord, ...]:
        """The lines as records, numbered from ``first_seq``."""
        if not self.head:
            return ()
        out: list[LogRecord] = []
        for line in self.head:
            out.append(self._record(len(out), *line))
        tail = self.tail or ()
        if self.dropped:
            note = (
                f"{self.dropped} log lines of node {self.label!r} were not kept "
                f"(at most {self.limit} per attempt: the first and the last are kept)"
            )
            at = tail[0][0] if tail else self.head[-1][0]
            out.append(self._record(len(out), at, logging.WARNING, "plait", note, None))
        for line in tail:
            out.append(self._record(len(out), *line))
        if self.shipped:
            return ShippedLines(out, os.getpid(), multiprocessing.current_process().name)
        return tuple(out)

    def _record(
        self, n: int, created: float, level: int, logger: str, message: str, exc: str | None
    ) -> LogRecord:
        return LogRecord(
            run_id=self.run_id,
            label=self.label,
            attempt=self.attempt,
            seq=self.first_seq + n,
            at=datetime.fromtimestamp(created, UTC),
            level=level,
            logger=logger,
            message=message,
            exc_text=exc,
        )


@attrs.frozen(kw_only=True)
class LogCapture:
    """What to keep of the log lines of one node attempt, and where they belong.

    The runner makes one per attempt of a node whose run is recorded and hands it to the
    executor inside the :class:`~plait.executors.NodeCall`; it pickles, so it works in a
    worker process as in a thread.
    """

    #: the run and node the lines belong to
    run_id: str
    label: str
    #: the node's attempt, and the ``seq`` of its first line
    attempt: int = 1
    first_seq: int = 0
    #: the minimum level kept
    level: int = DEFAULT_LEVEL
    #: at most this many lines are kept (plus one that says how many were not)
    limit: int = DEFAULT_LIMIT

    def collect(self) -> NodeLines:
        """Collect, while the returned :class:`NodeLines` is entered (``with``), the records
        created in this thread or task (and in the threads it starts with a copy of its
        context). An exception leaving the block carries the lines so far (see
        :func:`lines_of`)."""
        install_record_factory()
        lines = NodeLines(
            self.run_id, self.label, self.attempt, self.first_seq, self.level, self.limit
        )
        if not _capturing:  # a worker process (no run here): as capturing() does for runs
            _lower_unconfigured_root(self.level)
            lines.shipped = True
        return lines


def lines_of(exc: BaseException) -> tuple[LogRecord, ...]:
    """The lines a node's call logged before it raised ``exc`` (``()`` if none were kept)."""
    lines: tuple[LogRecord, ...] = getattr(exc, EXCEPTION_ATTRIBUTE, ())
    return lines
