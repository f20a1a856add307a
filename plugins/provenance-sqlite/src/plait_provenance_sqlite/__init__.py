"""SQLite provenance for plait: durable run history, restart, replay, lineage.

``SqliteProvenance`` (alias ``DagProvenance``) implements
:class:`plait.protocols.ProvenanceBackend` and adds queries (lineage, status history,
batched export, purge). The plugin registers it as the provenance backend ``sqlite``.
"""

from __future__ import annotations

from plait_provenance_sqlite._schema import APPLICATION_ID, SCHEMA_VERSION
from plait_provenance_sqlite.store import (
    DEFAULT_FILENAME,
    DagProvenance,
    NodeNotFoundError,
    NodeOutput,
    SqliteProvenance,
)

__all__ = [
    "APPLICATION_ID",
    "DEFAULT_FILENAME",
    "SCHEMA_VERSION",
    "DagProvenance",
    "NodeNotFoundError",
    "NodeOutput",
    "SqliteProvenance",
]
