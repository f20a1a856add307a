"""Entry point module: registers the ``sqlite`` provenance backend with plait.

This is all a provenance plugin needs: one ``@hookimpl`` returning ``BackendInfo`` records,
declared under ``[project.entry-points.plait]`` in the package's ``pyproject.toml``.
"""

from __future__ import annotations

from plait import hookimpl
from plait.records import BackendInfo
from plait_provenance_sqlite.store import SqliteProvenance


@hookimpl
def plait_register_provenance_backends() -> list[BackendInfo]:
    return [
        BackendInfo(
            name="sqlite",
            factory=SqliteProvenance,
            description="runs, nodes, edges and status history in one SQLite file "
            "(options: path, timeout, synchronous)",
        )
    ]


@hookimpl
def plait_register_trigger_stores() -> list[BackendInfo]:
    from plait_provenance_sqlite.triggers import SqliteTriggerStore

    return [
        BackendInfo(
            name="sqlite",
            factory=SqliteTriggerStore,
            description="trigger state and fire history in the provenance file "
            "(options: path, timeout)",
        )
    ]
