"""SqliteProvenance passes plait's provenance backend contract."""

from __future__ import annotations

from pathlib import Path

import pytest

from plait.testing import ProvenanceBackendContract
from plait_provenance_sqlite import SqliteProvenance


class TestSqliteProvenanceContract(ProvenanceBackendContract):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> SqliteProvenance:
        return SqliteProvenance(tmp_path / "provenance.sqlite3")
