"""Several real processes writing one provenance file at once."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from plait_provenance_sqlite import SqliteProvenance

WRITER = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime

    import anyio
    from plait import NodeRecord, NodeStatus, RunRecord, RunStatus
    from plait.records import EdgeRecord
    from plait_provenance_sqlite import SqliteProvenance

    path, worker, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])

    async def main() -> None:
        async with SqliteProvenance(path) as prov:
            for i in range(runs):
                run_id = f"{worker}-{i}"
                now = datetime.now(UTC)
                run = RunRecord(run_id=run_id, dag_nsref="mp:dag", status=RunStatus.RUNNING,
                                started_at=now, updated_at=now, owner_pid=0, owner_host=worker)
                prov.write_run(run)
                prov.write_nodes([NodeRecord(run_id=run_id, label="a", updated_at=now,
                                             status=NodeStatus.RUNNING, inputs={"i": i})])
                await prov.commit()
                done = datetime.now(UTC)
                prov.write_nodes([NodeRecord(run_id=run_id, label="a", updated_at=done,
                                             status=NodeStatus.COMPLETED, output=i,
                                             restorable=True)])
                prov.write_edges([EdgeRecord(run_id=run_id, upstream="a", downstream="b",
                                             parameter="x", traversed_at=done)])
                prov.write_run_data(run_id, "worker", worker)
                prov.write_run(RunRecord(run_id=run_id, dag_nsref="mp:dag",
                                         status=RunStatus.COMPLETED, started_at=now,
                                         updated_at=done, finished_at=done, owner_host=worker))
                await prov.commit()

    anyio.run(main)
    """
)


@pytest.mark.slow
@pytest.mark.anyio
async def test_four_processes_write_one_file(tmp_path: Path) -> None:
    db = tmp_path / "shared.sqlite3"
    workers, runs = 4, 250
    procs = [
        subprocess.Popen(  # noqa: ASYNC220 - started together, then waited for
            [sys.executable, "-c", WRITER, str(db), f"w{w}", str(runs)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for w in range(workers)
    ]
    for proc in procs:
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
        assert not err, err.decode()

    async with SqliteProvenance(db) as prov:
        all_runs = await prov.list_runs()
        assert len(all_runs) == workers * runs
        assert {r.status for r in all_runs} == {"completed"}
        batches = [b async for b in prov.iter_history(batch_size=1000)]
        # per run: run running + completed, node running + completed
        assert sum(len(b) for b in batches) == workers * runs * 4
        for w in range(workers):
            for i in (0, runs // 2, runs - 1):
                run_id = f"w{w}-{i}"
                (node,) = await prov.get_node_executions(run_id)
                assert (node.status, node.output, node.inputs) == ("completed", i, {"i": i})
                assert len(await prov.get_edge_traversals(run_id)) == 1
                assert await prov.load_run_data(run_id) == {"worker": f"w{w}"}
