"""A live terminal view of a run, fed by the lifecycle hooks.

:class:`RunProgress` is an ordinary plugin object: register it on the runner's
:class:`~plait.plugins.PluginHost` and use it as a context manager around the run::

    host = PluginHost()
    with RunProgress(total=len(dag), host=host):
        result = await DagRunner(dag, host=host).run(...)

It shows the nodes done out of the total, the nodes running now, and one bar per map node
(elements done out of elements). Only the top-level run is tracked: events of the sub-runs
that map and call nodes start are ignored, except as map progress.

While the display is live, everything written to the terminal goes above the bars, whole:
``print`` (stdout and stderr are redirected to the console), and the lines of every
``logging`` handler that writes to the terminal (such as the one ``logging.basicConfig()``
installs, which holds on to the stream it found at import) are routed through the console
too, and put back when the display stops.

When the console is not a terminal (a pipe, CI) there are no bars: with ``events=True``,
one line per node event is printed as it happens (``started``, ``completed in N ms``,
``failed: error``) and flushed.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from types import TracebackType
from typing import IO, Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from plait.hookspecs import hookimpl
from plait.plugins import PluginHost
from plait.records import MapProgress, NodeRecord, NodeStatus, RunRecord

__all__ = ["RunProgress"]

_MAX_SHOWN = 6
_EVENT_STYLE = {"completed": "green", "failed": "red", "cancelled": "yellow", "paused": "magenta"}


def _first_line(text: str | None) -> str:
    lines = (text or "").strip().splitlines()
    return lines[0] if lines else ""


def _is_tty(stream: IO[str] | None) -> bool:
    try:
        return stream is not None and stream.isatty()
    except (AttributeError, ValueError):
        return False


def _stream_handlers() -> list[logging.StreamHandler[Any]]:
    loggers: list[logging.Logger] = [logging.getLogger()]
    for logger in list(logging.Logger.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger):
            loggers.append(logger)
    return [
        h
        for logger in loggers
        for h in logger.handlers
        if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
    ]


class _HandlersToConsole:
    """Points the logging handlers that write to the terminal at the redirected
    ``sys.stdout``/``sys.stderr`` of a live display, and back again."""

    def __init__(self, terminal: dict[int, IO[str]]) -> None:
        #: id of a terminal stream -> what now stands for it (the live display's proxy)
        self.terminal = terminal
        self.moved: list[tuple[logging.StreamHandler[Any], IO[str]]] = []

    def __enter__(self) -> None:
        for handler in _stream_handlers():
            proxy = self.terminal.get(id(handler.stream))
            if proxy is not None and proxy is not handler.stream:
                self.moved.append((handler, handler.stream))
                handler.setStream(proxy)

    def __exit__(self, *exc_info: object) -> None:
        for handler, stream in reversed(self.moved):
            if handler.stream is not stream:
                handler.setStream(stream)
        self.moved.clear()


class RunProgress:
    """Live progress of one run: nodes done/total, running nodes, map elements.

    ``total`` is the number of nodes in the DAG; ``done`` how many are already done when the
    run starts (a restart or a replay copies some). ``enabled=None`` means "when the console
    is a terminal".
    """

    def __init__(
        self,
        *,
        total: int,
        done: int = 0,
        host: PluginHost | None = None,
        console: Console | None = None,
        enabled: bool | None = None,
        events: bool = False,
        title: str = "run",
    ) -> None:
        self.console = console or Console()
        self.enabled = self.console.is_terminal if enabled is None else enabled
        self.events = events and not self.enabled
        self.total = total
        self.done = done
        self.title = title
        self.run_id: str | None = None
        self._host = host
        self._host_name: str | None = None
        self._lock = threading.Lock()
        self._running: dict[str, float] = {}
        self._maps: dict[str, TaskID] = {}
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
        )
        self._nodes_task = self._progress.add_task(title, total=total, completed=done)
        self._live: Live | None = None
        self._handlers: _HandlersToConsole | None = None

    # ------------------------------------------------------------------ context manager
    def __enter__(self) -> RunProgress:
        if self._host is not None:
            self._host_name = self._host.register(self, name=f"plait-progress-{id(self):x}")
        if self.enabled:
            stdout, stderr = sys.stdout, sys.stderr
            self._live = Live(
                get_renderable=self._render,
                console=self.console,
                refresh_per_second=10,
                transient=False,
                # stderr sent to a file (2>log) stays there
                redirect_stderr=_is_tty(stderr),
            )
            self._live.start()
            # now sys.stdout (and sys.stderr) write above the bars: the logging handlers
            # that hold the terminal's streams are pointed at them too
            proxies: dict[int, IO[str]] = {}
            for before, now, original in (
                (stdout, sys.stdout, sys.__stdout__),
                (stderr, sys.stderr, sys.__stderr__),
            ):
                if now is not before:
                    proxies[id(before)] = now
                    if original is not None:
                        proxies[id(original)] = now
            self._handlers = _HandlersToConsole(proxies)
            self._handlers.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._handlers is not None:
            self._handlers.__exit__(exc_type, exc, tb)
            self._handlers = None
        if self._live is not None:
            self._live.stop()
            self._live = None
        if self._host is not None and self._host_name is not None:
            self._host.unregister(self._host_name)
            self._host_name = None

    def _render(self) -> RenderableType:
        with self._lock:
            running = sorted(self._running, key=self._running.__getitem__)
        if not running:
            return self._progress
        shown = ", ".join(running[:_MAX_SHOWN])
        if len(running) > _MAX_SHOWN:
            shown += f" and {len(running) - _MAX_SHOWN} more"
        return Group(self._progress, Text(f"running: {shown}", style="dim"))

    # ------------------------------------------------------------------ hooks
    def _ours(self, run_id: str) -> bool:
        return run_id == self.run_id

    def _event(self, *parts: str | tuple[str, str]) -> None:
        """One line for a node event, printed and flushed at once (no terminal: no bars)."""
        stamp = time.strftime("%H:%M:%S")
        with self._lock:
            self.console.print(Text.assemble((stamp, "dim"), " ", *parts), soft_wrap=True)
            self.console.file.flush()

    @hookimpl
    def plait_on_run_start(self, run: RunRecord) -> None:
        if run.parent_run_id is None and self.run_id is None:
            self.run_id = run.run_id
            self._progress.update(self._nodes_task, description=f"{self.title} {run.dag_nsref}")
            if self.events:
                self._event(f"{self.title} ", (run.run_id, "bold"), f" of {run.dag_nsref}")

    @hookimpl
    def plait_on_node_start(self, node: NodeRecord) -> None:
        if self._ours(node.run_id):
            with self._lock:
                self._running[node.label] = time.monotonic()
            if self.events:
                self._event("started   ", node.label)

    def _node_event(self, node: NodeRecord) -> None:
        status = str(node.status)
        style = _EVENT_STYLE.get(status, "")
        if node.status is NodeStatus.COMPLETED:
            took = "" if node.duration_ms is None else f" in {node.duration_ms:.0f} ms"
            self._event((f"{status:<10}", style), node.label, took)
        elif node.error_type:
            error = f"{node.error_type.rsplit('.', 1)[-1]}: {_first_line(node.error_message)}"
            self._event((f"{status:<10}", style), node.label, ": ", (error, style))
        else:
            self._event((f"{status:<10}", style), node.label)

    @hookimpl
    def plait_on_node_finish(self, node: NodeRecord) -> None:
        if not self._ours(node.run_id):
            return
        with self._lock:
            self._running.pop(node.label, None)
        if self.events and node.status is not NodeStatus.SKIPPED:
            self._node_event(node)
        if node.status in (NodeStatus.COMPLETED, NodeStatus.SKIPPED):
            self.done += 1
            self._progress.update(self._nodes_task, completed=self.done)
        task = self._maps.get(node.label)
        if task is not None and node.status is not NodeStatus.COMPLETED:
            self._progress.update(task, description=f"  map {node.label} ({node.status})")

    @hookimpl
    def plait_on_map_progress(self, progress: MapProgress) -> None:
        if not self._ours(progress.run_id):
            return
        task = self._maps.get(progress.label)
        if task is None:
            task = self._progress.add_task(f"  map {progress.label}", total=progress.total)
            self._maps[progress.label] = task
        self._progress.update(task, completed=progress.done, total=progress.total)

    @hookimpl
    def plait_on_run_finish(self, run: RunRecord) -> None:
        if run.run_id != self.run_id:
            return
        with self._lock:
            self._running.clear()
        self._progress.update(
            self._nodes_task, description=f"{self.title} {run.dag_nsref} {run.status}"
        )
        if self.events:
            self._event(f"{self.title} ", (run.run_id, "bold"), f" {run.status}")
