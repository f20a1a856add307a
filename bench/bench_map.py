"""MapNode throughput: a map over M elements with a one-node ``@inline`` sub-DAG.

``run_map_case(m, sqlite)`` runs the map once (after a small warm-up) and returns the time
per element in microseconds, with or without SQLite provenance. Run standalone to print
every case as JSON::

    python bench/bench_map.py            # 1,000 and 10,000 elements, both modes
    python bench/bench_map.py 1000 5000  # chosen sizes

Reference (lythonic 0.0.28, from the issue): about 280 us per element without provenance,
about 6,000 us with. Targets: at least 15x faster without provenance on 10,000 elements,
at least 50x faster with SQLite provenance on 1,000, and linear growth (10x elements at
most 12x the time).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from plait import Dag, DagRunner, inline

LYTHONIC_US_PER_ELEMENT = {False: 280.0, True: 6000.0}


@inline
def double(x: int) -> int:
    return x * 2


def make_numbers(n: int) -> list[int]:
    return list(range(n))


def build_dag() -> Dag:
    sub = Dag("double_one")
    sub.node(double)
    dag = Dag("bench_map")
    source = dag.node(inline(make_numbers), label="numbers")
    source >> dag.map(sub, label="doubled")
    return dag


def _provenance(sqlite: bool, directory: Path) -> Any:
    if not sqlite:
        return None
    from plait_provenance_sqlite import SqliteProvenance

    return SqliteProvenance(directory / "bench.sqlite3")


async def _timed_run(m: int, sqlite: bool, directory: Path) -> float:
    dag = build_dag()
    runner = DagRunner(dag, provenance=_provenance(sqlite, directory))
    t0 = time.perf_counter()
    result = await runner.run(source_inputs={"numbers": {"n": m}})
    elapsed = time.perf_counter() - t0
    if not result.ok or len(result.outputs["doubled"]) != m:
        raise RuntimeError(f"benchmark run failed: {result.error}")
    return elapsed


def run_map_case(m: int, sqlite: bool, *, backend: str = "asyncio") -> dict[str, Any]:
    """Time one map over ``m`` elements; ``sqlite`` records provenance in a fresh file.

    ``us_per_element`` is the whole run (store creation included) divided by ``m``;
    ``marginal_us_per_element`` leaves out what a one-element run costs.
    """
    with tempfile.TemporaryDirectory(prefix="plait-bench-") as tmp:
        directory = Path(tmp)
        anyio.run(_timed_run, min(m, 100), sqlite, directory / "warm", backend=backend)
        # the same run over one element: the per-run cost (a new store file, its schema)
        fixed = anyio.run(_timed_run, 1, sqlite, directory / "one", backend=backend)
        elapsed = anyio.run(_timed_run, m, sqlite, directory, backend=backend)
    per_element = elapsed * 1e6 / m if m else 0.0
    marginal = (elapsed - fixed) * 1e6 / (m - 1) if m > 1 else per_element
    reference = LYTHONIC_US_PER_ELEMENT[sqlite]
    return {
        "case": f"map over {m} elements, {'sqlite' if sqlite else 'no'} provenance",
        "elements": m,
        "sqlite": sqlite,
        "backend": backend,
        "seconds": round(elapsed, 4),
        "us_per_element": round(per_element, 2),
        "one_element_seconds": round(fixed, 4),
        "marginal_us_per_element": round(marginal, 2),
        "lythonic_us_per_element": reference,
        "speedup_vs_lythonic": round(reference / per_element, 1) if per_element else None,
    }


def main(argv: list[str]) -> None:
    sizes = [int(a) for a in argv] or [1_000, 10_000]
    results = [run_map_case(m, sqlite) for sqlite in (False, True) for m in sizes]
    by_case = {(r["elements"], r["sqlite"]): r["seconds"] for r in results}
    for sqlite in (False, True):
        small, large = min(sizes), max(sizes)
        if small != large:
            ratio = by_case[large, sqlite] / by_case[small, sqlite]
            results.append(
                {
                    "case": f"growth {small} -> {large}, {'sqlite' if sqlite else 'no'} provenance",
                    "elements_ratio": large / small,
                    "time_ratio": round(ratio, 2),
                }
            )
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
