"""The UI's pages through an ASGI client, over stores filled by real runs (SPEC 14)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import _ui_support as support
import anyio
import attrs
import httpx
import pytest

from plait import Dag, DagRunner, inline
from plait.records import RunRecord, RunStatus
from plait_provenance_sqlite import SqliteProvenance
from plait_ui import Actions, UiConfig

pytestmark = pytest.mark.anyio


def run_ids_in(html: str) -> list[str]:
    return re.findall(r'href="/runs/([0-9a-f]{32})"', html)


async def test_runs_page_lists_runs_newest_first_with_filters(
    client: httpx.AsyncClient, filled: support.Filled
) -> None:
    page = await client.get("/")
    assert page.status_code == 200
    ids = filled.ids
    assert run_ids_in(page.text) == [ids["script"], ids["shop_failed"], ids["shop_ok"]]
    assert "text/html" in page.headers["content-type"]
    assert "script-src 'self'" in page.headers["content-security-policy"]

    failed = await client.get("/", params={"status": "failed"})
    assert run_ids_in(failed.text) == [ids["shop_failed"]]
    assert "<b>prices</b>" in failed.text  # the failed node, named in the list
    by_dag = await client.get("/", params={"dag": "greet"})
    assert run_ids_in(by_dag.text) == [ids["script"]]
    later = await client.get("/", params={"after": "2999-01-01"})
    assert run_ids_in(later.text) == [] and "No runs match" in later.text
    with_subs = await client.get("/", params={"sub_runs": "1"})
    async with SqliteProvenance(filled.path) as prov:
        everything = [r.run_id for r in await prov.list_runs()]
    assert len(everything) > 6  # the map's element sub-runs too
    assert run_ids_in(with_subs.text) == everything


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"status": "done"}, "status=&#39;done&#39; is not a run status"),
        ({"after": "yesterday"}, "after=&#39;yesterday&#39; is not a date or date-time"),
        ({"cursor": "nonsense"}, "cursor &#39;nonsense&#39; is not a position"),
    ],
)
async def test_bad_query_parameters_say_which(
    client: httpx.AsyncClient, query: dict[str, str], message: str
) -> None:
    page = await client.get("/", params=query)
    assert page.status_code == 400
    assert message in page.text
    assert "Traceback" not in page.text


async def test_keyset_paging_visits_every_run_once_even_within_one_microsecond(
    tmp_path: Path,
) -> None:
    """Ten runs share one start time, five more do not: pages of three see each once."""
    prov = SqliteProvenance(tmp_path / "many.sqlite3")
    same = datetime(2026, 5, 1, 12, tzinfo=UTC)
    async with prov:
        for i in range(15):
            at = same if i < 10 else same.replace(minute=i)
            prov.write_run(
                RunRecord(
                    run_id=f"{i:032x}",
                    dag_nsref="many",
                    status=RunStatus.COMPLETED,
                    started_at=at,
                    updated_at=at,
                    finished_at=at,
                )
            )
        await prov.commit()
        expected = [r.run_id for r in await prov.list_runs()]
    seen: list[str] = []
    config = UiConfig(provenance=SqliteProvenance(prov.path), page_size=3)
    async with support.app_client(config) as http:
        url = "/"
        while True:
            page = await http.get(url)
            assert page.status_code == 200
            found = run_ids_in(page.text)
            assert 0 < len(found) <= 3
            seen.extend(found)
            older = re.search(r'class="older" href="([^"]+)"', page.text)
            if older is None:
                break
            url = older.group(1).replace("&amp;", "&")
    assert seen == expected and len(set(seen)) == 15


async def test_paging_skips_crowds_of_sub_runs(tmp_path: Path) -> None:
    """Three top-level runs with 700 sub-runs started between them, pages of two."""
    prov = SqliteProvenance(tmp_path / "crowded.sqlite3")
    start = datetime(2026, 5, 1, tzinfo=UTC)
    async with prov:
        for i in range(703):
            at = start + timedelta(seconds=i)
            top = i in (0, 350, 702)
            prov.write_run(
                RunRecord(
                    run_id=f"{i:032x}",
                    dag_nsref="outer" if top else "outer/m[0]",
                    status=RunStatus.COMPLETED,
                    started_at=at,
                    updated_at=at,
                    parent_run_id=None if top else f"{0:032x}",
                )
            )
        await prov.commit()
    config = UiConfig(provenance=SqliteProvenance(prov.path), page_size=2)
    async with support.app_client(config) as http:
        first = (await http.get("/")).text
        assert run_ids_in(first) == [f"{702:032x}", f"{350:032x}"]
        older = re.search(r'class="older" href="([^"]+)"', first)
        assert older is not None
        second = (await http.get(older.group(1).replace("&amp;", "&"))).text
    assert run_ids_in(second) == [f"{0:032x}"]
    assert 'class="older"' not in second


async def test_failed_run_page_draws_the_failed_node_red_with_its_traceback(
    client: httpx.AsyncClient, filled: support.Filled
) -> None:
    run_id = filled.ids["shop_failed"]
    page = await client.get(f"/runs/{run_id}")
    assert page.status_code == 200
    html = page.text
    statuses = {
        m[1]: m[0]
        for m in re.findall(
            r'class="node st-(\w+) kind-\w+[^"]*" href="[^"]+" data-label="(\w+)"', html
        )
    }
    assert statuses == {"order_ids": "completed", "prices": "failed", "total": "pending"}
    assert 'data-up="order_ids" data-down="prices"' in html  # the edge its values travelled
    assert f'href="/runs/{run_id}/nodes/prices"' in html  # the map node opens its sub-runs
    assert "order 3 has no price &lt;b&gt;bold&lt;/b&gt;" in html
    assert '<pre class="traceback">Traceback (most recent call last):' in html
    assert "1 failed, 3 completed" in html  # element counts of the map node
    assert "data-live" not in html  # a finished run is not polled


async def test_map_node_page_lists_its_elements_and_each_opens(
    client: httpx.AsyncClient, filled: support.Filled
) -> None:
    run_id = filled.ids["shop_failed"]
    page = await client.get(f"/runs/{run_id}/nodes/prices")
    assert page.status_code == 200
    elements = re.findall(r'class="element-link" href="/runs/(\w+)">prices\[(\d)\]<', page.text)
    assert [key for _, key in elements] == ["0", "1", "2", "3"]
    element = await client.get(f"/runs/{elements[3][0]}")
    assert element.status_code == 200
    assert 'class="parent-link"' in element.text and run_id[:12] in element.text
    assert 'class="node st-failed kind-function" href' in element.text
    assert "ValueError: order 3 has no price" in element.text


async def test_node_page_shows_values_history_attempts_and_lineage(
    client: httpx.AsyncClient, filled: support.Filled
) -> None:
    run_id = filled.ids["shop_ok"]
    page = await client.get(f"/runs/{run_id}/nodes/total")
    html = page.text
    assert page.status_code == 200
    assert '<pre class="value output">7.5</pre>' in html  # 0 + 2.5 + 5.0
    assert "&#34;prices&#34;: [" in html  # its inputs (quotes escaped too)
    assert "inline · " in html  # placement: the executor and host it ran on
    assert html.count('class="badge st-running"') == 1  # status history: running, completed
    assert "2 upstream executions" in html
    assert 'data-up="prices" data-down="total"' in html  # lineage drawn
    assert "no log records" in html  # the store keeps log lines; this node logged none


async def test_script_in_a_value_renders_as_text(
    client: httpx.AsyncClient, filled: support.Filled
) -> None:
    run_id = filled.ids["script"]
    escaped = "&lt;script&gt;document.title = &#39;pwned&#39;; window.pwned = 1&lt;/script&gt;"
    for label in ("greeting", "shout"):
        page = await client.get(f"/runs/{run_id}/nodes/{label}")
        assert page.status_code == 200
        assert "<script>document.title" not in page.text
        assert "<SCRIPT>" not in page.text
    assert escaped in (await client.get(f"/runs/{run_id}/nodes/greeting")).text


async def test_live_state_and_body_fragment(
    client: httpx.AsyncClient, filled: support.Filled
) -> None:
    run_id = filled.ids["shop_ok"]
    first = (await client.get(f"/runs/{run_id}/live")).json()
    assert first["status"] == "completed" and first["final"] is True
    assert (await client.get(f"/runs/{run_id}/live")).json() == first
    body = await client.get(f"/runs/{run_id}/body")
    assert body.text.lstrip().startswith('<section class="graph">')


async def test_missing_run_and_node_are_404_naming_them(
    client: httpx.AsyncClient, filled: support.Filled
) -> None:
    page = await client.get("/runs/feedbeef")
    assert page.status_code == 404
    assert "run &#39;feedbeef&#39; not found" in page.text
    node = await client.get(f"/runs/{filled.ids['shop_ok']}/nodes/nope")
    assert node.status_code == 404
    assert "has no node &#39;nope&#39;" in node.text


async def test_a_store_the_backend_refuses_shows_its_error_not_a_traceback(
    tmp_path: Path,
) -> None:
    bogus = tmp_path / "notes.sqlite3"
    bogus.write_text("these are my notes, not a database\n" * 100)
    async with support.app_client(UiConfig(provenance=SqliteProvenance(bogus))) as http:
        page = await http.get("/")
    assert page.status_code == 500
    assert "StoreError" in page.text
    assert str(bogus) in page.text
    assert "Traceback" not in page.text
    assert bogus.read_text().startswith("these are my notes")  # untouched


async def test_only_loopback_host_headers_are_served(client: httpx.AsyncClient) -> None:
    page = await client.get("/", headers={"host": "attacker.example"})
    assert page.status_code == 400


async def test_static_assets_ship_in_the_package(client: httpx.AsyncClient) -> None:
    css = await client.get("/static/ui.css")
    js = await client.get("/static/ui.js")
    assert css.status_code == js.status_code == 200
    assert "svg.dag" in css.text and "followLive" in js.text
    page = (await client.get("/")).text
    assert not re.search(r'(src|href)="https?://', page)  # nothing from another site


# ---------------------------------------------------------------------- logs (optional API)
@attrs.frozen(kw_only=True)
class LogLine:
    run_id: str
    label: str
    attempt: int
    seq: int
    at: datetime
    level: str
    logger: str
    message: str
    exc_text: str | None = None


class LoggingStore(SqliteProvenance):
    """The store with the ``get_logs`` read of the logging contract."""

    def __init__(self, path: Path, lines: list[LogLine]) -> None:
        super().__init__(path)
        self.lines = lines

    async def get_logs(self, run_id: str, label: str | None = None) -> list[LogLine]:
        return [x for x in self.lines if x.run_id == run_id and label in (None, x.label)]


async def test_node_logs_are_shown_escaped_when_the_store_keeps_them(
    filled: support.Filled,
) -> None:
    run_id = filled.ids["shop_ok"]
    at = datetime(2026, 5, 1, tzinfo=UTC)
    lines = [
        LogLine(
            run_id=run_id,
            label="total",
            attempt=1,
            seq=0,
            at=at,
            level="INFO",
            logger="shop",
            message="summing <script>alert(1)</script>",
        ),
        LogLine(
            run_id=run_id,
            label="total",
            attempt=1,
            seq=1,
            at=at,
            level="ERROR",
            logger="shop",
            message="oops",
            exc_text="Traceback: ZeroDivisionError",
        ),
        LogLine(
            run_id=run_id,
            label="order_ids",
            attempt=1,
            seq=0,
            at=at,
            level="INFO",
            logger="shop",
            message="elsewhere",
        ),
    ]
    async with support.app_client(UiConfig(provenance=LoggingStore(filled.path, lines))) as http:
        html = (await http.get(f"/runs/{run_id}/nodes/total")).text
    assert "summing &lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'class="level-error"' in html and "Traceback: ZeroDivisionError" in html
    assert "elsewhere" not in html


# ---------------------------------------------------------------------- cache page
async def test_cache_page_shows_counters_of_the_cache_store(tmp_path: Path) -> None:
    pytest.importorskip("plait_cache_sqlite")
    from plait.plugins import PluginHost
    from plait_cache_sqlite import SqliteCache
    from plait_ui.command import cache_reader

    path = tmp_path / "cache.sqlite3"
    with SqliteCache(path) as cache:
        cache.store("k1", "shop:<price>", "1", 0.0, 9e9)
        cache.record_stats("shop:<price>", hits=3, misses=1)
    config = UiConfig(
        provenance=SqliteProvenance(tmp_path / "p.sqlite3"),
        cache_stats=cache_reader(PluginHost(), path),
    )
    async with support.app_client(config) as http:
        html = (await http.get("/cache")).text
    assert "<code>shop:&lt;price&gt;</code>" in html
    assert '<td class="num">3</td><td class="num">1</td>' in html and "75 %" in html


# ---------------------------------------------------------------------- actions
FLAKY = {"fail": True}


@inline
def flaky_step(x: int) -> int:
    if FLAKY["fail"]:
        raise RuntimeError("not yet")
    return x + 1


@inline
def double(y: int) -> int:
    return 2 * y


with Dag("flaky") as flaky:
    flaky.node(flaky_step) >> flaky.node(double)


async def test_actions_are_off_unless_allowed(
    client: httpx.AsyncClient, filled: support.Filled
) -> None:
    page = await client.post(f"/runs/{filled.ids['shop_failed']}/restart", data={"csrf": "x"})
    assert page.status_code == 403
    assert "--allow-actions" in page.text
    assert "csrf" not in (await client.get(f"/runs/{filled.ids['shop_failed']}")).text


async def test_restart_and_replay_buttons_need_the_token_and_the_same_origin(
    tmp_path: Path,
) -> None:
    path = tmp_path / "acts.sqlite3"
    FLAKY["fail"] = True
    failed = await DagRunner(flaky, provenance=SqliteProvenance(path)).run({"flaky_step": {"x": 1}})
    assert failed.status is RunStatus.FAILED

    def make_runner(dag: Dag) -> DagRunner:
        return DagRunner(dag, provenance=SqliteProvenance(path))

    actions = Actions({"flaky": flaky}, make_runner, token="s3cret")
    config = UiConfig(provenance=SqliteProvenance(path), allow_actions=True, actions=actions)
    url = f"/runs/{failed.run_id}"
    async with support.app_client(config) as http:
        page = (await http.get(url)).text
        assert 'name="csrf" value="s3cret"' in page and ">Restart<" in page
        refused: list[dict[str, Any]] = [
            {"data": {}},
            {"data": {"csrf": "guess"}},
            {"data": {"csrf": "s3cret"}, "headers": {"origin": "http://evil.example"}},
            {"data": {"csrf": "s3cret"}, "headers": {"sec-fetch-site": "cross-site"}},
        ]
        for request in refused:
            answer = await http.post(url + "/restart", **request)
            assert answer.status_code == 403, request
        async with SqliteProvenance(path) as store:
            assert (await store.get_run(failed.run_id)).attempt == 1

        FLAKY["fail"] = False
        answer = await http.post(
            url + "/restart", data={"csrf": "s3cret"}, headers={"origin": support.BASE_URL}
        )
        assert answer.status_code == 303 and answer.headers["location"] == url
        async with SqliteProvenance(path) as store:
            with anyio.fail_after(10):
                while True:
                    restarted = await store.get_run(failed.run_id)
                    if restarted.status is RunStatus.COMPLETED:
                        break
                    await anyio.sleep(0.02)
        assert restarted.attempt == 2

        answer = await http.post(url + "/replay", data={"csrf": "s3cret", "rerun": "double"})
        assert answer.status_code == 303
        replay_url = answer.headers["location"]
        assert replay_url != url
        replay = await http.get(replay_url)
        assert f'/runs/{failed.run_id}">{failed.run_id[:12]}</a>' in replay.text  # replay of


# ---------------------------------------------------------------------- any provenance store
async def test_pages_work_over_a_third_party_store_with_only_the_protocol(tmp_path: Path) -> None:
    """The documentation's example JSONL backend: no attempts, history or lineage (it keeps
    log lines, as the protocol asks; these nodes log none)."""
    jsonl = pytest.importorskip("plait_jsonl_provenance")
    path = tmp_path / "runs.jsonl"
    result = await DagRunner(support.shop, provenance=jsonl.JsonlProvenance(path)).run(
        {"order_ids": {"n": 5}}
    )
    async with support.app_client(UiConfig(provenance=jsonl.JsonlProvenance(path))) as http:
        runs = (await http.get("/")).text
        run = (await http.get(f"/runs/{result.run_id}")).text
        node = await http.get(f"/runs/{result.run_id}/nodes/prices")
    assert run_ids_in(runs) == [result.run_id]
    assert 'class="node st-failed kind-map" href' in run
    assert 'data-up="order_ids" data-down="prices"' in run
    assert node.status_code == 200
    assert "not kept by this store" in node.text  # no lineage read: said, not an error
    assert "no log records" in node.text


# ---------------------------------------------------------------------- live
async def test_a_running_run_is_followed_until_it_ends(tmp_path: Path) -> None:
    """The page of a running run asks to be polled; its signature moves as nodes finish."""
    path = tmp_path / "live.sqlite3"
    gate = anyio.Event()

    async def hold() -> int:
        await gate.wait()
        return 1

    @inline
    def after(hold: int) -> int:
        return hold + 1

    with Dag("held") as held:
        held.node(hold) >> held.node(after)

    result: list[Any] = []
    async with (
        support.app_client(UiConfig(provenance=SqliteProvenance(path), poll_ms=250)) as http,
        anyio.create_task_group() as tg,
    ):

        async def run() -> None:
            result.append(await DagRunner(held, provenance=SqliteProvenance(path)).run())

        tg.start_soon(run)
        with anyio.fail_after(10):
            while True:
                await anyio.sleep(0.02)
                listed = (await http.get("/", params={"status": "running"})).text
                if run_ids_in(listed):
                    break
        run_id = run_ids_in(listed)[0]
        page = (await http.get(f"/runs/{run_id}")).text
        assert f'data-live="/runs/{run_id}"' in page and 'data-poll-ms="250"' in page
        before = (await http.get(f"/runs/{run_id}/live")).json()
        assert before["status"] == "running" and before["final"] is False
        gate.set()
    async with support.app_client(UiConfig(provenance=SqliteProvenance(path))) as http:
        done = (await http.get(f"/runs/{run_id}/live")).json()
        page = (await http.get(f"/runs/{run_id}")).text
    assert result[0].status is RunStatus.COMPLETED
    assert done["final"] is True and done["signature"] != before["signature"]
    assert "data-live" not in page
