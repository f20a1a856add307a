"""Node functions for the process executor tests: worker processes import them from here."""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from pathlib import Path

from plait import hookimpl
from plait.records import NodeRecord


class Holder:
    """Cannot be pickled: it holds a lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()


class Finished:
    """A lifecycle-hook plugin that keeps every finished node record."""

    def __init__(self) -> None:
        self.records: list[NodeRecord] = []

    @hookimpl
    def plait_on_node_finish(self, node: NodeRecord) -> None:
        self.records.append(node)

    def by_label(self, label: str) -> list[NodeRecord]:
        return [r for r in self.records if r.label == label]


def numbers(n: int) -> list[int]:
    return list(range(n))


def pid() -> int:
    return os.getpid()


def pid_of(x: int) -> int:
    """This worker's pid; with ``$PLAIT_TEST_RENDEZVOUS`` (a directory) set, a worker's
    first element waits (up to 60 s) until two workers have each started one, so a map
    spreads over both however slowly the second worker process starts."""
    meeting = os.environ.get("PLAIT_TEST_RENDEZVOUS")
    if meeting:
        mark = Path(meeting) / str(os.getpid())
        if not mark.exists():
            mark.touch()
            deadline = time.monotonic() + 60
            while len(list(Path(meeting).iterdir())) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
    time.sleep(0.005)
    return os.getpid()


def explode(x: int) -> int:
    raise ValueError(f"bad element {x}")


def make_holder() -> Holder:
    return Holder()


def use_holder(h: Holder) -> int:
    return 1


def return_holder() -> Holder:
    return Holder()


def die_once(marker: str) -> int:
    """First call: write our pid to ``marker`` and sleep (to be killed); later: return pid."""
    path = Path(marker)
    if path.exists():
        return os.getpid()
    path.write_text(str(os.getpid()))
    time.sleep(30)
    return -1


@dataclasses.dataclass(frozen=True)
class Job:
    n: int
    log: str
    seconds: float


def jobs(log: str, n: int, seconds: float) -> list[Job]:
    return [Job(i, log, seconds) for i in range(n)]


def work(job: Job) -> int:
    """Appends ``start N`` to the job's log, sleeps, appends ``end N``."""
    with open(job.log, "a") as f:
        f.write(f"start {job.n}\n")
    time.sleep(job.seconds)
    with open(job.log, "a") as f:
        f.write(f"end {job.n}\n")
    return job.n


def crunch(fetch: float) -> tuple[float, int]:
    return fetch * fetch / 4, os.getpid()


def outlive(work: str, seconds: float) -> int:
    """Say it started (its pid in ``started``), work ``seconds``, then say it finished."""
    folder = Path(work)
    (folder / "started.tmp").write_text(str(os.getpid()))
    (folder / "started.tmp").rename(folder / "started")
    time.sleep(seconds)
    (folder / "finished").write_text(str(os.getpid()))
    return os.getpid()
