"""bench/bench_triggers.py runs (quick sizes) and reports sane figures."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import anyio
import pytest

BENCH = Path(__file__).parents[2] / "bench" / "bench_triggers.py"

pytestmark = pytest.mark.slow


def test_bench_triggers_quick() -> None:
    spec = importlib.util.spec_from_file_location("plait_bench_triggers", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = anyio.run(module.main, True)
    latency, idle = result["fire_to_node_start"], result["idle_engine"]
    assert 0 < latency["min_ms"] <= latency["median_ms"] <= latency["p95_ms"] < 1000
    assert idle["schedules"] == 1000 and idle["rss_mb"] > 0
    assert 0 <= idle["cpu_s_per_min"] < 30  # an idle engine must not spin
