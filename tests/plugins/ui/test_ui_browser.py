"""The UI in a real Chromium (Debian's ``chromium``, driven by Playwright).

Skipped, saying why, when ``/usr/bin/chromium`` or the ``playwright`` package is missing
(``.ci/run`` installs the browser). Playwright never downloads a browser here: it launches
the system one by path. Set ``PLAIT_UI_SCREENSHOTS=docs/plugins/ui`` to refresh the
screenshots of the docs page; otherwise they go to a temporary directory.
"""

from __future__ import annotations

import os
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import _ui_support as support
import anyio
import pytest

from plait import Dag, DagRunner
from plait.engine import Engine
from plait.records import RunStatus
from plait.triggers import FireClaim, FireOutcome, Trigger, TriggerDefinition
from plait_provenance_sqlite import SqliteProvenance
from plait_provenance_sqlite.triggers import SqliteTriggerStore
from plait_ui import Actions, UiConfig, create_app
from plait_ui.server import free_port, serve_async

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="browser tests need Debian's chromium at /usr/bin/chromium "
        "(apt-get install -y chromium)",
    ),
    pytest.mark.xdist_group("ui-browser"),
]

RED = "rgb(214, 58, 58)"
BLUE = "rgb(47, 111, 223)"
GREEN = "rgb(47, 158, 91)"


def off_thread(fn: Any, *args: Any) -> Any:
    """``anyio.run(fn, *args)`` on a fresh thread (Playwright's loop owns this one)."""
    out: list[Any] = []
    worker = threading.Thread(
        target=lambda: out.append(anyio.run(fn, *args, backend=support.BACKEND))
    )
    worker.start()
    worker.join()
    return out[0]


class Server:
    """The UI app served by Hypercorn on a thread with its own event loop."""

    def __init__(self, path: Path, **options: Any) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._stop = threading.Event()
        config = UiConfig(
            provenance=SqliteProvenance(path),
            triggers=SqliteTriggerStore(path),
            store_name=path.name,
            poll_ms=200,
            **options,
        )
        app = create_app(config)
        self._thread = threading.Thread(target=self._serve, args=(app,), daemon=True)

    def _serve(self, app: Any) -> None:
        async def stopped() -> None:
            await anyio.to_thread.run_sync(self._stop.wait, abandon_on_cancel=True)

        async def main() -> None:
            await serve_async(
                app,
                host="127.0.0.1",
                port=self.port,
                loop=support.BACKEND,
                shutdown_trigger=stopped,
            )

        anyio.run(main, backend=support.BACKEND)

    def __enter__(self) -> Server:
        self._thread.start()
        deadline = time.monotonic() + 10
        while True:
            try:
                with urllib.request.urlopen(self.url + "/static/ui.css", timeout=1):
                    return self
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


class Gates:
    """A run whose nodes each wait for a gate this test opens: a run in progress."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.gates = {"one": threading.Event(), "two": threading.Event()}
        self.run_id: str | None = None
        self.status: RunStatus | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def dag(self) -> Dag:
        gates = self.gates

        async def first_gate() -> int:
            await anyio.to_thread.run_sync(gates["one"].wait, abandon_on_cancel=True)
            return 1

        async def second_gate(first_gate: int) -> int:
            await anyio.to_thread.run_sync(gates["two"].wait, abandon_on_cancel=True)
            return first_gate + 1

        with Dag("gates") as dag:
            dag.node(first_gate) >> dag.node(second_gate)
        return dag

    def _run(self) -> None:
        async def main() -> None:
            result = await DagRunner(self.dag(), provenance=SqliteProvenance(self.path)).run()
            self.status = result.status

        anyio.run(main, backend=support.BACKEND)

    def start(self) -> str:
        self._thread.start()
        deadline = time.monotonic() + 10

        async def running() -> str | None:
            async with SqliteProvenance(self.path) as prov:
                found = await prov.list_runs(dag_nsref="gates", status="running")
            return found[0].run_id if found else None

        while self.run_id is None:
            assert time.monotonic() < deadline, "the gated run never showed up"
            self.run_id = off_thread(running)
            time.sleep(0.02)
        return self.run_id

    def open(self, name: str) -> None:
        self.gates[name].set()

    def join(self) -> None:
        self._thread.join(10)


class EngineThread:
    """``plait engine`` in miniature: an :class:`Engine` serving on a thread of its own."""

    def __init__(self, path: Path, triggers: list[Trigger]) -> None:
        self.engine = Engine(
            triggers,
            store=SqliteTriggerStore(path),
            provenance=SqliteProvenance(path),
            poll_interval=0.1,
        )
        self._stop = threading.Event()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        async def main() -> None:
            async with self.engine:
                self._started.set()
                await anyio.to_thread.run_sync(self._stop.wait, abandon_on_cancel=True)

        anyio.run(main, backend=support.BACKEND)

    def __enter__(self) -> EngineThread:
        self._thread.start()
        assert self._started.wait(10), "the engine never started"
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(20)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    tab = context.new_page()
    yield tab
    context.close()


@pytest.fixture(scope="module")
def server(filled: support.Filled) -> Iterator[Server]:
    # `filled` comes first: it runs the event loop on this thread before Playwright starts
    with Server(filled.path) as serving:
        yield serving


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get("PLAIT_UI_SCREENSHOTS")
    directory = Path(chosen) if chosen else tmp_path_factory.mktemp("shots")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def fill_of(locator: Any) -> str:
    return str(locator.evaluate("el => getComputedStyle(el).fill"))


def test_failed_run_shows_its_node_red_and_the_traceback(
    server: Server, filled: support.Filled, page: Any, shots: Path
) -> None:
    page.goto(server.url + "/")
    rows = page.locator("table.runs tbody tr")
    assert rows.count() == 3
    page.screenshot(path=shots / "runs.png")
    page.locator("tr.st-failed a.run-link").click()
    page.wait_for_url(f"**/runs/{filled.ids['shop_failed']}")
    failed = page.locator('svg.dag a.node[data-label="prices"] rect').first
    assert fill_of(failed) == RED
    assert fill_of(page.locator('svg.dag a.node[data-label="order_ids"] rect').first) == GREEN
    page.get_by_text("Traceback", exact=True).click()
    traceback = page.locator("pre.traceback")
    assert traceback.is_visible()
    assert "ValueError: order 3 has no price <b>bold</b>" in traceback.inner_text()
    page.screenshot(path=shots / "run-failed.png", full_page=True)


def test_a_map_node_opens_into_its_failed_element(
    server: Server, filled: support.Filled, page: Any, shots: Path
) -> None:
    page.goto(f"{server.url}/runs/{filled.ids['shop_failed']}")
    page.locator('svg.dag a.node[data-label="prices"]').click()
    page.wait_for_url("**/nodes/prices")
    elements = page.locator("a.element-link")
    assert elements.count() == 4
    page.screenshot(path=shots / "map-node.png", full_page=True)
    page.get_by_role("link", name="prices[3]").click()
    page.wait_for_selector("a.parent-link")
    assert fill_of(page.locator('svg.dag a.node[data-label="price"] rect').first) == RED
    assert "order 3 has no price <b>bold</b>" in page.locator("p.error-message").inner_text()


def test_script_in_an_output_is_text_in_the_browser(
    server: Server, filled: support.Filled, page: Any
) -> None:
    page.goto(f"{server.url}/runs/{filled.ids['script']}/nodes/shout")
    output = page.locator("pre.value.output").inner_text()
    assert "<SCRIPT>DOCUMENT.TITLE = 'PWNED'; WINDOW.PWNED = 1</SCRIPT>!" in output
    assert page.evaluate("typeof window.pwned") == "undefined"
    assert "pwned" not in page.title()
    page.goto(f"{server.url}/runs/{filled.ids['script']}/nodes/greeting")
    assert "<script>" in page.locator("pre.value.inputs").inner_text()
    assert page.evaluate("typeof window.pwned") == "undefined"


def test_a_running_run_changes_status_live(page: Any, tmp_path: Path, shots: Path) -> None:
    path = tmp_path / "live.sqlite3"
    gates = Gates(path)
    with Server(path) as live:
        run_id = gates.start()
        try:
            page.goto(f"{live.url}/runs/{run_id}")
            page.evaluate("window.sameDocument = true")
            first = 'svg.dag a.node[data-label="first_gate"]'
            assert page.locator(first).get_attribute("data-status") == "running"
            assert fill_of(page.locator(first + " rect").first) == BLUE
            assert page.locator("#run-status .badge").inner_text() == "running"
            gates.open("one")
            second = page.locator('svg.dag a.node[data-label="second_gate"][data-status="running"]')
            second.wait_for(timeout=5000)
            assert page.locator(first).get_attribute("data-status") == "completed"
            assert page.evaluate("window.sameDocument") is True  # updated in place
            page.screenshot(path=shots / "run-live.png", full_page=True)
            gates.open("two")
            page.locator("#run-status .badge.st-completed").wait_for(timeout=5000)
            page.locator(
                'svg.dag a.node[data-label="second_gate"][data-status="completed"]'
            ).wait_for()
        finally:
            gates.open("one")
            gates.open("two")
            gates.join()
    assert gates.status is RunStatus.COMPLETED


def test_a_thousand_node_run_draws_and_stays_responsive(
    page: Any, tmp_path: Path, shots: Path
) -> None:
    path = tmp_path / "big.sqlite3"

    async def big_run() -> str:
        dag = support.lattice(100, 10)
        return (await DagRunner(dag, provenance=SqliteProvenance(path)).run()).run_id

    run_id = off_thread(big_run)
    with Server(path) as serving:
        page.goto(f"{serving.url}/runs/{run_id}")
        nodes = page.locator("svg.dag a.node")
        assert nodes.count() == 1000
        assert page.locator("svg.dag path.wire").count() == 1800
        page.screenshot(path=shots / "run-1000.png")
        # the page answers at once: hovering lights the node's edges through the script
        page.hover('svg.dag a.node[data-label="mix_5_50"]')
        assert page.locator("svg.dag path.wire.lit").count() == 4
        took = page.evaluate("performance.getEntriesByType('navigation')[0].duration")
        assert took > 0


def test_the_demo_run_is_a_picture_a_person_can_read(
    page: Any, tmp_path: Path, shots: Path
) -> None:
    pytest.importorskip("plait_executors")
    pytest.importorskip("plait_cache_sqlite")  # the demo's @cached steps need a cache
    from plait.cache import close_backends
    from plait.demo import build_pipeline, demo_inputs

    path = tmp_path / "demo.sqlite3"

    async def demo() -> str:
        runner = DagRunner(build_pipeline(), provenance=SqliteProvenance(path))
        return (await runner.run(demo_inputs())).run_id

    try:
        run_id = off_thread(demo)
    finally:
        close_backends()  # the demo's @cached callables opened the default cache file
    with Server(path) as serving:
        page.goto(f"{serving.url}/runs/{run_id}")
        labels = page.locator("svg.dag a.node").evaluate_all("els => els.map(e => e.dataset.label)")
        assert {"fetch_orders", "normalise", "enrich", "score_orders", "revenue", "report"} <= set(
            labels
        )
        assert page.locator("svg.dag path.wire").count() >= 5
        assert page.locator("svg.dag a.node.kind-map rect.inner").count() == 1
        page.screenshot(path=shots / "demo.png", full_page=True)


BERLIN_SIX = Trigger.schedule(
    "nightly-report",
    support.greet,
    "0 6 * * *",
    timezone="Europe/Berlin",
    inputs={"greeting": {"name": "night"}},
)
BY_HAND = Trigger.manual("say-hello", support.greet, inputs={"greeting": {"name": "Ada"}})


async def trigger_history(path: Path) -> None:
    """Store-only triggers beside the engine's, and past fires of the schedule, each with
    the real run it started (what a few nights of ``plait engine`` leave behind)."""
    await support.define(
        path,
        support.definition(BERLIN_SIX),
        support.definition(BY_HAND),
        TriggerDefinition(
            name="inbox-poll",
            kind="poll",
            definition={"dag": "greet", "check": "mail:new_messages", "interval": 300},
        ),
        support.definition(Trigger.manual("old-backfill", "greet", active=False)),
    )
    now = datetime.now(UTC)
    async with SqliteTriggerStore(path) as store:
        await store.set_next_fire("inbox-poll", now + timedelta(minutes=4))
        berlin = ZoneInfo("Europe/Berlin")
        for days in (3, 2, 1):
            day = (now - timedelta(days=days)).astimezone(berlin).date()
            at = datetime.combine(day, clock_time(6), tzinfo=berlin).astimezone(UTC)
            fire = await store.claim_fire(
                FireClaim(
                    fire_id=f"night{days}",
                    trigger="nightly-report",
                    fired_at=at,
                    engine_id="earlier",
                    max_active_runs=1,
                    overlap="skip",
                    scheduled_for=at,
                )
            )
            assert fire is not None
            run = await DagRunner(support.greet, provenance=SqliteProvenance(path)).run(
                {"greeting": {"name": "night"}}
            )
            await store.update_fire(
                fire.fire_id, at, outcome=FireOutcome.COMPLETED, run_id=run.run_id
            )


def test_fire_a_trigger_and_open_its_run(page: Any, tmp_path: Path, shots: Path) -> None:
    path = tmp_path / "triggers.sqlite3"
    off_thread(trigger_history, path)
    actions = Actions({}, lambda dag: DagRunner(dag), token="browser-token")
    with (
        EngineThread(path, [BERLIN_SIX, BY_HAND]),
        Server(path, allow_actions=True, actions=actions) as serving,
    ):
        page.goto(serving.url + "/")
        page.get_by_role("link", name="Triggers").click()
        page.wait_for_url("**/triggers")
        row = page.locator('tr[data-trigger="nightly-report"]')
        first = row.locator("time.next-fire").first
        shown = datetime.fromisoformat(first.get_attribute("datetime"))
        in_berlin = shown.astimezone(ZoneInfo("Europe/Berlin"))
        assert (in_berlin.hour, in_berlin.minute) == (6, 0)
        assert shown > datetime.now(UTC) and shown - datetime.now(UTC) <= timedelta(days=1)
        assert first.inner_text() == shown.strftime("%Y-%m-%d %H:%M:%S")
        assert row.locator("td.last-fire .badge").inner_text() == "completed"
        assert page.locator('tr[data-trigger="old-backfill"] .badge').inner_text() == "paused"
        assert page.locator("p.no-engine").count() == 0  # the engine is alive
        page.screenshot(path=shots / "triggers.png", full_page=True)

        page.locator('tr[data-trigger="say-hello"] button.fire').click()
        page.wait_for_url("**/runs/*")
        run_id = page.url.rsplit("/", 1)[1]
        page.locator("#run-status .badge.st-completed").wait_for(timeout=10_000)
        assert (
            page.locator('svg.dag a.node[data-label="shout"]').get_attribute("data-status")
            == "completed"
        )

        page.goto(serving.url + "/triggers")
        fired = page.locator('tr[data-trigger="say-hello"] td.last-fire')
        assert fired.locator("a.fire-run").get_attribute("href") == f"/runs/{run_id}"


def test_script_in_a_trigger_is_text_in_the_browser(page: Any, tmp_path: Path) -> None:
    path = tmp_path / "xss.sqlite3"
    evil = TriggerDefinition(name=support.SCRIPT, kind="manual", definition={"dag": support.SCRIPT})
    off_thread(support.define, path, evil)
    with Server(path) as serving:
        page.goto(serving.url + "/triggers")
        link = page.locator("a.trigger-link")
        assert link.inner_text() == support.SCRIPT
        link.click()
        page.wait_for_selector("span.trigger-name")
        assert page.locator("span.trigger-name").inner_text() == support.SCRIPT
        assert page.evaluate("typeof window.pwned") == "undefined"
        assert page.title() == f"Trigger {support.SCRIPT} · plait"  # the text, not run
