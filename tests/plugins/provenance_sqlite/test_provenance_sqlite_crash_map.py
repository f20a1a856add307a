"""kill -9 in the middle of an all-``@inline`` map, then restart: no completed element runs
again (each is committed before the next starts), and a purge from another process while the
map runs takes none of its finished elements."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

from plait.records import RunRecord, RunStatus
from plait_provenance_sqlite import SqliteProvenance

ELEMENTS = 400
KILLED_AT = 237  # the element in flight when the process is killed

SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path

    import anyio
    from plait import Dag, DagRunner, inline
    from plait_provenance_sqlite import SqliteProvenance

    work, mode = Path(sys.argv[1]), sys.argv[2]
    pause = float(sys.argv[3])

    @inline
    def numbers(n: int) -> list[int]:
        return list(range(n))

    @inline
    def square(x: int) -> int:
        fd = os.open(work / "calls.txt", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        os.write(fd, f"{x}\\n".encode())  # one write per execution: survives SIGKILL
        os.close(fd)
        if mode == "run" and x == int(sys.argv[4]):
            (work / "inflight").touch()
            time.sleep(120)  # killed here
        time.sleep(pause)
        return x * x

    @inline
    def plus_one(square: int) -> int:
        return square + 1

    @inline
    def total(each: list[int]) -> int:
        return sum(each)

    sub = Dag("element")
    sub.node(square) >> sub.node(plus_one)
    dag = Dag("squares")
    dag.node(numbers) >> dag.map(sub, label="each") >> dag.node(total)

    async def main():
        runner = DagRunner(dag, provenance=SqliteProvenance(work / "prov.sqlite3"))
        if mode == "run":
            result = await runner.run({"numbers": {"n": int(sys.argv[5])}})
        else:
            result = await runner.restart(sys.argv[4])
        print(result.status, result.outputs.get("total"))

    anyio.run(main)
    """
)


def _start(work: Path, *args: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(work / "squares.py"), str(work), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _wait_for(path: Path, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1].decode()
        assert time.monotonic() < deadline
        time.sleep(0.01)


def _calls(work: Path) -> Counter[int]:
    return Counter(int(x) for x in (work / "calls.txt").read_text().split())


async def _the_run(db: Path) -> RunRecord:
    async with SqliteProvenance(db) as prov:
        (run,) = await prov.list_runs(parent_run_id=None, dag_nsref="squares")
        return run


def _restart_and_check(work: Path, db: Path) -> None:
    run = anyio.run(_the_run, db)
    assert run.status == "running"  # as the killed process left it
    before = _calls(work)
    restarted = _start(work, "restart", 0, run.run_id)
    out, err = restarted.communicate(timeout=120)
    assert restarted.returncode == 0, err.decode()
    expected = sum(x * x + 1 for x in range(ELEMENTS))
    assert out.decode().split() == ["completed", str(expected)]
    again = _calls(work) - before
    # the restart ran the element in flight and those never started, each once
    assert set(again) == {KILLED_AT, *range(KILLED_AT + 1, ELEMENTS)}, sorted(again)[:10]
    assert set(again.values()) == {1}
    assert set(_calls(work).values()) == {1, 2}
    assert [x for x, n in _calls(work).items() if n == 2] == [KILLED_AT]


@pytest.mark.slow
def test_kill_9_in_an_inline_map_then_restart_runs_no_completed_element_again(
    tmp_path: Path,
) -> None:
    (tmp_path / "squares.py").write_text(SCRIPT)
    db = tmp_path / "prov.sqlite3"
    first = _start(tmp_path, "run", 0, KILLED_AT, ELEMENTS)
    _wait_for(tmp_path / "inflight", first)
    os.kill(first.pid, signal.SIGKILL)
    first.communicate()
    assert set(_calls(tmp_path)) == set(range(KILLED_AT + 1))
    _restart_and_check(tmp_path, db)


async def _old_runs(db: Path) -> None:
    """Finished runs from a month ago, with a sub-run each: what a purge should take."""
    old = datetime.now(UTC) - timedelta(days=30)
    async with SqliteProvenance(db) as prov:
        for i in range(5):
            for run_id, parent in ((f"old-{i}", None), (f"old-{i}-el", f"old-{i}")):
                prov.write_run(
                    RunRecord(
                        run_id=run_id,
                        dag_nsref="old",
                        status=RunStatus.COMPLETED,
                        started_at=old,
                        updated_at=old,
                        finished_at=old,
                        parent_run_id=parent,
                    )
                )


async def _purge(db: Path) -> int:
    async with SqliteProvenance(db) as prov:
        return await prov.purge() + await prov.purge(older_than=timedelta(0))


@pytest.mark.slow
def test_purge_while_a_map_runs_in_another_process_keeps_its_elements(tmp_path: Path) -> None:
    (tmp_path / "squares.py").write_text(SCRIPT)
    db = tmp_path / "prov.sqlite3"
    anyio.run(_old_runs, db)
    first = _start(tmp_path, "run", 0.002, KILLED_AT, ELEMENTS)
    purged = []
    while not (tmp_path / "inflight").exists():
        assert first.poll() is None, first.communicate()[1].decode()
        purged.append(anyio.run(_purge, db))  # purges while elements finish
    os.kill(first.pid, signal.SIGKILL)
    first.communicate()
    assert sum(purged) == 10  # the old runs and their sub-runs, nothing of the map
    assert len(purged) > 3, purged
    _restart_and_check(tmp_path, db)
