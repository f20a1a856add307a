"""A live terminal view of a run, fed by the lifecycle hooks.

:class:`RunProgress` is an ordinary plugin object: register it on the runner's
:class:`~plait.plugins.PluginHost` and use it as a context manager around the run::

    host = PluginHost()
    with RunProgress(total=len(dag), host=host):
        result = await DagRunner(dag, host=host).run(...)

It shows the nodes done out of the total, the nodes running now, and one bar per map node
(elements done out of elements). Only the top-level run is tracked: events of the sub-runs
that map and call nodes start are ignored, except as map progress. When the console is not
a terminal the display stays off and the hooks cost almost nothing.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType

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
        title: str = "run",
    ) -> None:
        self.console = console or Console()
        self.enabled = self.console.is_terminal if enabled is None else enabled
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

    # ------------------------------------------------------------------ context manager
    def __enter__(self) -> RunProgress:
        if self._host is not None:
            self._host_name = self._host.register(self, name=f"plait-progress-{id(self):x}")
        if self.enabled:
            self._live = Live(
                get_renderable=self._render,
                console=self.console,
                refresh_per_second=10,
                transient=False,
            )
            self._live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
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

    @hookimpl
    def plait_on_run_start(self, run: RunRecord) -> None:
        if run.parent_run_id is None and self.run_id is None:
            self.run_id = run.run_id
            self._progress.update(self._nodes_task, description=f"{self.title} {run.dag_nsref}")

    @hookimpl
    def plait_on_node_start(self, node: NodeRecord) -> None:
        if self._ours(node.run_id):
            with self._lock:
                self._running[node.label] = time.monotonic()

    @hookimpl
    def plait_on_node_finish(self, node: NodeRecord) -> None:
        if not self._ours(node.run_id):
            return
        with self._lock:
            self._running.pop(node.label, None)
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
