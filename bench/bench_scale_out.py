"""Scaling out: a CPU-bound map on ``thread``, ``process`` and ``dask``; dask executor overhead.

    python bench/bench_scale_out.py [--elements 200] [--ms 20] [--trivial 1000] [--reps 3]

Prints one JSON document:

- ``cpu_map``: a map over ``--elements`` elements, each a pure-Python loop calibrated to take
  about ``--ms`` milliseconds, on the thread executor, a process pool of 2 workers and a
  Dask ``LocalCluster`` of 2 worker processes (1 thread each). Pools and the cluster are
  started and warmed up before timing. ``speedup_vs_thread`` = thread time / executor time.
- ``dask_overhead``: ``--trivial`` trivial tasks as a plait map whose node runs on the dask
  executor, against plain ``client.map`` + ``client.gather`` on the same cluster.
  ``plait_over_client_map`` = plait time / client.map time.

Every figure is the median of ``--reps`` timed runs. Needs ``plait-executors`` and
``plait-dask`` installed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from distributed import Client, LocalCluster

from plait import Dag, DagRunner
from plait.protocols import Executor
from plait_dask import DaskExecutor
from plait_executors import ProcessExecutor, ThreadExecutor

WORKERS = 2


def spin(n: int) -> int:
    """The CPU-bound element: a pure-Python loop of ``n`` iterations."""
    acc = 0
    for i in range(n):
        acc += i * i % 7
    return acc


def trivial(x: int) -> int:
    return x


def iterations(n: int, count: int) -> list[int]:
    return [n] * count


def calibrate(ms: float) -> int:
    """Loop iterations that take about ``ms`` milliseconds here."""
    n = 100_000
    while True:
        t0 = time.perf_counter()
        spin(n)
        took = (time.perf_counter() - t0) * 1000
        if took > 50:
            return max(1, int(n * ms / took))
        n *= 2


def map_dag(fn: Callable[..., Any], name: str) -> Dag:
    each = Dag(f"each_{name}")
    each.node(fn)
    dag = Dag(f"map_{name}")
    dag.node(iterations) >> dag.map(each, label="each")
    return dag


async def median_seconds(reps: int, run: Callable[[], Awaitable[object]]) -> dict[str, Any]:
    await run()  # warm-up: pools started, modules imported on the workers
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        await run()
        times.append(time.perf_counter() - t0)
    return {"median_s": round(statistics.median(times), 4), "runs_s": [round(t, 4) for t in times]}


async def cpu_map(
    executors: dict[str, Executor], n: int, elements: int, reps: int
) -> dict[str, Any]:
    dag = map_dag(spin, "spin")
    out: dict[str, Any] = {}
    for name, executor in executors.items():
        runner = DagRunner(dag, executor=executor)

        async def run(runner: DagRunner = runner) -> None:
            result = await runner.run({"iterations": {"n": n, "count": elements}})
            assert result.ok, result.error

        out[name] = await median_seconds(reps, run)
    thread = out["thread"]["median_s"]
    for name in out:
        out[name]["speedup_vs_thread"] = round(thread / out[name]["median_s"], 2)
    return out


async def dask_overhead(
    executor: DaskExecutor, client: Client, tasks: int, reps: int
) -> dict[str, Any]:
    runner = DagRunner(map_dag(trivial, "trivial"), executor=executor)

    async def plait_run() -> None:
        result = await runner.run({"iterations": {"n": 1, "count": tasks}})
        assert result.ok, result.error

    def client_map() -> None:
        futures = client.map(trivial, [1] * tasks, pure=False)
        client.gather(futures)

    async def client_run() -> None:
        await anyio.to_thread.run_sync(client_map)

    plait = await median_seconds(reps, plait_run)
    plain = await median_seconds(reps, client_run)
    return {
        "tasks": tasks,
        "plait_dask": plait,
        "client_map": plain,
        "plait_over_client_map": round(plait["median_s"] / plain["median_s"], 2),
        "plait_overhead_us_per_task": round(
            (plait["median_s"] - plain["median_s"]) / tasks * 1e6, 1
        ),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    n = calibrate(args.ms)
    load_start = os.getloadavg()[0]
    with (
        LocalCluster(
            n_workers=WORKERS,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        process = ProcessExecutor(max_workers=WORKERS)
        dask = DaskExecutor(client=client)
        try:
            executors: dict[str, Executor] = {
                "thread": ThreadExecutor(),
                "process": process,
                "dask": dask,
            }
            cpu = await cpu_map(executors, n, args.elements, args.reps)
            overhead = await dask_overhead(dask, client, args.trivial, args.reps)
        finally:
            await process.aclose()
            await dask.aclose()
    return {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg_start": round(load_start, 2),
            "load_avg_end": round(os.getloadavg()[0], 2),
        },
        "cpu_map": {
            "elements": args.elements,
            "element_ms": args.ms,
            "loop_iterations": n,
            "workers": WORKERS,
            **cpu,
        },
        "dask_overhead": overhead,
    }


if __name__ == "__main__":  # worker processes import this file again
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elements", type=int, default=200)
    parser.add_argument("--ms", type=float, default=20.0)
    parser.add_argument("--trivial", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=3)
    print(json.dumps(anyio.run(main, parser.parse_args()), indent=2))
