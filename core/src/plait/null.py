"""``NullProvenance``: the provenance backend that remembers nothing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from plait.errors import RunNotFoundError
from plait.inspection import InspectsRuns
from plait.records import EdgeRecord, LogRecord, NodeRecord, RunOwner, RunRecord, RunStatus

__all__ = ["NullProvenance"]


class NullProvenance(InspectsRuns):
    """Discards writes and finds nothing. Runs against it cannot be restarted."""

    stores_values = False

    async def open(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

    def write_run(self, run: RunRecord) -> None:
        return None

    def write_nodes(self, nodes: Sequence[NodeRecord]) -> None:
        return None

    def write_edges(self, edges: Sequence[EdgeRecord]) -> None:
        return None

    def write_run_data(self, run_id: str, key: str, value: Any) -> None:
        return None

    def write_logs(self, records: Sequence[LogRecord]) -> None:
        return None

    async def commit(self) -> None:
        return None

    async def get_run(self, run_id: str) -> RunRecord:
        raise RunNotFoundError(
            f"run {run_id!r} not found: NullProvenance keeps no history "
            "(use provenance='sqlite' to record runs)"
        )

    async def list_runs(
        self,
        *,
        status: RunStatus | str | None = None,
        dag_nsref: str | None = None,
        parent_run_id: str | None = None,
        started_after: datetime | None = None,
        started_before: datetime | None = None,
        limit: int | None = None,
    ) -> list[RunRecord]:
        return []

    async def get_node_executions(self, run_id: str) -> list[NodeRecord]:
        return []

    async def load_run_data(self, run_id: str) -> dict[str, Any]:
        return {}

    async def get_logs(
        self, run_id: str, label: str | None = None, after_seq: int | None = None
    ) -> list[LogRecord]:
        return []

    async def claim_run(
        self,
        run_id: str,
        expected_attempt: int,
        owner: RunOwner,
        *,
        expected_owner: RunOwner | None = None,
    ) -> RunRecord:
        return await self.get_run(run_id)  # raises: no run is ever found
