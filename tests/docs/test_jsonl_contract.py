"""The plugin guide's example package, plait-jsonl-provenance, passes the provenance contract."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from plait.testing import ProvenanceBackendContract

jsonl = pytest.importorskip("plait_jsonl_provenance")


class TestJsonlProvenanceContract(ProvenanceBackendContract):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> Any:
        return jsonl.JsonlProvenance(tmp_path / "runs.jsonl")
