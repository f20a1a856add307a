"""Triggers and the engine: how fast a fire becomes a running node, and what an idle engine
holding many schedules costs.

- **fire-to-node-start**: ``await engine.fire(name)`` on a manual trigger until its DAG's
  only node starts (claim in the SQLite trigger store, run record, node), on a real file.
- **idle engine**: an engine holding 1,000 active schedules (none due during the
  measurement) on the wall clock: resident memory, and CPU seconds per minute measured over
  ``IDLE_SECONDS`` and scaled to a minute.

Run standalone; prints the figures and a JSON line::

    python bench/bench_triggers.py            # 300 fires, 1,000 schedules idle for 20 s
    python bench/bench_triggers.py --quick    # 30 fires, 3 s idle (smoke)
"""

from __future__ import annotations

import gc
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from plait import Dag
from plait.engine import Engine
from plait.triggers import Trigger
from plait_provenance_sqlite import SqliteProvenance
from plait_provenance_sqlite.triggers import SqliteTriggerStore

SCHEDULES = 1000
STARTS: list[float] = []


async def mark(tag: str = "") -> str:
    STARTS.append(time.perf_counter())
    return tag


def _dag() -> Dag:
    dag = Dag("bench_triggers")
    dag.node(mark)
    return dag


def rss_mb() -> float:
    """Resident memory of this process now (Linux /proc; peak RSS elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _engine(db: Path, triggers: list[Trigger]) -> Engine:
    return Engine(triggers, store=SqliteTriggerStore(db), provenance=SqliteProvenance(db))


async def fire_latency(db: Path, fires: int) -> dict[str, float]:
    """Milliseconds from ``engine.fire()`` to the node's first line."""
    engine = _engine(db, [Trigger.manual("bench", _dag(), max_active_runs=1)])
    samples = []
    async with engine:
        for i in range(fires + 5):
            STARTS.clear()
            began = time.perf_counter()
            await engine.fire("bench", {"tag": str(i)}, wait=True)
            if i >= 5:  # warm-up: first imports, first pages of the file
                samples.append((STARTS[0] - began) * 1000)
    samples.sort()
    return {
        "fires": fires,
        "min_ms": round(samples[0], 3),
        "median_ms": round(statistics.median(samples), 3),
        "p95_ms": round(samples[int(len(samples) * 0.95) - 1], 3),
    }


async def idle_engine(db: Path, seconds: float) -> dict[str, float]:
    """RSS and CPU of an engine holding ``SCHEDULES`` active schedules, none of them due."""
    dag = _dag()
    gc.collect()
    rss_before = rss_mb()
    # once a year, on the 1st of January: never due while we measure
    triggers = [
        Trigger.schedule(f"yearly-{n:04d}", dag, f"{n % 60} {n % 24} 1 1 *")
        for n in range(SCHEDULES)
    ]
    began = time.perf_counter()
    async with _engine(db, triggers) as engine:
        await engine.idle()
        startup = time.perf_counter() - began
        gc.collect()
        rss_running = rss_mb()
        cpu0, wall0 = cpu_seconds(), time.perf_counter()
        await anyio.sleep(seconds)
        cpu, wall = cpu_seconds() - cpu0, time.perf_counter() - wall0
        rss_after = rss_mb()
    return {
        "schedules": SCHEDULES,
        "startup_s": round(startup, 3),
        "rss_mb": round(rss_after, 1),
        "rss_engine_mb": round(rss_running - rss_before, 1),
        "rss_growth_mb": round(rss_after - rss_running, 1),
        "measured_s": round(wall, 1),
        "cpu_s_per_min": round(cpu / wall * 60, 3),
        "cpu_percent": round(cpu / wall * 100, 2),
    }


async def main(quick: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        latency = await fire_latency(Path(tmp) / "latency.db", 30 if quick else 300)
        idle = await idle_engine(Path(tmp) / "idle.db", 3.0 if quick else 20.0)
    return {"fire_to_node_start": latency, "idle_engine": idle}


if __name__ == "__main__":
    result = anyio.run(main, "--quick" in sys.argv)
    lat, idle = result["fire_to_node_start"], result["idle_engine"]
    print(
        f"fire -> node start (manual trigger, SQLite store): median {lat['median_ms']} ms, "
        f"min {lat['min_ms']} ms, p95 {lat['p95_ms']} ms over {lat['fires']} fires"
    )
    print(
        f"idle engine, {idle['schedules']} active schedules: started in {idle['startup_s']} s; "
        f"RSS {idle['rss_mb']} MB ({idle['rss_engine_mb']} MB for the engine); "
        f"CPU {idle['cpu_s_per_min']} s per minute ({idle['cpu_percent']} %) over "
        f"{idle['measured_s']} s"
    )
    print(json.dumps(result))
