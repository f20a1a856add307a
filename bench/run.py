"""plait benchmarks, side by side with peers: ``nox -s bench`` (``-- --quick`` for a smoke run).

Every case runs plait and its peers in this one process, alternating the order from one
repetition to the next, and reports the median of the repetitions, the time per node
(element, call) and the ratio peer/plait (above 1: plait is faster). Results go to a table
and to ``bench/results/latest.json``. See ``bench/README.md`` for what each case means.

    python bench/run.py [--quick] [--only chain,fanout,...] [--reps 5] [--cap 60]
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import anyio

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:  # run as a script or imported by the smoke test
    sys.path.insert(0, str(BENCH_DIR))

import peer_cases as peers  # noqa: E402
import peer_drivers  # noqa: E402
import plait_cases as pc  # noqa: E402
import startup_memory  # noqa: E402
from peers.protocol import Result  # noqa: E402  (standard library only: no plait there)

RESULTS = BENCH_DIR / "results" / "latest.json"
CASE_KEYS = (
    "chain",
    "chain_sqlite",
    "durable_one",
    "fanout",
    "map",
    "map_sqlite",
    "cache_hit",
    "cache_miss",
    "thread",
    "scale",
)
#: Measured in fresh processes, not as cases: ``import plait``, ``plait --version``, peak RSS.
EXTRA_KEYS = ("startup",)
FANOUT_WIDTH = 50
CACHE_CALLS = 1000

Setup = Callable[[], AbstractAsyncContextManager[pc.Run]]


@dataclass
class Subject:
    lib: str
    setup: Setup


@dataclass
class Case:
    key: str
    title: str
    size: int
    unit: str
    subjects: list[Subject]


@dataclass
class Measurement(Result):
    """One library on one case. Seconds; ``times`` are the timed repetitions. Its fields are
    the record a peer driver prints (``peers/protocol.py``)."""

    @property
    def median_s(self) -> float | None:
        return statistics.median(self.times) if self.times else None

    @property
    def per_unit_us(self) -> float | None:
        med = self.median_s
        return None if med is None or self.capped else med / self.size * 1e6

    @property
    def mean_per_unit_us(self) -> float | None:
        """Mean wall time per unit: includes the rare slow repetition (a WAL checkpoint
        every few thousand commits, say) that the median leaves out."""
        if not self.times or self.capped:
            return None
        return statistics.fmean(self.times) / self.size * 1e6

    @property
    def cpu_per_unit_us(self) -> float | None:
        """Process CPU time per unit: steadier than wall time on a shared machine."""
        if not self.cpu_times or self.capped:
            return None
        return statistics.median(self.cpu_times) / self.size * 1e6

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["median_s"] = self.median_s
        out["per_unit_us"] = self.per_unit_us
        out["mean_per_unit_us"] = self.mean_per_unit_us
        out["cpu_per_unit_us"] = self.cpu_per_unit_us
        out["reps"] = len(self.times)
        return out


# ---------------------------------------------------------------------------- the cases
#: (key, title, size, unit, subjects): one case before ``--only`` is applied
Spec = tuple[str, str, int, str, list[tuple[str, Setup]]]


def build_cases(quick: bool = False, only: Sequence[str] = ()) -> list[Case]:
    """Every case of the benchmark, plait first in each; ``quick`` shrinks the sizes."""
    specs = [
        *_chain_specs(quick),
        *_durable_specs(quick),
        *_concurrency_specs(quick),
        *_cache_specs(quick),
        *_engine_specs(quick),
    ]
    return [
        Case(key, title, size, unit, [Subject(*s) for s in subjects])
        for key, title, size, unit, subjects in specs
        if not only or key in only
    ]


def _chain_specs(quick: bool) -> list[Spec]:
    specs: list[Spec] = []
    for n in [100] if quick else [100, 1_000, 10_000]:
        subjects: list[tuple[str, Setup]] = [
            ("plait", partial(pc.plait_chain, n)),
            ("lythonic", partial(peers.lythonic_chain, n)),
            ("hamilton", partial(peers.hamilton_chain, n)),
        ]
        if n <= 1_000:  # Dask's 10,000 chain takes a minute a run: measured up to 1,000
            subjects.append(("dask threads", partial(peers.dask_chain, n, "threads")))
            subjects.append(("dask sync", partial(peers.dask_chain, n, "sync")))
        specs.append(("chain", f"chain of {n:,} inline nodes", n, "node", subjects))
    n = 100 if quick else 1_000
    sqlite: list[tuple[str, Setup]] = [
        ("plait", partial(pc.plait_chain, n, sqlite=True)),
        ("plait synchronous=full", partial(pc.plait_chain, n, sqlite=True, synchronous="full")),
        ("lythonic", partial(peers.lythonic_chain, n, sqlite=True)),
        ("commit floor", partial(peers.sqlite_commit_floor, n)),
        ("commit floor full", partial(peers.sqlite_commit_floor, n, "full")),
    ]
    specs.append(("chain_sqlite", f"chain of {n:,}, SQLite provenance", n, "node", sqlite))
    return specs


def _durable_specs(quick: bool) -> list[Spec]:
    runs = 20 if quick else 100
    subjects: list[tuple[str, Setup]] = [
        ("plait", partial(pc.plait_durable_one, runs)),
        ("plait, store per run", partial(pc.plait_durable_one, runs, held_open=False)),
        ("3-commit floor", partial(peers.sqlite_run_floor, runs)),
    ]
    return [("durable_one", f"{runs} one-node runs, SQLite provenance", runs, "run", subjects)]


def _concurrency_specs(quick: bool) -> list[Spec]:
    fanout: list[tuple[str, Setup]] = [
        ("plait", partial(pc.plait_fanout, FANOUT_WIDTH)),
        ("lythonic", partial(peers.lythonic_fanout, FANOUT_WIDTH)),
        ("dask threads", partial(peers.dask_fanout, FANOUT_WIDTH, "threads")),
    ]
    specs: list[Spec] = [
        ("fanout", f"fan-out {FANOUT_WIDTH} x sleep(10 ms)", FANOUT_WIDTH, "branch", fanout)
    ]
    for m in [1_000] if quick else [1_000, 10_000]:
        subjects: list[tuple[str, Setup]] = [
            ("plait", partial(pc.plait_map, m)),
            ("lythonic", partial(peers.lythonic_map, m)),
        ]
        specs.append(("map", f"MapNode over {m:,}", m, "element", subjects))
    m = 100 if quick else 1_000
    sqlite: list[tuple[str, Setup]] = [
        ("plait", partial(pc.plait_map, m, sqlite=True)),
        ("commit floor", partial(peers.sqlite_commit_floor, m)),
    ]
    specs.append(("map_sqlite", f"MapNode over {m:,}, SQLite provenance", m, "element", sqlite))
    return specs


def _cache_specs(quick: bool) -> list[Spec]:
    calls = 100 if quick else CACHE_CALLS
    hits: list[tuple[str, Setup]] = [
        ("plait", partial(pc.plait_cache_hits, calls)),
        ("lythonic", partial(peers.lythonic_cache_hits, calls)),
        ("joblib", partial(peers.joblib_cache_hits, calls)),
        ("diskcache", partial(peers.diskcache_cache_hits, calls)),
        ("sqlite3 floor", partial(peers.sqlite_cache_hits, calls)),
    ]
    misses: list[tuple[str, Setup]] = [
        ("plait", partial(pc.plait_cache_misses, calls)),
        ("lythonic", partial(peers.lythonic_cache_misses, calls)),
        ("joblib", partial(peers.joblib_cache_misses, calls)),
        ("diskcache", partial(peers.diskcache_cache_misses, calls)),
        ("sqlite3 floor", partial(peers.sqlite_cache_misses, calls)),
    ]
    return [
        ("cache_hit", f"cache: {calls:,} hits", calls, "call", hits),
        ("cache_miss", f"cache: {calls:,} misses", calls, "call", misses),
    ]


def _engine_specs(quick: bool) -> list[Spec]:
    n = 100 if quick else 1_000
    thread: list[tuple[str, Setup]] = [
        ("plait", partial(pc.plait_chain, n, threaded=True)),
        ("to_thread floor", partial(pc.bare_to_thread, n)),
    ]
    specs: list[Spec] = [
        ("thread", f"chain of {n:,} sync nodes, thread executor", n, "node", thread)
    ]
    for n in [1_000, 10_000] if quick else [1_000, 10_000, 100_000]:
        subjects: list[tuple[str, Setup]] = [
            ("plait", partial(pc.plait_chain, n)),
            ("build floor", partial(pc.build_floor, n)),
        ]
        specs.append(("scale", f"scaling: chain of {n:,}", n, "node", subjects))
    return specs


# ---------------------------------------------------------------------------- measuring
async def _once(run: pc.Run, cap: float) -> tuple[float, float, bool]:
    """One repetition: (seconds, process CPU seconds, capped).

    A run that reports its own time is taken at its word.
    """
    gc.collect()
    c0, t0 = time.process_time(), time.perf_counter()
    with anyio.move_on_after(cap) as scope:
        inner = await run()
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    if scope.cancelled_caught:
        return elapsed, cpu, True
    return (inner if inner is not None else elapsed), cpu, False


async def measure_case(
    case: Case,
    *,
    reps: int = 5,
    cap: float = 60.0,
    slow: float = 3.0,
    skip: Sequence[str] = (),
) -> list[Measurement]:
    """Run every subject of ``case``: a warm-up round, then ``reps`` timed rounds.

    Rounds alternate the order of the subjects. A subject whose warm-up takes over ``slow``
    seconds keeps that one run as its only sample; one cut off after ``cap`` seconds, or
    named in ``skip`` (capped at a smaller size), is reported as capped.
    """
    results = {
        s.lib: Measurement(case.key, case.title, case.size, case.unit, s.lib) for s in case.subjects
    }
    runs: dict[str, pc.Run] = {}
    async with AsyncExitStack() as stack:
        for s in case.subjects:
            m = results[s.lib]
            if s.lib in skip:
                m.capped, m.note = True, f"capped at a smaller size (> {cap:.0f} s)"
                continue
            gc.collect()  # the previous case's garbage is not collected inside this build
            t0 = time.perf_counter()
            try:
                runs[s.lib] = await stack.enter_async_context(s.setup())
            except Exception as exc:  # a missing or broken peer is reported, not fatal
                m.error = f"{type(exc).__name__}: {exc}"[:300]
                continue
            m.build_s = time.perf_counter() - t0
        order = [s.lib for s in case.subjects if s.lib in runs]
        for rnd in range(reps + 1):
            for lib in order if rnd % 2 == 0 else reversed(order):
                m = results[lib]
                if m.capped or m.error or (rnd > 0 and m.first_s is not None and m.first_s > slow):
                    continue
                try:
                    seconds, cpu, capped = await _once(runs[lib], cap)
                except Exception as exc:
                    m.error = f"{type(exc).__name__}: {exc}"[:300]
                    continue
                if capped:
                    m.capped, m.note = True, f"cut off after {cap:.0f} s"
                    m.times = [seconds]
                elif rnd == 0:
                    m.first_s = seconds
                    if seconds > slow:
                        m.times, m.cpu_times, m.note = [seconds], [cpu], "one run (slow)"
                else:
                    m.times.append(seconds)
                    m.cpu_times.append(cpu)
    return [results[s.lib] for s in case.subjects]


async def run_cases(
    cases: Sequence[Case],
    *,
    reps: int = 5,
    cap: float = 60.0,
    progress: Callable[[Measurement], None] | None = None,
) -> list[Measurement]:
    out: list[Measurement] = []
    capped: dict[str, set[str]] = {}
    for case in cases:
        skip = capped.setdefault(case.key, set())
        for m in await measure_case(case, reps=reps, cap=cap, skip=sorted(skip)):
            if m.capped:
                skip.add(m.lib)
            out.append(m)
            if progress:
                progress(m)
    return out


# ---------------------------------------------------------------------------- reporting
def ratios(results: Sequence[Measurement]) -> dict[tuple[str, int, str], float | None]:
    """Peer median / plait median per (case, size, lib); a capped peer gives a lower bound."""
    plait = {(m.case, m.size): m for m in results if m.lib == "plait"}
    out: dict[tuple[str, int, str], float | None] = {}
    for m in results:
        base = plait.get((m.case, m.size))
        if m.lib == "plait" or base is None or not base.median_s or m.median_s is None:
            continue
        out[(m.case, m.size, m.lib)] = m.median_s / base.median_s
    return out


def _find(results: Sequence[Measurement], case: str, size: int, lib: str) -> Measurement | None:
    return next((m for m in results if (m.case, m.size, m.lib) == (case, size, lib)), None)


class Targets:
    """The targets evaluated on one run's results: each with its measured value, CPU time
    beside wall time where the bench has it, and met / NOT MET / not measured."""

    def __init__(self, results: Sequence[Measurement]) -> None:
        self.results = results
        self.ratios = ratios(results)
        self.rows: list[dict[str, Any]] = []

    def check(
        self,
        name: str,
        value: float | None,
        ok: Callable[[float], bool],
        fmt: str,
        cpu: float | None = None,
        mean: float | None = None,
        floor: float | None = None,
        also: str = "",
    ) -> None:
        met = None if value is None else ok(value)
        shown = "n/a" if value is None else fmt.format(value)
        if value is not None:
            extra = [
                f"{label} {fmt.format(v)}"
                for label, v in (("cpu", cpu), ("mean", mean), ("floor", floor))
                if v
            ] + ([also] if also else [])
            if extra:
                shown += f" ({', '.join(extra)})"
        self.rows.append(
            {"target": name, "value": value, "cpu": cpu, "mean": mean, "shown": shown, "met": met}
        )

    def size(self, case: str, default: int) -> int:
        """The size a case was measured at (the first one, when several were)."""
        return next((m.size for m in self.results if m.case == case), default)

    def get(self, case: str, size: int, lib: str = "plait") -> Measurement | None:
        return _find(self.results, case, size, lib)

    def per_unit(self, case: str, size: int, lib: str = "plait") -> tuple[float | None, ...]:
        """(wall, cpu, mean) us per unit, or Nones."""
        m = self.get(case, size, lib)
        return (m.per_unit_us, m.cpu_per_unit_us, m.mean_per_unit_us) if m else (None,) * 3

    def over_floor(self, case: str, floor_lib: str) -> tuple[float | None, float | None, int]:
        """(wall, cpu) of plait / ``floor_lib`` on ``case``, at the size measured."""
        size = self.size(case, 0)
        mine, floor = self.get(case, size), self.get(case, size, floor_lib)
        if not mine or not floor:
            return None, None, size
        wall = mine.median_s / floor.median_s if mine.median_s and floor.median_s else None
        a, b = mine.cpu_per_unit_us, floor.cpu_per_unit_us
        return wall, (a / b if a and b else None), size


def evaluate_targets(
    results: Sequence[Measurement], startup: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The issues' targets, each with the measured value and met / not met / not measured.

    ``startup`` holds the fresh-process figures of :mod:`startup_memory`, when measured."""
    t = Targets(results)
    _issue7_targets(t)
    _issue18_targets(t, startup or {})
    return t.rows


def _issue7_targets(t: Targets) -> None:
    def times(name: str, key: tuple[str, int, str], bound: float, fmt: str = "{:.1f}x") -> None:
        """plait at least ``bound`` times faster than a peer (strictly, for ``bound`` 1)."""
        t.check(name, t.ratios.get(key), lambda v: v > 1 if bound == 1 else v >= bound, fmt)

    times("chain 1,000: >= 15x faster than lythonic", ("chain", 1000, "lythonic"), 15)
    wall, cpu, _ = t.per_unit("chain", 1000)
    t.check("chain 1,000: <= 10 us per node", wall, lambda v: v <= 10, "{:.2f} us", cpu)
    times("chain 1,000: faster than Hamilton", ("chain", 1000, "hamilton"), 1, "{:.2f}x")
    times(
        "chain 1,000 + SQLite: >= 50x faster than lythonic", ("chain_sqlite", 1000, "lythonic"), 50
    )
    wall, cpu, mean = t.per_unit("chain_sqlite", 1000)
    t.check(
        "chain 1,000 + SQLite: <= 40 us per node", wall, lambda v: v <= 40, "{:.1f} us", cpu, mean
    )
    fan = t.get("fanout", FANOUT_WIDTH)
    t.check(
        "fan-out 50 x 10 ms: <= 30 ms wall",
        None if fan is None or fan.median_s is None else fan.median_s * 1e3,
        lambda v: v <= 30,
        "{:.1f} ms",
    )
    times("fan-out: >= 15x faster than lythonic", ("fanout", FANOUT_WIDTH, "lythonic"), 15)
    times("MapNode 10,000: >= 15x faster than lythonic", ("map", 10000, "lythonic"), 15)
    calls = t.size("cache_hit", CACHE_CALLS)
    times("cache hit: >= 5x faster than lythonic", ("cache_hit", calls, "lythonic"), 5)
    times("cache hit: faster than joblib.Memory", ("cache_hit", calls, "joblib"), 1)
    times(
        "cache hit: faster than diskcache memoize", ("cache_hit", calls, "diskcache"), 1, "{:.2f}x"
    )
    floor = t.ratios.get(("thread", t.size("thread", 1000), "to_thread floor"))
    t.check(
        "thread executor: within 1.5x of bare to_thread",
        None if not floor else 1 / floor,
        lambda v: v <= 1.5,
        "{:.2f}x the floor",
    )
    small, big = t.get("scale", 10_000), t.get("scale", 100_000)
    growth = [  # per-unit figures: times 10 nodes
        getattr(big, attr) * 10 / getattr(small, attr)
        if small and big and getattr(small, attr) and getattr(big, attr)
        else None
        for attr in ("per_unit_us", "cpu_per_unit_us")
    ]
    t.check(
        "chain 10k -> 100k run time: <= 12x", growth[0], lambda v: v <= 12, "{:.1f}x", growth[1]
    )


def _build_growth(a: Measurement | None, b: Measurement | None) -> float | None:
    return b.build_s / a.build_s if a and b and a.build_s and b.build_s else None


def _issue18_targets(t: Targets, got: dict[str, Any]) -> None:
    """Issue 18's table, in its order: paths against their floors, then fixed costs."""
    _issue18_paths(t)
    _issue18_fixed_costs(t, got)


def _issue18_paths(t: Targets) -> None:
    wall, cpu, n = t.over_floor("chain_sqlite", "commit floor")
    t.check(
        f"chain {n or 1000:,} with SQLite / commit floor: <= 1.5x",
        wall,
        lambda v: v <= 1.5,
        "{:.2f}x",
        cpu,
    )
    for case, bound in (("cache_hit", 1.3), ("cache_miss", 1.5)):
        wall, cpu, _ = t.over_floor(case, "sqlite3 floor")
        t.check(
            f"{case.replace('_', ' ')}: <= {bound}x the raw sqlite3 floor",
            wall,
            lambda v, bound=bound: v <= bound,
            "{:.2f}x",
            cpu,
        )
    big = t.get("scale", 100_000)
    t.check(
        "build (graph + plan) of a 100,000 chain: <= 3 us per node",
        None if big is None or big.build_s is None else big.build_s / big.size * 1e6,
        lambda v: v <= 3,
        "{:.2f} us",
    )
    t.check(
        "chain 10k -> 100k build time: <= 11x",
        _build_growth(t.get("scale", 10_000), big),
        lambda v: v <= 11,
        "{:.1f}x",
        floor=_build_growth(
            t.get("scale", 10_000, "build floor"), t.get("scale", 100_000, "build floor")
        ),
    )


def _issue18_fixed_costs(t: Targets, got: dict[str, Any]) -> None:
    t.check(
        f"peak RSS building and running a {got.get('chain_peak_n', 100_000):,} chain: <= 80 MB",
        got.get("chain_peak_rss_mb"),
        lambda v: v <= 80,
        "{:.0f} MB",
    )
    runs = t.size("durable_one", 100)
    wall, cpu, _ = t.per_unit("durable_one", runs)
    also = [
        f"{label} {us / 1e3:.3f} ms"
        for label, lib in (
            ("store opened per run", "plait, store per run"),
            ("floor", "3-commit floor"),
        )
        if (us := t.per_unit("durable_one", runs, lib)[0])
    ]
    t.check(
        "one-node durable run, runner held open: <= 0.15 ms",
        None if wall is None else wall / 1e3,
        lambda v: v <= 0.15,
        "{:.3f} ms",
        None if cpu is None else cpu / 1e3,
        also=", ".join(also),
    )
    m = t.size("map_sqlite", 1000)
    wall, cpu, mean = t.per_unit("map_sqlite", m)
    floor = t.per_unit("map_sqlite", m, "commit floor")[0]
    t.check(
        f"map of {m:,} with SQLite, per element: <= 40 us",
        wall,
        lambda v: v <= 40,
        "{:.1f} us",
        cpu,
        mean,
        floor,
    )
    t.check(
        "python -X importtime -c 'import plait': <= 100 ms",
        got.get("import_ms"),
        lambda v: v <= 100,
        "{:.0f} ms",
    )
    t.check(
        "plait --version wall time: <= 0.15 s",
        got.get("version_wall_s"),
        lambda v: v <= 0.15,
        "{:.3f} s",
    )


def _fmt(v: float | None, spec: str) -> str:
    return "" if v is None else format(v, spec)


def rows(results: Sequence[Measurement]) -> list[list[str]]:
    r = ratios(results)
    out = []
    for m in results:
        ratio = r.get((m.case, m.size, m.lib))
        shown = "" if ratio is None else f"{'>= ' if m.capped else ''}{ratio:.2f}"
        status = m.error or m.note
        if m.capped and not m.note:
            status = "capped"
        out.append(
            [
                m.title,
                m.lib,
                _fmt(m.build_s, ".4f"),
                _fmt(m.median_s, ".4f"),
                _fmt(m.per_unit_us, ".2f"),
                _fmt(m.mean_per_unit_us, ".2f"),
                _fmt(m.cpu_per_unit_us, ".2f"),
                shown,
                str(len(m.times)),
                status,
            ]
        )
    return out


HEADER = [
    "case",
    "lib",
    "build s",
    "median s",
    "us / unit",
    "mean us/unit",
    "cpu us/unit",
    "peer/plait",
    "reps",
    "note",
]


def print_report(results: Sequence[Measurement], targets: Sequence[dict[str, Any]]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # plain text
        for row in [HEADER, *rows(results)]:
            print(" | ".join(row))
        for t in targets:
            print(f"{t['target']}: {t['shown']} -> {_met(t['met'])}")
        return
    table = Table(title="plait vs peers (median of repeats)")
    for i, h in enumerate(HEADER):
        table.add_column(h, justify="right" if 2 <= i <= 8 else "left", no_wrap=h == "lib")
    previous = None
    for m, row in zip(results, rows(results), strict=True):
        if (m.case, m.size) == previous:
            row[0] = ""
        elif previous is not None:
            table.add_section()
        previous = (m.case, m.size)
        table.add_row(*row)
    console = Console(width=max(Console().width, 160))
    console.print(table)
    tt = Table(title="targets (issues 7 and 18)")
    for h in ("target", "measured", "status"):
        tt.add_column(h)
    for t in targets:
        tt.add_row(t["target"], t["shown"], _met(t["met"]))
    console.print(tt)


def markdown(results: Sequence[Measurement], targets: Sequence[dict[str, Any]]) -> str:
    """The results and the targets as the Markdown tables of ``bench/README.md``."""
    lines = ["| " + " | ".join(HEADER) + " |", "|---|---|" + "---:|" * 7 + "---|"]
    previous = None
    for m, row in zip(results, rows(results), strict=True):
        if (m.case, m.size) == previous:
            row[0] = ""
        previous = (m.case, m.size)
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "| target | measured | status |", "|---|---|---|"]
    for t in targets:
        status = _met(t["met"])
        lines.append(
            f"| {t['target']} | {t['shown']} | {status if t['met'] else f'**{status}**'} |"
        )
    return "\n".join(lines) + "\n"


def _met(met: bool | None) -> str:
    return "not measured" if met is None else ("met" if met else "NOT MET")


def environment(argv: Sequence[str]) -> dict[str, Any]:
    versions = {}
    for dist in (
        "plait",
        "plait-provenance-sqlite",
        "plait-cache-sqlite",
        "anyio",
        "lythonic",
        "apache-hamilton",
        "joblib",
        "diskcache",
    ):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
        "versions": versions,
        "argv": list(argv),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def run_peer_drivers(
    cases: Sequence[Case],
    *,
    reps: int,
    cap: float,
    pythons: dict[str, str],
    errors: dict[str, str],
    progress: Callable[[Measurement], None],
) -> tuple[list[Measurement], dict[str, Any]]:
    """Every peer driver on the cases it runs, each in its own virtualenv's Python."""
    wanted = [{"key": c.key, "title": c.title, "size": c.size, "unit": c.unit} for c in cases]
    out: list[Measurement] = []
    environments: dict[str, Any] = {}
    for driver in peer_drivers.DRIVERS:
        found, environment = peer_drivers.run_driver(
            driver,
            wanted,
            python=pythons.get(driver.env),
            install_error=errors.get(driver.env),
            reps=reps,
            cap=cap,
        )
        if environment:
            environments[driver.env] = environment
        for item in found:
            m = Measurement(item["key"], item["title"], item["size"], item["unit"], item["lib"])
            for name in ("build_s", "first_s", "times", "cpu_times", "capped", "error", "note"):
                if item.get(name) is not None:
                    setattr(m, name, item[name])
            progress(m)
            out.append(m)
    return out, environments


def merge(results: Sequence[Measurement], extra: Sequence[Measurement]) -> list[Measurement]:
    """``results`` with each of ``extra`` placed after the last row of its (case, size)."""
    out = list(results)
    for m in extra:
        last = max(
            (i for i, r in enumerate(out) if (r.case, r.size) == (m.case, m.size)), default=None
        )
        out.insert(len(out) if last is None else last + 1, m)
    return out


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes, 3 repetitions")
    ap.add_argument(
        "--only", default="", help=f"comma list of cases: {', '.join(CASE_KEYS + EXTRA_KEYS)}"
    )
    ap.add_argument("--reps", type=int, default=None, help="timed repetitions (default 5)")
    ap.add_argument("--cap", type=float, default=60.0, help="seconds before a run is cut off")
    ap.add_argument("--output", type=Path, default=RESULTS, help="JSON results file")
    ap.add_argument(
        "--markdown", action="store_true", help="also print the tables as Markdown (README)"
    )
    ap.add_argument(
        "--peer-python",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="the Python of a peer's virtualenv (dbos, prefect); nox -s bench passes them",
    )
    ap.add_argument(
        "--peer-error",
        action="append",
        default=[],
        metavar="NAME=REASON",
        help="a peer whose virtualenv could not be made: reported in the table",
    )
    ap.add_argument("--no-peers", action="store_true", help="leave out DBOS and Prefect")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    ap = parser()
    args = ap.parse_args(argv)
    only = [k for k in args.only.split(",") if k]
    unknown = sorted(set(only) - set(CASE_KEYS + EXTRA_KEYS))
    if unknown:
        known = ", ".join(CASE_KEYS + EXTRA_KEYS)
        ap.error(f"unknown case(s) {', '.join(unknown)}; known: {known}")
    reps = args.reps or (3 if args.quick else 5)
    env = environment(sys.argv[1:] if argv is None else argv)
    cases = build_cases(args.quick, only)

    def progress(m: Measurement) -> None:
        med = "capped" if m.capped else (m.error or _fmt(m.median_s, ".4f") + " s")
        print(f"  {m.title:<45} {m.lib:<22} {med}", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    results = anyio.run(
        partial(run_cases, cases, reps=reps, cap=args.cap, progress=progress), backend="asyncio"
    )
    if not args.no_peers:
        peer_results, env["peers"] = run_peer_drivers(
            cases,
            reps=reps,
            cap=args.cap,
            pythons=peer_drivers.parse_pairs(args.peer_python, "--peer-python"),
            errors=peer_drivers.parse_pairs(args.peer_error, "--peer-error"),
            progress=progress,
        )
        results = merge(results, peer_results)
    startup = None
    if not only or "startup" in only:
        startup = startup_memory.measure(args.quick)
        print(f"  startup and memory: {startup}", file=sys.stderr, flush=True)
    env["duration_s"] = time.perf_counter() - t0
    env["loadavg_end"] = os.getloadavg()
    targets = evaluate_targets(results, startup)
    print_report(results, targets)
    if args.markdown:
        print(markdown(results, targets))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "environment": env,
        "results": [m.to_json() for m in results],
        "startup": startup,
        "ratios": [
            {"case": c, "size": s, "lib": lib, "peer_over_plait": v}
            for (c, s, lib), v in ratios(results).items()
        ],
        "targets": targets,
    }
    args.output.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"results written to {args.output}", file=sys.stderr)
    return 1 if any(m.error for m in results if m.lib == "plait") else 0


if __name__ == "__main__":
    sys.exit(main())
