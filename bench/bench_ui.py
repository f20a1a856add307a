"""Server-side time of plait-ui's pages on a large store (issue 17: under 300 ms each).

Builds a SQLite provenance store of ``--runs`` runs (default 100,000, written through the
store's own batched write API, statuses and DAGs mixed, spread over 30 days) plus one real
1,000-node run (a 100 x 10 lattice executed by ``DagRunner``), then times requests through
an ASGI client (no network): the runs page, a filtered page, a page 20 pages deep, the
1,000-node run page, its body fragment (what live updates fetch) and a node page with a
1,000-node lineage. The same file holds ``--triggers`` triggers (default 1,000: schedules,
polls and manual ones) with ``--fires`` fires among them (default 10,000), for the triggers
page (first and eleventh page of 50), a trigger's page and a fire's page. Prints the best
and the median of ``--reps`` requests each.

Run: python bench/bench_ui.py [--runs 100000] [--triggers 1000] [--fires 10000] [--reps 7]
[--store PATH]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import httpx

from plait import Dag, DagRunner, inline
from plait.records import RunRecord, RunStatus
from plait.triggers import FireClaim, FireOutcome, TriggerDefinition
from plait_provenance_sqlite import SqliteProvenance
from plait_provenance_sqlite.triggers import SqliteTriggerStore
from plait_ui import UiConfig, create_app

TARGET_MS = 300.0
DAGS = ("daily_report", "ingest", "train", "score", "export")
BATCH = 5_000


@inline
def seed() -> int:
    return 1


@inline
def mix(a: int, b: int) -> int:
    return a + b


def lattice(width: int = 100, depth: int = 10) -> Dag:
    with Dag(f"lattice_{width}x{depth}") as dag:
        above = [dag.node(seed, label=f"seed_{i}") for i in range(width)]
        for layer in range(1, depth):
            above = [
                dag.node(mix, label=f"mix_{layer}_{i}").bind(a=above[i], b=above[(i + 1) % width])
                for i in range(width)
            ]
    return dag


def synthetic_run(i: int, start: datetime) -> RunRecord:
    at = start + timedelta(seconds=26 * i)
    failed = i % 10 == 3
    return RunRecord(
        run_id=f"{i:08d}{'0' * 24}",
        dag_nsref=DAGS[i % len(DAGS)],
        status=RunStatus.FAILED if failed else RunStatus.COMPLETED,
        started_at=at,
        updated_at=at + timedelta(seconds=2),
        finished_at=at + timedelta(seconds=2),
        source_inputs={"fetch": {"day": at.date().isoformat()}},
        failed_node="fetch" if failed else None,
        error_type="builtins.TimeoutError" if failed else None,
        error_message="upstream took too long" if failed else None,
    )


async def build(path: Path, runs: int) -> str:
    start = datetime.now(UTC) - timedelta(days=30)
    async with SqliteProvenance(path) as prov:
        have = len(await prov.list_runs(limit=runs))
        if have < runs:
            for first in range(have, runs, BATCH):
                for i in range(first, min(first + BATCH, runs)):
                    prov.write_run(synthetic_run(i, start))
                await prov.commit()
        big = await prov.list_runs(dag_nsref="lattice_100x10", limit=1)
    if big:
        return big[0].run_id
    result = await DagRunner(lattice(), provenance=SqliteProvenance(path)).run()
    return result.run_id


def trigger_definition(i: int) -> TriggerDefinition:
    dag = DAGS[i % len(DAGS)]
    if i % 3 == 0:
        data = {"dag": dag, "cron": f"{i % 60} {i % 24} * * *", "timezone": "Europe/Berlin"}
        return TriggerDefinition(name=f"t{i:05d}", kind="schedule", definition=data)
    if i % 3 == 1:
        data = {"dag": dag, "check": "feeds:new_items", "interval": 60 + i}
        return TriggerDefinition(name=f"t{i:05d}", kind="poll", definition=data)
    return TriggerDefinition(name=f"t{i:05d}", kind="manual", definition={"dag": dag})


async def build_triggers(path: Path, triggers: int, fires: int) -> None:
    """``triggers`` triggers and ``fires`` fires spread over them, each fire ended."""
    start = datetime.now(UTC) - timedelta(days=30)
    async with SqliteTriggerStore(path) as store:
        if len(await store.list_triggers()) >= triggers:
            return
        await store.define_triggers([trigger_definition(i) for i in range(triggers)], start)
        for n in range(fires):
            at = start + timedelta(minutes=4 * n)
            fire = await store.claim_fire(
                FireClaim(
                    fire_id=f"fire{n:07d}",
                    trigger=f"t{n % triggers:05d}",
                    fired_at=at,
                    engine_id="bench",
                    max_active_runs=1,
                    overlap="skip",
                    scheduled_for=at,
                )
            )
            assert fire is not None
            outcome = FireOutcome.FAILED if n % 10 == 3 else FireOutcome.COMPLETED
            await store.update_fire(fire.fire_id, at, outcome=outcome, run_id=f"{n:032d}")


async def timed(http: httpx.AsyncClient, url: str, reps: int) -> tuple[float, float, int]:
    times = []
    size = 0
    for _ in range(reps):
        t0 = time.perf_counter()
        answer = await http.get(url)
        times.append((time.perf_counter() - t0) * 1000)
        if answer.status_code != 200:
            raise SystemExit(f"{url}: HTTP {answer.status_code}")
        size = len(answer.content)
    return min(times), statistics.median(times), size


async def deep_url(http: httpx.AsyncClient, pages: int) -> str:
    url = "/"
    for _ in range(pages):
        text = (await http.get(url)).text
        found = re.search(r'class="older" href="([^"]+)"', text)
        if found is None:
            break
        url = found.group(1).replace("&amp;", "&")
    return url


async def measure(
    path: Path, big: str, reps: int, triggers: int
) -> list[tuple[str, float, float, int]]:
    prov = SqliteProvenance(path)
    app = create_app(UiConfig(provenance=prov, triggers=SqliteTriggerStore(path)))
    transport = httpx.ASGITransport(app=app)
    rows = []
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        pages = {
            "runs page (newest 50)": "/",
            "runs page, status=failed": "/?status=failed",
            "runs page, dag=ingest": "/?dag=ingest",
            "runs page 21 (keyset)": await deep_url(http, 20),
            "1,000-node run page": f"/runs/{big}",
            "1,000-node run body (live)": f"/runs/{big}/body",
            "node page, 990-node lineage": f"/runs/{big}/nodes/mix_9_0",
        }
        if triggers:
            pages["triggers page (first 50)"] = "/triggers"
            pages["triggers page 11 (by name)"] = f"/triggers?after=t{min(499, triggers - 1):05d}"
            pages["trigger page (its fires)"] = "/triggers/t00000"
            pages["fire page"] = "/triggers/t00000/fires/fire0000000"
        for name, url in pages.items():
            rows.append((name, *await timed(http, url, reps)))
    await prov.aclose()
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--triggers", type=int, default=1_000)
    ap.add_argument("--fires", type=int, default=10_000)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--store", type=Path, default=None, help="keep (and reuse) the store here")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.store or Path(tmp) / "bench-ui.sqlite3"
        t0 = time.perf_counter()
        big = anyio.run(build, path, args.runs)
        if args.triggers:
            anyio.run(build_triggers, path, args.triggers, args.fires)
        print(
            f"store: {args.runs:,} runs + one 1,000-node run, {args.triggers:,} triggers with "
            f"{args.fires:,} fires ({time.perf_counter() - t0:.1f} s)"
        )
        rows = anyio.run(measure, path, big, args.reps, args.triggers)
    print(f"{'page':32} {'best ms':>8} {'median ms':>10} {'KiB':>7}  target {TARGET_MS:.0f} ms")
    missed = 0
    for name, best, median, size in rows:
        ok = median < TARGET_MS
        missed += not ok
        print(f"{name:32} {best:8.1f} {median:10.1f} {size / 1024:7.0f}  {'ok' if ok else 'SLOW'}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
