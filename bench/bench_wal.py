"""How large the SQLite provenance store's ``-wal`` grows under a long-lived runner.

One ``DagRunner`` held open (``async with runner``) runs a chain of 10 nodes again and
again; each node returns a text of 3 to 20 KB (seeded), so a node's commit is several
pages. Printed as JSON: the largest ``-wal`` size seen after any run, the size at the end,
the database size, nodes run and seconds. Run standalone::

    python bench/bench_wal.py            # 600 runs (6,000 nodes)
    python bench/bench_wal.py 2000       # runs
    python bench/bench_wal.py 600 full   # with synchronous="full"
"""

from __future__ import annotations

import itertools
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from plait import Dag, DagRunner, inline
from plait_provenance_sqlite import SqliteProvenance

NODES = 10


def build_dag(seed: int) -> Dag:
    rng = random.Random(seed)
    sizes = [rng.randint(3_000, 20_000) for _ in range(NODES)]

    def make(i: int) -> Any:
        def step(text: str) -> str:
            return (text[:10] + "x" * sizes[i])[: sizes[i]]

        step.__name__ = step.__qualname__ = f"step{i}"
        return inline(step)

    dag = Dag("wal_bench")
    nodes = [dag.node(make(i), label=f"step{i}") for i in range(NODES)]
    for up, down in itertools.pairwise(nodes):
        up >> down
    return dag


async def measure(runs: int, directory: Path, **options: Any) -> dict[str, Any]:
    path = directory / "prov.sqlite3"
    wal = path.with_name(path.name + "-wal")
    runner = DagRunner(build_dag(1), provenance=SqliteProvenance(path, **options))
    largest = 0
    t0 = time.perf_counter()
    async with runner:
        for i in range(runs):
            result = await runner.run({"step0": {"text": f"run {i}"}})
            if result.status != "completed":
                raise RuntimeError(f"run {i} ended {result.status}: {result.error}")
            if wal.exists():
                largest = max(largest, wal.stat().st_size)
        seconds = time.perf_counter() - t0
        open_size = wal.stat().st_size if wal.exists() else 0
    return {
        "runs": runs,
        "nodes": runs * NODES,
        "options": options,
        "largest_wal_mb": round(largest / 2**20, 2),
        "wal_mb_before_close": round(open_size / 2**20, 2),
        "db_mb": round(path.stat().st_size / 2**20, 2),
        "seconds": round(seconds, 2),
        "us_per_node": round(seconds * 1e6 / (runs * NODES), 1),
    }


def main(argv: list[str]) -> None:
    runs = int(argv[0]) if argv else 600
    options = {"synchronous": argv[1]} if len(argv) > 1 else {}
    with tempfile.TemporaryDirectory(prefix="plait-wal-") as tmp:
        print(json.dumps(anyio.run(measure, runs, Path(tmp), **options), indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
