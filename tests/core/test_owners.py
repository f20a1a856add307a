"""Run ownership: whether the owner of a run is alive, told from real processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import attrs
import pytest

from plait.errors import PlaitError, RestartError, RunBusyError
from plait.owners import claimed, owner_alive, process_started, this_process
from plait.records import RunOwner, RunRecord, RunStatus


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def test_this_process_is_alive_and_names_its_start() -> None:
    me = this_process()
    assert me.pid == os.getpid()
    assert owner_alive(me) is True
    if sys.platform == "linux":
        assert me.started.startswith("linux:")
    assert process_started(os.getpid()) == me.started


def test_a_live_owner_is_alive_and_a_reused_pid_is_not(
    sleeper: subprocess.Popen[bytes],
) -> None:
    started = process_started(sleeper.pid)
    owner = RunOwner(pid=sleeper.pid, host=this_process().host, started=started)
    assert owner_alive(owner) is True
    assert owner_alive(attrs.evolve(owner, started="")) is True  # recorded before v4
    if started:  # the same pid, a process started at another time: not the owner
        assert owner_alive(attrs.evolve(owner, started=started + "0")) is False


def test_a_dead_or_zombie_owner_is_dead() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    started = process_started(proc.pid)
    deadline = time.monotonic() + 10
    owner = RunOwner(pid=proc.pid, host=this_process().host, started=started)
    while owner_alive(owner) and time.monotonic() < deadline:
        time.sleep(0.02)
    # exited, not reaped: a zombie, which kill(pid, 0) still finds
    assert owner_alive(owner) is False
    os.kill(proc.pid, 0)
    proc.wait()
    assert owner_alive(owner) is False  # reaped: gone
    assert owner_alive(attrs.evolve(owner, pid=0)) is False


def test_another_host_cannot_be_told() -> None:
    assert owner_alive(RunOwner(pid=os.getpid(), host="elsewhere.invalid")) is None


def _run(**changes: object) -> RunRecord:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    fields: dict[str, object] = {
        "run_id": "r1",
        "dag_nsref": "m:d",
        "status": RunStatus.FAILED,
        "started_at": now,
        "updated_at": now,
        "attempt": 2,
        "owner_pid": 10,
        "owner_host": "h",
        "owner_started": "t10",
        "failed_node": "x",
        "error_type": "ValueError",
    }
    fields.update(changes)
    return RunRecord(**fields)  # type: ignore[arg-type]


def test_claimed_takes_the_run_as_it_was_read() -> None:
    run = _run()
    me = RunOwner(pid=20, host="h", started="t20")
    at = datetime(2026, 1, 2, tzinfo=UTC)
    got = claimed(run, expected_attempt=2, owner=me, expected_owner=run.owner, at=at)
    assert (got.status, got.attempt, got.owner, got.updated_at) == ("running", 3, me, at)
    assert (got.failed_node, got.error_type, got.finished_at) == (None, None, None)
    for attempt, expected in ((1, run.owner), (2, RunOwner(pid=10, host="h", started="t9"))):
        with pytest.raises(RunBusyError, match=r"'r1'.*process 10 on host 'h'") as info:
            claimed(run, expected_attempt=attempt, owner=me, expected_owner=expected, at=at)
        assert isinstance(info.value, RestartError | PlaitError)
        assert (info.value.run_id, info.value.owner_pid, info.value.attempt) == ("r1", 10, 2)
    with pytest.raises(RestartError, match="already completed"):
        claimed(_run(status=RunStatus.COMPLETED), expected_attempt=2, owner=me, at=at)
