"""Per-node write cost of SqliteProvenance: what the runner does after each node of a chain.

Per node: write_nodes([running]), write_nodes([completed]), write_edges([one edge]), commit().
Prints the best of 7 repetitions of a 1,000-node chain, on asyncio and on trio.
Run: python bench/provenance_sqlite_write.py
"""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import anyio

from plait.records import EdgeRecord, NodeRecord, NodeStatus, RunRecord, RunStatus
from plait_provenance_sqlite import SqliteProvenance

NODES = 1000
REPEATS = 7


def records(i: int) -> tuple[NodeRecord, NodeRecord, list[EdgeRecord]]:
    t = datetime.now(UTC)
    running = NodeRecord(
        run_id="r",
        label=f"n{i}",
        status=NodeStatus.RUNNING,
        updated_at=t,
        started_at=t,
        inputs={"x": i},
        executor="inline",
        host="h",
        pid=1,
        worker="MainThread",
    )
    done = NodeRecord(
        run_id="r",
        label=f"n{i}",
        status=NodeStatus.COMPLETED,
        updated_at=t,
        started_at=t,
        finished_at=t,
        duration_ms=0.01,
        inputs={"x": i},
        output=i + 1,
        restorable=True,
        executor="inline",
        host="h",
        pid=1,
        worker="MainThread",
    )
    edges = (
        [
            EdgeRecord(
                run_id="r", upstream=f"n{i - 1}", downstream=f"n{i}", parameter="x", traversed_at=t
            )
        ]
        if i
        else []
    )
    return running, done, edges


async def main() -> None:
    best = float("inf")
    for _ in range(REPEATS):
        with tempfile.TemporaryDirectory() as tmp:
            async with SqliteProvenance(Path(tmp) / "p.sqlite3") as prov:
                now = datetime.now(UTC)
                prov.write_run(
                    RunRecord(
                        run_id="r",
                        dag_nsref="bench:chain",
                        status=RunStatus.RUNNING,
                        started_at=now,
                        updated_at=now,
                    )
                )
                await prov.commit()
                chain = [records(i) for i in range(NODES)]
                start = time.perf_counter()
                for running, done, edges in chain:
                    prov.write_nodes([running])
                    prov.write_nodes([done])
                    prov.write_edges(edges)
                    await prov.commit()
                best = min(best, (time.perf_counter() - start) / NODES)
    print(f"per node: {best * 1e6:.1f} us")


if __name__ == "__main__":
    for backend in ("asyncio", "trio"):
        print(backend, end=": ")
        anyio.run(main, backend=backend)
