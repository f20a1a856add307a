"""Prefect 3 on plait's in-memory cases and its cache, in ephemeral mode and offline.

Run by ``bench/run.py`` in Prefect's own virtualenv (see :mod:`protocol`). Before Prefect
is imported the driver points ``PREFECT_HOME`` at a temporary directory (a fresh SQLite API
database and result store), drops any ``PREFECT_API_URL`` and turns on ephemeral mode:
Prefect starts its API server as a subprocess on localhost (a setup cost, taken by a
first trivial flow in the build). Analytics are off (``DO_NOT_TRACK=1``,
``PREFECT_SERVER_ANALYTICS_ENABLED=false``), the UI is not served, and nothing leaves the
machine. Logging stays at Prefect's defaults (a line per task run, sent to the API too).

Each case is one flow run a repetition, timed twice: from the flow's first line to its last
(``prefect (in flow)``), and the whole call of the flow (``prefect (flow run)``: creating the
flow run, its state transitions, and waiting for its task runs' events and logs to reach
the API at the end).

- ``chain`` (100): ``v = inc(v)`` for 99 tasks after the flow's own input;
- ``fanout`` (50): an async flow gathering 50 async tasks that sleep 10 ms;
- ``cache_hit`` / ``cache_miss``: ``calls`` calls of a task with ``cache_policy=INPUTS``
  (results persisted to the local result store); hits read keys a setup flow stored (each
  returned state must be ``Cached``), misses use keys never seen (each state ``Completed``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from protocol import Subject, run_driver

CASES = ("chain", "fanout", "cache_hit", "cache_miss")
LIBS = ("prefect (flow run)", "prefect (in flow)")
OFFLINE = {
    "PREFECT_SERVER_EPHEMERAL_ENABLED": "true",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_UI_ENABLED": "false",
    "PREFECT_TELEMETRY_ENABLE_RESOURCE_METRICS": "false",
    "PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY": "false",
    "DO_NOT_TRACK": "1",
    # the API server can take over 20 s (the default) to start on a busy 2-core machine
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
}


def _define() -> dict[str, Any]:
    from prefect import flow, task
    from prefect.cache_policies import INPUTS

    @task
    def inc(v: int) -> int:
        return v + 1

    @flow
    def chain(n: int) -> tuple[int, float]:
        t0 = time.perf_counter()
        v = 0  # the flow's input stands for the source node
        for _ in range(1, n):
            v = inc(v)
        return v, time.perf_counter() - t0

    @task
    async def branch(v: int) -> float:
        await asyncio.sleep(0.01)
        return v * 1.0

    @flow
    async def fan(width: int) -> tuple[float, float]:
        t0 = time.perf_counter()
        xs = await asyncio.gather(*[branch(1) for _ in range(width)])
        return sum(xs), time.perf_counter() - t0

    @task(cache_policy=INPUTS)
    def cached_price(ticker: str, day: int) -> dict[str, Any]:
        return {"ticker": ticker, "day": day, "px": day * 1.5}

    @flow
    def calls(ticker: str, n: int, expect: str) -> float:
        t0 = time.perf_counter()
        out: Any = None
        for i in range(n):
            state = cached_price(ticker, i, return_state=True)
            assert state.name == expect, (i, state)
            out = state.result()
        assert out["day"] == n - 1, out
        return time.perf_counter() - t0

    @flow
    def hello() -> int:
        return inc(0)

    return {"chain": chain, "fan": fan, "calls": calls, "hello": hello}


@contextlib.contextmanager
def started() -> Iterator[dict[str, Any]]:
    """Prefect offline on a fresh home; its API server started by one trivial flow."""
    with tempfile.TemporaryDirectory(prefix="prefect-bench-") as home:
        os.environ.pop("PREFECT_API_URL", None)
        os.environ.update(OFFLINE, PREFECT_HOME=home)
        flows = _define()
        assert flows["hello"]() == 1
        yield flows


def subjects(request: dict[str, Any]) -> Iterator[Subject]:
    wanted = [c for c in request["cases"] if c["key"] in CASES]
    if not wanted:
        return
    t0 = time.perf_counter()
    with started() as flows:
        startup = time.perf_counter() - t0
        for case in wanted:
            yield Subject(case, LIBS, _setup(flows, case), startup_s=startup)


def _setup(flows: dict[str, Any], case: dict[str, Any]) -> Any:
    size = case["size"]

    @contextlib.contextmanager
    def chain() -> Iterator[Any]:
        def once() -> float:
            out, inside = flows["chain"](size)
            assert out == size - 1, out
            return inside

        yield once

    @contextlib.contextmanager
    def fan() -> Iterator[Any]:
        async def once() -> float:
            out, inside = await flows["fan"](size)
            assert out == float(size), out
            return inside

        yield once

    @contextlib.contextmanager
    def hits() -> Iterator[Any]:
        flows["calls"]("hit", size, "Completed")  # fills the cache (part of the build)

        def once() -> float:
            return flows["calls"]("hit", size, "Cached")

        yield once

    @contextlib.contextmanager
    def misses() -> Iterator[Any]:
        fresh = itertools.count()

        def once() -> float:
            return flows["calls"](f"miss{next(fresh)}", size, "Completed")

        yield once

    setups = {"chain": chain, "fanout": fan, "cache_hit": hits, "cache_miss": misses}
    return setups[case["key"]]


if __name__ == "__main__":
    run_driver(subjects, ("prefect", "sqlalchemy", "pydantic"))
