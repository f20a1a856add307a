"""The triggers pages and the fire button, through an ASGI client over real SQLite stores."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import _ui_support as support
import anyio
import httpx
import pytest

from plait import DagRunner
from plait.engine import Engine
from plait.records import RunStatus
from plait.triggers import FireClaim, FireOutcome, Trigger, TriggerDefinition
from plait_provenance_sqlite import SqliteProvenance
from plait_provenance_sqlite.triggers import SqliteTriggerStore
from plait_ui import Actions, UiConfig

pytestmark = pytest.mark.anyio

BERLIN = ZoneInfo("Europe/Berlin")
NEXT = re.compile(r'<time class="next-fire[^"]*" datetime="([^"]+)"')
TOKEN = "s3cret"


def nightly() -> Trigger:
    return Trigger.schedule("nightly", "shop", "0 6 * * *", timezone="Europe/Berlin")


def by_hand() -> Trigger:
    return Trigger.manual("by-hand", support.greet)


async def fill_triggers(path: Path) -> str:
    """Four triggers (schedule, poll, manual, paused) and fires of ``nightly``, the last of
    which started a real run; returns that run's id."""
    run = await DagRunner(support.shop, provenance=SqliteProvenance(path)).run(
        {"order_ids": {"n": 2}}
    )
    poll = TriggerDefinition(
        name="inbox", kind="poll", definition={"dag": "greet", "check": "mail:new", "interval": 60}
    )
    paused = support.definition(Trigger.manual("retired", "greet", active=False))
    await support.define(
        path, support.definition(nightly()), support.definition(by_hand()), poll, paused
    )
    async with SqliteTriggerStore(path) as store:
        now = datetime.now(UTC)
        await store.set_next_fire("inbox", now + timedelta(seconds=42))
        for n, outcome in enumerate((FireOutcome.FAILED, FireOutcome.COMPLETED)):
            at = now - timedelta(days=2 - n)
            fire = await store.claim_fire(
                FireClaim(
                    fire_id=f"fire{n}",
                    trigger="nightly",
                    fired_at=at,
                    engine_id="e1",
                    max_active_runs=1,
                    overlap="skip",
                    scheduled_for=at,
                )
            )
            assert fire is not None
            run_id = run.run_id if outcome is FireOutcome.COMPLETED else None
            error = "node 'total': boom" if outcome is FireOutcome.FAILED else None
            await store.update_fire(fire.fire_id, at, outcome=outcome, run_id=run_id, error=error)
    return run.run_id


def six_in_berlin(shown: str) -> bool:
    """``shown`` (an ISO UTC instant) is 06:00 in Berlin, by zoneinfo, not by cron."""
    at = datetime.fromisoformat(shown)
    day: date = at.astimezone(BERLIN).date()
    return at == datetime.combine(day, time(6), tzinfo=BERLIN).astimezone(UTC)


async def test_triggers_page_lists_triggers_next_fires_and_recent_fires(tmp_path: Path) -> None:
    path = tmp_path / "trig.sqlite3"
    run_id = await fill_triggers(path)
    async with support.app_client(support.trigger_config(path)) as http:
        page = await http.get("/triggers")
    assert page.status_code == 200
    text = page.text
    assert '<a href="/triggers">Triggers</a>' in text  # in the navigation
    assert "4 triggers" in text
    rows = dict(re.findall(r'data-trigger="([^"]+)">(.*?)</tr>', text, re.DOTALL))
    assert list(rows) == ["by-hand", "inbox", "nightly", "retired"]
    nightly_row = rows["nightly"]
    assert "0 6 * * * (Europe/Berlin)" in nightly_row and "enabled" in nightly_row
    times = NEXT.findall(nightly_row)
    assert len(times) == 3
    assert all(six_in_berlin(t) for t in times)
    starts = [datetime.fromisoformat(t) for t in times]
    assert starts == sorted(starts) and starts[0] > datetime.now(UTC)
    assert starts[2] - starts[0] < timedelta(days=2, hours=2)  # one a day
    assert f'href="/runs/{run_id}"' in nightly_row and "st-completed" in nightly_row
    assert len(NEXT.findall(rows["inbox"])) == 1  # what the engine recorded
    assert "mail:new every 60 s" in rows["inbox"]
    assert "paused" in rows["retired"] and not NEXT.findall(rows["retired"])
    assert not NEXT.findall(rows["by-hand"]) and "on request" in rows["by-hand"]
    recent = text.split("Recent fires", 1)[1]
    assert recent.index("fire1") < recent.index("fire0")  # newest first
    assert "st-failed" in recent and f'href="/runs/{run_id}"' in recent
    assert "No engine is running on this store" in text
    assert "csrf" not in text and ">Fire<" not in text  # read-only


async def test_trigger_page_shows_ten_next_fires_its_fires_and_definition(tmp_path: Path) -> None:
    path = tmp_path / "trig.sqlite3"
    run_id = await fill_triggers(path)
    async with support.app_client(support.trigger_config(path)) as http:
        page = await http.get("/triggers/nightly")
        fire = await http.get("/triggers/nightly/fires/fire1")
        failed = await http.get("/triggers/nightly/fires/fire0")
        missing = await http.get("/triggers/nope")
        wrong = await http.get("/triggers/inbox/fires/fire1")
    assert page.status_code == 200
    times = NEXT.findall(page.text)
    assert len(times) == 10 and all(six_in_berlin(t) for t in times)
    assert page.text.count('class="fire-row"') == 2
    assert f'href="/runs/{run_id}"' in page.text
    assert "&#34;cron&#34;: &#34;0 6 * * *&#34;" in page.text  # the definition, as JSON
    assert fire.status_code == 200 and f'href="/runs/{run_id}"' in fire.text
    assert "node &#39;total&#39;: boom" in failed.text and "none yet" not in failed.text
    assert missing.status_code == 404 and "&#39;nope&#39;" in missing.text
    assert wrong.status_code == 404 and "not of &#39;inbox&#39;" in wrong.text


async def test_a_store_without_triggers_says_so(tmp_path: Path) -> None:
    path = tmp_path / "empty.sqlite3"
    async with SqliteProvenance(path):
        pass
    async with support.app_client(support.trigger_config(path)) as http:
        page = await http.get("/triggers")
    assert page.status_code == 200
    assert "No triggers defined yet" in page.text
    assert "plait engine --config FILE" in page.text
    assert "Recent fires" not in page.text


async def test_a_backend_without_a_trigger_store_is_a_message_not_a_traceback(
    filled: support.Filled,
) -> None:
    config = UiConfig(provenance=SqliteProvenance(filled.path), allow_actions=True)
    async with support.app_client(config) as http:
        page = await http.get("/triggers")
        detail = await http.get("/triggers/nightly")
    assert page.status_code == 200
    assert "keeps no triggers: its backend has no trigger store" in page.text
    assert "Traceback" not in page.text
    assert detail.status_code == 404 and "keeps no triggers" in detail.text


async def test_a_definition_that_no_longer_builds_shows_why(tmp_path: Path) -> None:
    path = tmp_path / "bad.sqlite3"
    broken = TriggerDefinition(
        name="broken", kind="schedule", definition={"dag": "shop", "cron": "99 * * * *"}
    )
    await support.define(path, broken)
    async with support.app_client(support.trigger_config(path)) as http:
        page = await http.get("/triggers")
        detail = await http.get("/triggers/broken")
    assert page.status_code == 200 and "cannot compute" in page.text
    assert "malformed cron expression &#39;99 * * * *&#39;" in detail.text


async def test_script_in_a_trigger_name_dag_or_payload_renders_as_text(tmp_path: Path) -> None:
    path = tmp_path / "xss.sqlite3"
    evil = TriggerDefinition(name=support.SCRIPT, kind="manual", definition={"dag": support.SCRIPT})
    await support.define(path, evil)
    async with SqliteTriggerStore(path) as store:
        fire = await store.request_fire(
            "f1", support.SCRIPT, {"x": support.SCRIPT}, datetime.now(UTC)
        )
    actions = Actions({}, lambda dag: DagRunner(dag), token=TOKEN)
    config = support.trigger_config(path, allow_actions=True, actions=actions)
    async with support.app_client(config) as http:
        pages = [
            await http.get("/triggers"),
            await http.get(f"/triggers/{support.SCRIPT.replace('/', '%2F')}"),
            await http.get(f"/triggers/{support.SCRIPT.replace('/', '%2F')}/fires/{fire.fire_id}"),
        ]
    for page in pages:
        assert page.status_code == 200, page.text
        assert "<script>document" not in page.text
        assert "&lt;script&gt;document.title" in page.text


async def test_triggers_are_paged_by_name(tmp_path: Path) -> None:
    path = tmp_path / "many.sqlite3"
    names = [f"t{n:03d}" for n in range(120)]
    await support.define(
        path,
        *(TriggerDefinition(name=n, kind="manual", definition={"dag": "greet"}) for n in names),
    )
    seen: list[str] = []
    async with support.app_client(support.trigger_config(path)) as http:
        url: str | None = "/triggers"
        while url is not None:
            page = (await http.get(url)).text
            assert "120 triggers" in page
            seen += re.findall(r'data-trigger="([^"]+)"', page)
            found = re.search(r'class="older" href="([^"]+)"', page)
            url = found.group(1) if found else None
    assert seen == names


# ---------------------------------------------------------------------- the fire button
async def fires_of(path: Path, name: str) -> list[Any]:
    async with SqliteTriggerStore(path) as store:
        return await store.list_fires(trigger=name)


async def test_fire_is_refused_without_actions(tmp_path: Path) -> None:
    path = tmp_path / "fire.sqlite3"
    await support.define(path, support.definition(by_hand()))
    async with support.app_client(support.trigger_config(path)) as http:
        answer = await http.post("/triggers/by-hand/fire", data={"csrf": "anything"})
        page = await http.get("/triggers/by-hand")
    assert answer.status_code == 403 and "--allow-actions" in answer.text
    assert "Payload" not in page.text and "csrf" not in page.text
    assert await fires_of(path, "by-hand") == []


async def test_fire_needs_the_token_the_same_origin_and_a_post(tmp_path: Path) -> None:
    path = tmp_path / "fire.sqlite3"
    await support.define(path, support.definition(by_hand()))
    actions = Actions({}, lambda dag: DagRunner(dag), token=TOKEN)
    config = support.trigger_config(path, allow_actions=True, actions=actions)
    async with support.app_client(config) as http:
        listing = (await http.get("/triggers")).text
        assert f'name="csrf" value="{TOKEN}"' in listing and ">Fire<" in listing
        refused: list[dict[str, Any]] = [
            {"data": {}},
            {"data": {"csrf": "guess"}},
            {"data": {"csrf": TOKEN}, "headers": {"origin": "http://evil.example"}},
            {"data": {"csrf": TOKEN}, "headers": {"sec-fetch-site": "cross-site"}},
        ]
        for request in refused:
            answer = await http.post("/triggers/by-hand/fire", **request)
            assert answer.status_code == 403, request
        assert (await http.get("/triggers/by-hand/fire")).status_code == 404  # GET fires nothing
        bad = await http.post("/triggers/by-hand/fire", data={"csrf": TOKEN, "payload": "[1]"})
        assert bad.status_code == 400 and "JSON object" in bad.text
        assert await fires_of(path, "by-hand") == []

        answer = await http.post(
            "/triggers/by-hand/fire",
            data={"csrf": TOKEN, "payload": '{"greeting": {"name": "Ada"}}'},
            headers={"origin": support.BASE_URL},
        )
        assert answer.status_code == 303
        (fire,) = await fires_of(path, "by-hand")
        assert fire.outcome is FireOutcome.REQUESTED
        assert fire.payload == {"greeting": {"name": "Ada"}}
        assert answer.headers["location"] == f"/triggers/by-hand/fires/{fire.fire_id}"
        shown = (await http.get(answer.headers["location"])).text
        assert "st-requested" in shown and "No engine is running" in shown
        assert 'http-equiv="refresh"' in shown  # follows the fire while it is open


async def test_an_inactive_trigger_does_not_fire(tmp_path: Path) -> None:
    path = tmp_path / "fire.sqlite3"
    await support.define(path, support.definition(Trigger.manual("off", "greet", active=False)))
    actions = Actions({}, lambda dag: DagRunner(dag), token=TOKEN)
    config = support.trigger_config(path, allow_actions=True, actions=actions)
    async with support.app_client(config) as http:
        answer = await http.post("/triggers/off/fire", data={"csrf": TOKEN})
        missing = await http.post("/triggers/nope/fire", data={"csrf": TOKEN})
    assert answer.status_code == 409 and "is inactive" in answer.text
    assert missing.status_code == 404 and "&#39;nope&#39;" in missing.text
    assert await fires_of(path, "off") == []


async def test_fire_opens_the_run_the_engine_started(tmp_path: Path) -> None:
    path = tmp_path / "engine.sqlite3"
    actions = Actions({}, lambda dag: DagRunner(dag), token=TOKEN)
    config = support.trigger_config(path, allow_actions=True, actions=actions)
    engine = Engine(
        [by_hand()],
        store=SqliteTriggerStore(path),
        provenance=SqliteProvenance(path),
        poll_interval=0.05,
    )
    async with engine, support.app_client(config) as http:
        page = (await http.get("/triggers")).text
        assert "No engine is running" not in page
        answer = await http.post(
            "/triggers/by-hand/fire",
            data={"csrf": TOKEN, "payload": '{"greeting": {"name": "Ada"}}'},
        )
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/runs/")
        run_id = answer.headers["location"].removeprefix("/runs/")
        (fire,) = await fires_of(path, "by-hand")
        async with SqliteProvenance(path) as prov:
            run = await prov.get_run(run_id)
            with anyio.fail_after(10):
                while not run.status.is_final:
                    await anyio.sleep(0.02)
                    run = await prov.get_run(run_id)
        assert run.correlation_id == fire.fire_id and run.dag_nsref == "greet"
        assert run.status is RunStatus.COMPLETED
        with anyio.fail_after(10):
            while True:
                (fire,) = await fires_of(path, "by-hand")
                if not fire.outcome.is_open:
                    break
                await anyio.sleep(0.02)
        assert fire.outcome is FireOutcome.COMPLETED and fire.run_id == run_id
        listing = (await http.get("/triggers")).text
        assert f'href="/runs/{run_id}"' in listing and "st-completed" in listing


async def test_fire_without_a_trigger_store_is_404(filled: support.Filled) -> None:
    actions = Actions({}, lambda dag: DagRunner(dag), token=TOKEN)
    config = UiConfig(provenance=SqliteProvenance(filled.path), allow_actions=True, actions=actions)
    async with support.app_client(config) as http:
        answer: httpx.Response = await http.post("/triggers/x/fire", data={"csrf": TOKEN})
    assert answer.status_code == 404 and "keeps no triggers" in answer.text
