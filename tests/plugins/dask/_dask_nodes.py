"""Node functions for the dask executor tests: Dask workers import them from here."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

from plait import hookimpl, inline
from plait.records import NodeRecord


class Finished:
    """A lifecycle-hook plugin that keeps every finished node record."""

    def __init__(self) -> None:
        self.records: list[NodeRecord] = []

    @hookimpl
    def plait_on_node_finish(self, node: NodeRecord) -> None:
        self.records.append(node)

    def by_label(self, label: str) -> list[NodeRecord]:
        return [r for r in self.records if r.label == label]


@inline  # not on the thread executor: plait-dask's tests run without plait-executors
def numbers(n: int) -> list[int]:
    return list(range(n))


def pid() -> int:
    return os.getpid()


def pid_of(x: int) -> int:
    time.sleep(0.01)
    return os.getpid()


def explode(x: int) -> int:
    raise ValueError(f"bad element {x}")


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


@inline
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


def echo_or_explode(x: int) -> int:
    """Odd ``x`` raises (on the worker), even ``x`` comes back."""
    if x % 2:
        raise ValueError(f"odd element {x}")
    return x


def logging_on_worker(x: int) -> int:
    import logging

    log = logging.getLogger("dask_nodes")
    log.info("on a dask worker with %d", x)
    if x < 0:
        raise ValueError(f"negative {x}")
    return x + 1
