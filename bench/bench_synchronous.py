"""What ``synchronous="full"`` (survives a power loss) costs beside the default ``"normal"``
(survives a killed process), on the SQLite provenance store and the SQLite cache.

Provenance: the ``chain_sqlite`` case of ``run.py`` (a chain of 1,000 ``@inline`` nodes, the
runner held open), per node. Cache: ``n`` misses (compute + store) of a trivial function,
per call. The two settings alternate over the repetitions (median reported), so drift on
the machine hits both. Run standalone to print JSON::

    python bench/bench_synchronous.py          # 5 repetitions
    python bench/bench_synchronous.py 9
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from plait import DagRunner
from plait.cache import cached, close_backends
from plait_cache_sqlite import SqliteCache
from plait_provenance_sqlite import SqliteProvenance

sys.path.insert(0, str(Path(__file__).parent))
from plait_cases import build_chain

CHAIN = 1000
MISSES = 1000


async def chain_us(directory: Path, synchronous: str) -> float:
    dag = build_chain(CHAIN)
    prov = SqliteProvenance(directory / f"prov-{synchronous}.sqlite3", synchronous=synchronous)
    async with DagRunner(dag, provenance=prov) as runner:
        await runner.run({"n0": {"x": 0}})  # warm-up: the file, its schema
        t0 = time.perf_counter()
        result = await runner.run({"n0": {"x": 0}})
        elapsed = time.perf_counter() - t0
    assert result.status == "completed", result.error
    return elapsed * 1e6 / CHAIN


def miss_us(directory: Path, synchronous: str, rep: int) -> float:
    backend = SqliteCache(directory / f"cache-{synchronous}-{rep}.sqlite3", synchronous=synchronous)

    @cached(min_ttl=1, max_ttl=2, backend=backend)
    def triple(x: int) -> int:
        return 3 * x

    triple(-1)  # opens the file
    t0 = time.perf_counter()
    for i in range(MISSES):
        triple(i)
    elapsed = time.perf_counter() - t0
    backend.close()
    close_backends()
    return elapsed * 1e6 / MISSES


def main(argv: list[str]) -> None:
    reps = int(argv[0]) if argv else 5
    times: dict[str, dict[str, list[float]]] = {"provenance": {}, "cache": {}}
    with tempfile.TemporaryDirectory(prefix="plait-sync-") as tmp:
        for rep in range(reps):
            order = ("normal", "full") if rep % 2 == 0 else ("full", "normal")
            for sync in order:
                directory = Path(tmp) / f"{sync}-{rep}"
                directory.mkdir()
                times["provenance"].setdefault(sync, []).append(
                    anyio.run(chain_us, directory, sync)
                )
                times["cache"].setdefault(sync, []).append(miss_us(directory, sync, rep))
    out: dict[str, Any] = {"repetitions": reps}
    for what, unit in (("provenance", "us_per_node"), ("cache", "us_per_miss")):
        out[what] = {
            sync: {unit: round(statistics.median(v), 1)} for sync, v in times[what].items()
        }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
