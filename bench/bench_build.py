"""Building a long inline chain: CPU time per node, growth, memory held and peak RSS.

Each figure comes from a fresh interpreter building ``bench_chain`` (``plait_cases.build_chain``)
the way the ``scale`` case does, so the runs do not share a heap:

- ``cpu``: process CPU time of ``build_chain(n)`` (the graph) and of ``dag.plan()`` (the plan),
  GC enabled as in the bench, median of ``--reps`` processes, at 10,000 and 100,000 nodes;
- ``mem``: bytes held after building the graph, after compiling the plan, and the peak while
  compiling, from ``tracemalloc`` (100,000 nodes; one process);
- ``rss``: peak RSS of a process that builds the 100,000 chain, compiles it and runs it once
  (what ``bench/startup_memory.py`` reports), and of one that only imports plait and anyio;
- the growth with the cyclic GC disabled (what the collector's passes add to it), and the
  bench's build floor (``plait_cases.build_floor``: CPython without plait) measured alike.

``python bench/bench_build.py [--reps 5] [--src DIR ...]``: with ``--src`` (a directory that
holds the ``plait`` package, say an older checkout's ``core/src``) each source tree is
measured in turn, in alternating order, so two versions compare in one run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

from startup_memory import PEAK_RSS_SOURCE  # noqa: E402

_PRELUDE = """
import gc, json, sys, time
sys.path.insert(0, {bench!r})
import anyio
import plait_cases as pc
from plait import DagRunner
{peak_rss}
n = {n}
"""

_CPU = """
gc.collect()
t0 = time.process_time()
dag = pc.build_chain(n)
t1 = time.process_time()
dag.plan()
t2 = time.process_time()
print(json.dumps({{"graph": t1 - t0, "plan": t2 - t1}}))
"""

_MEM = """
import tracemalloc
gc.collect()
tracemalloc.start()
base = tracemalloc.get_traced_memory()[0]
dag = pc.build_chain(n)
graph = tracemalloc.get_traced_memory()[0] - base
tracemalloc.reset_peak()
dag.plan()
now, peak = tracemalloc.get_traced_memory()
print(json.dumps({{"graph": graph, "plan": now - base - graph, "compile_peak": peak - base}}))
"""

_RSS = """
dag = pc.build_chain(n)
dag.plan()

async def main():
    result = await DagRunner(dag).run(source_inputs={{"n0": {{"x": 0}}}})
    assert result.outputs[f"n{{n - 1}}"] == n - 1, result.outputs

anyio.run(main)
print(json.dumps({{"rss": peak_rss_kb() * 1024}}))
"""

_FLOOR = """
async def floor():
    gc.collect()
    t0 = time.process_time()
    async with pc.build_floor(n):
        t1 = time.process_time()
    print(json.dumps({{"floor": t1 - t0}}))

anyio.run(floor)
"""

_GC_OFF = """
gc.collect()
gc.disable()
t0 = time.process_time()
dag = pc.build_chain(n)
dag.plan()
print(json.dumps({{"build": time.process_time() - t0}}))
"""

_IDLE = """
print(json.dumps({{"rss": peak_rss_kb() * 1024}}))
"""


def _run(src: str | None, body: str, n: int) -> dict[str, Any]:
    code = _PRELUDE.format(bench=str(BENCH_DIR), n=n, peak_rss=PEAK_RSS_SOURCE) + body.format()
    if src is not None:
        code = f"import sys; sys.path.insert(0, {src!r})\n" + code
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    return dict(json.loads(out.splitlines()[-1]))


NS = (10_000, 100_000)


def floor(reps: int) -> dict[str, Any]:
    """The bench's build floor (one slotted object per node, a dict by label, an edge key
    per edge), measured the same way: CPU us per node and growth."""
    cpu = {n: statistics.median(_run(None, _FLOOR, n)["floor"] for _ in range(reps)) for n in NS}
    return {
        "us_per_node": {str(n): round(cpu[n] / n * 1e6, 2) for n in NS},
        "growth_10k_100k": round(cpu[100_000] / cpu[10_000], 2),
    }


def measure(srcs: list[str | None], reps: int) -> dict[str, dict[str, Any]]:
    cpu: dict[str | None, dict[int, list[dict[str, Any]]]] = {
        s: {10_000: [], 100_000: []} for s in srcs
    }
    rss: dict[str | None, list[float]] = {s: [] for s in srcs}
    for rep in range(reps):
        for src in srcs if rep % 2 == 0 else srcs[::-1]:
            for n in (10_000, 100_000):
                cpu[src][n].append(_run(src, _CPU, n))
            rss[src].append(_run(src, _RSS, 100_000)["rss"])
    report: dict[str, dict[str, Any]] = {}
    for src in srcs:
        row: dict[str, Any] = {}
        for n in (10_000, 100_000):
            graph = statistics.median(r["graph"] for r in cpu[src][n])
            plan = statistics.median(r["plan"] for r in cpu[src][n])
            total = statistics.median(r["graph"] + r["plan"] for r in cpu[src][n])
            row[f"{n}"] = {
                "graph_us_per_node": round(graph / n * 1e6, 2),
                "plan_us_per_node": round(plan / n * 1e6, 2),
                "build_us_per_node": round(total / n * 1e6, 2),
            }
        row["growth_10k_100k"] = round(
            row["100000"]["build_us_per_node"] * 10 / row["10000"]["build_us_per_node"], 2
        )
        off = {n: statistics.median(_run(src, _GC_OFF, n)["build"] for _ in range(3)) for n in NS}
        row["growth_10k_100k_gc_disabled"] = round(off[100_000] / off[10_000], 2)
        mem = _run(src, _MEM, 100_000)
        row["tracemalloc_mb"] = {k: round(v / 2**20, 1) for k, v in mem.items()}
        row["peak_rss_mb_build_and_run_100k"] = round(statistics.median(rss[src]) / 2**20, 1)
        row["peak_rss_mb_imports_only"] = round(_run(src, _IDLE, 0)["rss"] / 2**20, 1)
        report[src or "installed plait"] = row
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--src", action="append", help="a directory holding the plait package")
    args = parser.parse_args()
    srcs: list[str | None] = list(args.src) if args.src else [None]
    report = measure(srcs, args.reps)
    report["build floor (no plait)"] = floor(args.reps)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
