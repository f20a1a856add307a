"""bench/bench_ui.py must not rot: build a small store and time every page once."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench" / "bench_ui.py"


def test_bench_ui_runs_at_a_tiny_size(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("plait_bench_ui", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    module.main(["--runs", "300", "--triggers", "60", "--fires", "120", "--reps", "1"])
    out = capsys.readouterr().out
    assert "store: 300 runs + one 1,000-node run, 60 triggers with 120 fires" in out
    pages = ("runs page (newest 50)", "runs page 21 (keyset)", "1,000-node run page")
    for page in (*pages, "triggers page (first 50)", "trigger page (its fires)", "fire page"):
        assert page in out
