"""NullProvenance passes the provenance contract as a backend that stores nothing."""

from __future__ import annotations

import pytest

from plait.null import NullProvenance
from plait.testing import ProvenanceBackendContract


class TestNullProvenanceContract(ProvenanceBackendContract):
    stores_nothing = True

    @pytest.fixture
    def backend(self) -> NullProvenance:
        return NullProvenance()
