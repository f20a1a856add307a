"""The timing protocol of a peer driver, in the peer's own virtualenv (standard library only:
plait is not installed there).

``bench/run.py`` starts a driver as ``python <driver>.py`` with one JSON object on stdin::

    {"cases": [{"key": ..., "title": ..., "size": ..., "unit": ...}, ...],
     "reps": 5, "cap": 60.0, "slow": 3.0, "quick": false}

and reads one JSON line per measurement on stdout, with the fields of ``run.Measurement``
(``case``, ``title``, ``size``, ``unit``, ``lib``, ``build_s``, ``first_s``, ``times``,
``cpu_times``, ``capped``, ``error``, ``note``). The rules are run.py's: the build is timed
around the setup, one untimed warm-up run, then ``reps`` timed runs; a warm-up over ``slow``
seconds is kept as the only sample; a run over ``cap`` seconds ends the subject (a run in a
peer cannot be interrupted from inside, so ``run.py`` also kills a driver that overruns).

A setup is a context manager that yields ``once``: a callable that runs one
repetition, checks its result, and returns ``None`` or the seconds it measured inside (a
Prefect flow reports the time inside its body; the whole call is timed outside). Each
subject names one or two libs: the second one gets the inside time.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import json
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Result:
    case: str
    title: str
    size: int
    unit: str
    lib: str
    build_s: float | None = None
    first_s: float | None = None
    times: list[float] = field(default_factory=list)
    cpu_times: list[float] = field(default_factory=list)
    capped: bool = False
    error: str | None = None
    note: str = ""


@dataclass
class Subject:
    """One peer configuration on one case: ``libs`` = (outside lib, optional inside lib)."""

    case: dict[str, Any]
    libs: tuple[str, ...]
    setup: Callable[[], Any]
    note: str = ""
    #: seconds the peer took to start before this subject (DBOS's launch, Prefect's import
    #: and API server), added to its build time
    startup_s: float = 0.0


def emit(result: Result) -> None:
    print(json.dumps(asdict(result)), flush=True)


def read_request() -> dict[str, Any]:
    return json.loads(sys.stdin.read() or "{}")


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


def _call(once: Callable[[], Any], loop: asyncio.AbstractEventLoop) -> Any:
    """A sync ``once`` runs in this thread with no event loop running (as a user's script
    calls it); an async one on ``loop``, the one event loop of the driver."""
    out = once()
    if inspect.isawaitable(out):
        out = loop.run_until_complete(out)
    return out


def measure(
    subject: Subject, reps: int, cap: float, slow: float, loop: asyncio.AbstractEventLoop
) -> list[Result]:
    """Build, warm up and time one subject; every failure ends up in ``error``."""
    case = subject.case
    results = [
        Result(case["key"], case["title"], case["size"], case["unit"], lib, note=subject.note)
        for lib in subject.libs
    ]
    with contextlib.ExitStack() as stack:
        gc.collect()
        t0 = time.perf_counter()
        try:
            once = stack.enter_context(subject.setup())
        except Exception as exc:  # a peer that does not start is reported, not fatal
            for r in results:
                r.error = _error(exc)
            return results
        build = time.perf_counter() - t0 + subject.startup_s
        for r in results:
            r.build_s = build
        for rnd in range(reps + 1):
            gc.collect()
            c0, t0 = time.process_time(), time.perf_counter()
            try:
                inner = _call(once, loop)
            except Exception as exc:
                for r in results:
                    r.error = _error(exc)
                return results
            elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
            samples = [elapsed, inner if inner is not None else elapsed]
            if elapsed > cap:
                for r, s in zip(results, samples, strict=False):
                    r.capped, r.note, r.times = True, f"cut off after {cap:.0f} s", [s]
                return results
            if rnd == 0:
                for r, s in zip(results, samples, strict=False):
                    r.first_s = s
                if elapsed > slow:
                    for r, s in zip(results, samples, strict=False):
                        r.times, r.cpu_times = [s], [cpu]
                        r.note = "; ".join(filter(None, [r.note, "one run (slow)"]))
                    return results
                continue
            for r, s in zip(results, samples, strict=False):
                r.times.append(s)
                r.cpu_times.append(cpu)
    return results


def environment(dists: Iterable[str]) -> dict[str, Any]:
    """The peer's Python, SQLite library and distribution versions."""
    import importlib.metadata
    import platform
    import sqlite3

    versions = {}
    for dist in dists:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "versions": versions,
    }


def run_driver(
    subjects: Callable[[dict[str, Any]], Iterable[Subject]], dists: Iterable[str]
) -> None:
    """Read the request, print the environment, measure every subject the driver has for
    the requested cases, and print each result as soon as it is known."""
    request = read_request()
    print(json.dumps({"environment": environment(dists)}), flush=True)
    reps = int(request.get("reps", 5))
    cap = float(request.get("cap", 60.0))
    slow = float(request.get("slow", 3.0))
    loop = asyncio.new_event_loop()
    try:
        for subject in subjects(request):
            for result in measure(subject, reps, cap, slow, loop):
                emit(result)
    except Exception as exc:  # the peer did not start: say why, for every case it owes
        print(json.dumps({"failure": _error(exc)}), flush=True)
        raise
    finally:
        loop.close()
