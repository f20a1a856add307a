"""plait.testing: minimal in-memory backends pass the contracts, broken ones fail them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from _memory_backends import MemoryCache, MemoryProvenance

from plait.testing import CacheBackendContract, ProvenanceBackendContract

HERE = Path(__file__).parent


class TestMemoryProvenanceContract(ProvenanceBackendContract):
    @pytest.fixture
    def backend(self) -> MemoryProvenance:
        return MemoryProvenance()


class TestMemoryCacheContract(CacheBackendContract):
    persistent = False

    @pytest.fixture
    def backend(self) -> MemoryCache:
        return MemoryCache()


def test_contract_classes_are_not_collected_by_themselves() -> None:
    assert not ProvenanceBackendContract.__name__.startswith("Test")
    assert not CacheBackendContract.__name__.startswith("Test")


BROKEN = """
import pytest
from _memory_backends import BrokenCache, BrokenProvenance
from plait.testing import CacheBackendContract, ProvenanceBackendContract


class TestBrokenProvenance(ProvenanceBackendContract):
    @pytest.fixture
    def backend(self):
        return BrokenProvenance()


class TestBrokenCache(CacheBackendContract):
    persistent = False

    @pytest.fixture
    def backend(self):
        return BrokenCache()
"""


def test_contracts_catch_broken_backends(tmp_path: Path) -> None:
    """A third party's suite, run the way they would: only pytest and anyio's plugin."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_broken.py").write_text(BROKEN)
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rf", "-p", "no:cacheprovider", "-p", "no:xdist"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    failed = {
        line.split("::")[-1].split(" ")[0].split("[")[0]
        for line in proc.stdout.splitlines()
        if line.startswith("FAILED")
    }
    assert failed == {
        "test_unknown_run_raises_run_not_found_naming_it",
        "test_list_runs_filters_newest_first",
        "test_aclose_makes_buffered_writes_durable",
        "test_run_data_round_trip",
        "test_run_data_from_several_threads",
        "test_log_lines_round_trip",
        "test_log_lines_are_durable_on_aclose",
        "test_runner_records_a_run",
        "test_inspect_run_gives_the_run_with_its_sub_runs",
        "test_runner_restarts_a_paused_run",
        "test_claim_run_takes_the_run_only_as_it_was_read",
        "test_claim_run_refuses_an_unknown_or_completed_run",
        "test_concurrent_claims_have_one_winner",
        "test_clear_one_callable",
        "test_clear_everything",
        "test_prune_drops_expired_entries",
    }, proc.stdout + proc.stderr
