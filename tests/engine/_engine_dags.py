"""DAGs and checks that engine tests (and engine subprocesses) import by reference."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import anyio

from plait import Dag, DagContext

CALLS: list[str] = []


async def stamp(when: datetime | None = None, tag: str = "") -> str:
    CALLS.append(f"{tag}@{when.isoformat() if when else '-'}")
    return tag


stamp_dag = Dag("stamp")
stamp_dag.node(stamp)


class Flaky:
    """Fails its first ``failures`` calls."""

    def __init__(self) -> None:
        self.failures = 0
        self.calls = 0

    async def __call__(self, tag: str = "") -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise RuntimeError(f"flaky failure {self.calls}")
        return tag


FLAKY = Flaky()


async def flaky(tag: str = "") -> str:
    return await FLAKY(tag)


flaky_dag = Dag("flaky")
flaky_dag.node(flaky)

GATE: dict[str, anyio.Event] = {}


async def gated(tag: str = "") -> str:
    """Waits for ``GATE[tag]`` (set by the test) before returning."""
    event = GATE.setdefault(tag, anyio.Event())
    await event.wait()
    CALLS.append(tag)
    return tag


gated_dag = Dag("gated")
gated_dag.node(gated)


# ---------------------------------------------------------------- for engine subprocesses
def _log(line: str) -> None:
    with Path(os.environ["PLAIT_TEST_LOG"]).open("a") as fh:
        fh.write(line + "\n")


def first(ctx: DagContext, when: datetime | None = None) -> int:
    _log(f"first {os.getpid()} {ctx.run_id} {when.isoformat() if when else '-'}")
    return 1


def slow(n: int, ctx: DagContext) -> int:
    _log(f"slow-start {os.getpid()} {ctx.run_id}")
    import time

    time.sleep(float(os.environ.get("PLAIT_TEST_SLOW", "3")))
    _log(f"slow-end {os.getpid()} {ctx.run_id}")
    return n + 1


def build_crash_dag() -> Dag:
    dag = Dag("crashy")
    a = dag.node(first)
    b = dag.node(slow)
    a >> b
    return dag


crash_dag = build_crash_dag()


# ---------------------------------------------------------------- poll checks
POLL_RESULTS: list[object] = []


async def next_poll_result() -> object:
    """Pops the next scripted result; an exception instance is raised."""
    result = POLL_RESULTS.pop(0) if POLL_RESULTS else None
    if isinstance(result, BaseException):
        raise result
    return result


def sync_poll() -> dict[str, str]:
    return {"tag": "from-sync-check"}
