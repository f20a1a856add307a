"""Two processes restart the same crashed run at once: exactly one runs it, the other gets
RunBusyError naming the run and the owner that won, and no node executes twice.

Real processes on one real store file. A creator process starts ROUNDS runs at once, all
blocked in node ``b``, and is killed with SIGKILL: ROUNDS crashed runs, ``a`` completed,
``b`` in flight. Two restarter processes then take the runs one by one, meeting at a file
barrier before each ``restart(run_id)`` so that they race for the same run every time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import anyio
import attrs
import pytest

from plait import Dag, DagPause, DagRunner
from plait.errors import RunBusyError
from plait.owners import owner_alive, process_started, this_process
from plait.records import RunOwner, RunStatus
from plait_provenance_sqlite import SqliteProvenance

ROUNDS = 12

SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path

    import anyio
    from plait import Dag, DagContext, DagRunner
    from plait.errors import RunBusyError
    from plait_provenance_sqlite import SqliteProvenance

    work, role = Path(sys.argv[1]), sys.argv[2]

    def note(label, ctx):
        # one small O_APPEND write per execution: survives a SIGKILL right after it
        fd = os.open(work / "calls.txt", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        os.write(fd, f"{ctx.run_id} {label} {os.getpid()}\\n".encode())
        os.close(fd)

    def a(x: int, ctx: DagContext) -> int:
        note("a", ctx)
        return x + 1

    async def b(a: int, ctx: DagContext) -> int:
        note("b", ctx)
        if role == "creator":
            (work / f"blocked-{ctx.run_id}").touch()
            await anyio.sleep(120)  # killed here
        return a * 2

    def c(b: int, ctx: DagContext) -> int:
        note("c", ctx)
        return b + 3

    async def d(c: int, ctx: DagContext) -> int:
        note("d", ctx)
        return c * 10

    dag = Dag("race")
    dag.node(a) >> dag.node(b) >> dag.node(c) >> dag.node(d)

    def wait_for(path):
        deadline = time.monotonic() + 60
        while not path.exists():
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out waiting for {path}")
            time.sleep(0.001)

    async def main():
        runner = DagRunner(dag, provenance=SqliteProvenance(work / "prov.sqlite3"))
        if role == "creator":
            async with runner, anyio.create_task_group() as tg:
                for i in range(int(sys.argv[3])):
                    tg.start_soon(runner.run, {"a": {"x": i}})
            return
        for line in (work / "runs.txt").read_text().split():
            (work / f"ready-{line}-{role}").touch()
            for other in ("one", "two"):
                wait_for(work / f"ready-{line}-{other}")
            try:
                result = await runner.restart(line)
                outcome = f"{result.status} {result.outputs.get('d')}"
            except RunBusyError as exc:
                outcome = f"busy {exc.owner_pid} {exc}"
            except Exception as exc:  # recorded, so the other racer is not left waiting
                outcome = f"error {type(exc).__name__} {exc}"
            with open(work / f"outcomes-{role}.txt", "a") as fh:
                fh.write(f"{line} {os.getpid()} {outcome}\\n")

    anyio.run(main)
    """
)


async def _crashed_run_ids(db: Path) -> list[str]:
    async with SqliteProvenance(db) as prov:
        return sorted(r.run_id for r in await prov.list_runs(status="running"))


async def _check_runs(db: Path, run_ids: list[str], winners: dict[str, str]) -> None:
    async with SqliteProvenance(db) as prov:
        for run_id in run_ids:
            run = await prov.get_run(run_id)
            assert (run.status, run.attempt, str(run.owner_pid)) == (
                "completed",
                2,
                winners[run_id],
            )
            x = run.source_inputs["a"]["x"]
            assert (await prov.get_node_output(run_id, "d")).output == ((x + 1) * 2 + 3) * 10
            history = [c.status for c in await prov.status_history(run_id) if c.label is None]
            assert history == ["running", "running", "completed"], history


@pytest.mark.slow
def test_two_processes_restarting_one_crashed_run_run_it_once(tmp_path: Path) -> None:
    script = tmp_path / "race.py"
    script.write_text(SCRIPT)
    db = tmp_path / "prov.sqlite3"
    creator = subprocess.Popen([sys.executable, str(script), str(tmp_path), "creator", str(ROUNDS)])
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("blocked-*"))) < ROUNDS:
        assert creator.poll() is None
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(creator.pid, signal.SIGKILL)
    creator.wait()

    run_ids = anyio.run(_crashed_run_ids, db)
    assert len(run_ids) == ROUNDS
    (tmp_path / "runs.txt").write_text("\n".join(run_ids))
    racers = [
        subprocess.Popen(
            [sys.executable, str(script), str(tmp_path), role],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for role in ("one", "two")
    ]
    for racer in racers:
        _out, err = racer.communicate(timeout=120)
        assert racer.returncode == 0, err.decode()

    outcomes: dict[str, list[list[str]]] = {}
    for role in ("one", "two"):
        for line in (tmp_path / f"outcomes-{role}.txt").read_text().splitlines():
            run_id, pid, *rest = line.split(" ", 4)
            outcomes.setdefault(run_id, []).append([pid, *rest])
    calls = Counter(
        tuple(line.split()) for line in (tmp_path / "calls.txt").read_text().splitlines()
    )
    winners = {}
    busy = 0
    for run_id in run_ids:
        (won,) = [o for o in outcomes[run_id] if o[1] == "completed"]
        (lost,) = [o for o in outcomes[run_id] if o[1] != "completed"]
        winner = won[0]
        winners[run_id] = winner
        if lost[1] == "busy":  # it read the run before the winner finished it
            busy += 1
            assert lost[2] == winner, (run_id, won, lost)  # told who holds the run
            assert run_id in lost[3], lost
            assert f"process {winner}" in lost[3], lost
        else:  # (on a loaded machine) it read the run only once the winner had finished it
            assert lost[1:3] == ["error", "RestartError"], lost
            assert run_id in lost[3], lost
            assert "already completed" in lost[3], lost
        # after the crash, each node ran once, in the winner
        ran = {(label, pid): n for (rid, label, pid), n in calls.items() if rid == run_id}
        assert ran.pop(("a", str(creator.pid))) == 1
        assert ran.pop(("b", str(creator.pid))) == 1  # in flight when it was killed
        assert ran == {("b", winner): 1, ("c", winner): 1, ("d", winner): 1}, ran
    assert busy > 0  # the racers did meet
    anyio.run(_check_runs, db, run_ids, winners)


# ---------------------------------------------------------------------- who is the owner
def _gate_dag(work: Path) -> Dag:
    async def gate(x: int) -> int:
        if not (work / "open").exists():
            raise DagPause("closed")
        return x + 1

    dag = Dag("owned")
    dag.node(gate)
    return dag


async def _as_if_owned_by(db: Path, run_id: str, owner: RunOwner) -> None:
    """The run as its owner left it when it died (or while it lives): running."""
    async with SqliteProvenance(db) as prov:
        run = await prov.get_run(run_id)
        prov.write_run(
            attrs.evolve(
                run,
                status=RunStatus.RUNNING,
                owner_pid=owner.pid,
                owner_host=owner.host,
                owner_started=owner.started,
            )
        )


@pytest.mark.anyio
async def test_restart_tells_a_live_owner_from_a_zombie_or_a_reused_pid(tmp_path: Path) -> None:
    db = tmp_path / "prov.sqlite3"
    first = await DagRunner(_gate_dag(tmp_path), provenance=SqliteProvenance(db)).run(
        {"gate": {"x": 1}}
    )
    assert first.status == "paused"
    host = this_process().host
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # noqa: ASYNC220
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])  # noqa: ASYNC220
    try:
        live_owner = RunOwner(pid=live.pid, host=host, started=process_started(live.pid))
        await _as_if_owned_by(db, first.run_id, live_owner)
        runner = DagRunner(_gate_dag(tmp_path), provenance=SqliteProvenance(db))
        with pytest.raises(RunBusyError, match=f"still running in process {live.pid}") as info:
            await runner.restart(first.run_id)
        assert first.run_id in str(info.value)
        assert (info.value.run_id, info.value.owner_pid) == (first.run_id, live.pid)

        # the same pid, started at another time: the owner died and its pid was reused
        if live_owner.started:
            await _as_if_owned_by(
                db, first.run_id, attrs.evolve(live_owner, started=live_owner.started + "0")
            )
            assert (await runner.restart(first.run_id)).status == "paused"

        # a dead owner nobody reaped: kill(pid, 0) still finds it
        zombie_owner = RunOwner(pid=zombie.pid, host=host, started=process_started(zombie.pid))
        while owner_alive(zombie_owner):  # noqa: ASYNC110 - a process, not a task
            await anyio.sleep(0.01)
        os.kill(zombie.pid, 0)
        await _as_if_owned_by(db, first.run_id, zombie_owner)
        (tmp_path / "open").touch()
        done = await runner.restart(first.run_id)
        assert (done.status, done.outputs) == ("completed", {"gate": 2})
    finally:
        live.kill()
        live.wait()
        zombie.wait()
    async with SqliteProvenance(db) as prov:
        run = await prov.get_run(first.run_id)
        assert run.owner == this_process()
