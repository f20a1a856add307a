"""A real lifecycle-hook plugin that remembers what it saw (registered on a PluginHost)."""

from __future__ import annotations

from plait import hookimpl
from plait.records import MapProgress, NodeRecord, RunRecord


class Recorder:
    def __init__(self) -> None:
        self.runs_started: list[RunRecord] = []
        self.runs_finished: list[RunRecord] = []
        self.started: list[NodeRecord] = []
        self.finished: list[NodeRecord] = []
        self.progress: list[MapProgress] = []

    @hookimpl
    def plait_on_run_start(self, run: RunRecord) -> None:
        self.runs_started.append(run)

    @hookimpl
    def plait_on_node_start(self, node: NodeRecord) -> None:
        self.started.append(node)

    @hookimpl
    def plait_on_node_finish(self, node: NodeRecord) -> None:
        self.finished.append(node)

    @hookimpl
    def plait_on_map_progress(self, progress: MapProgress) -> None:
        self.progress.append(progress)

    @hookimpl
    def plait_on_run_finish(self, run: RunRecord) -> None:
        self.runs_finished.append(run)

    def final(self) -> dict[str, str]:
        return {n.label: str(n.status) for n in self.finished}
