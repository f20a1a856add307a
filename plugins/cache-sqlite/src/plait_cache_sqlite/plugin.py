"""Entry-point module: registers the ``sqlite`` cache backend with plait.

This is all a backend plugin needs: a ``[project.entry-points.plait]`` entry naming this
module, and one ``@hookimpl`` returning :class:`plait.records.BackendInfo` records.
"""

from __future__ import annotations

from plait import hookimpl
from plait.records import BackendInfo
from plait_cache_sqlite.backend import SqliteCache


@hookimpl
def plait_register_cache_backends() -> list[BackendInfo]:
    return [
        BackendInfo(
            name="sqlite",
            factory=SqliteCache,
            description="TTL cache in one SQLite file shared by processes "
            "(options: path, synchronous)",
        )
    ]
