"""The trigger model: constructors, configuration data, and bad input naming the trigger."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import attrs
import pytest
from _engine_dags import stamp_dag

from plait.engine import Engine
from plait.errors import PlaitError, TriggerError, TriggerNotFoundError
from plait.plugins import PluginHost
from plait.triggers import (
    Catchup,
    CatchupPolicy,
    Overlap,
    RetryPolicy,
    ScheduleOptions,
    Trigger,
    TriggerState,
    check_trigger,
    spec_text,
    triggers_from_config,
    upcoming_fires,
)

T_NOW = datetime(2026, 3, 27, 12, 0, tzinfo=UTC)

CONFIG = """
[triggers.nightly]
dag = "_engine_dags:stamp_dag"
cron = "30 2 * * *"
timezone = "Europe/Berlin"
catchup = { policy = "all", limit = 5 }
retry = { attempts = 2, backoff = 60 }
max_active_runs = 2
overlap = "queue"
inputs = { tag = "nightly" }

[triggers.inbox]
dag = "_engine_dags:stamp_dag"
check = "_engine_dags:stamp"
interval = 30
timeout = 5

[triggers.by-hand]
dag = "_engine_dags:stamp_dag"
active = false
"""


def test_config_section_round_trips(host: PluginHost) -> None:
    triggers = triggers_from_config(tomllib.loads(CONFIG)["triggers"], host=host)
    nightly, inbox, by_hand = triggers
    assert nightly.kind == "schedule"
    assert nightly.options == ScheduleOptions(cron="30 2 * * *", timezone="Europe/Berlin")
    assert nightly.catchup == Catchup(policy=CatchupPolicy.ALL, limit=5)
    assert nightly.retry == RetryPolicy(attempts=2, backoff=60)
    assert nightly.overlap is Overlap.QUEUE and nightly.max_active_runs == 2
    assert inbox.kind == "poll" and inbox.options.interval == 30
    assert by_hand.kind == "manual" and by_hand.active is False
    for trigger in triggers:
        again = Trigger.from_dict(trigger.to_dict(), host=host)
        assert again == trigger
        assert again.dag_ref == trigger.dag_ref


def test_retry_delays_grow_to_a_cap() -> None:
    policy = RetryPolicy(attempts=5, backoff=10, factor=3, max_backoff=100)
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [10, 30, 90, 100]


def test_malformed_cron_names_trigger_and_expression() -> None:
    trigger = Trigger.schedule("broken", stamp_dag, "61 * * * *")
    with pytest.raises(
        TriggerError, match=r"trigger 'broken': malformed cron expression '61 \* \* \* \*'"
    ):
        check_trigger(trigger)


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("* * *", "malformed cron expression"),
        ("0 0 30 2 *", "Bad day-of-month"),
        ("not a cron at all", "malformed cron expression"),
    ],
)
def test_bad_cron_expressions(cron: str, message: str) -> None:
    with pytest.raises(TriggerError, match=message) as info:
        check_trigger(Trigger.schedule("bad", stamp_dag, cron))
    assert isinstance(info.value, PlaitError) and "'bad'" in str(info.value)


def test_unknown_time_zone() -> None:
    with pytest.raises(TriggerError, match=r"trigger 'tz': unknown time zone 'Mars/Olympus'"):
        check_trigger(Trigger.schedule("tz", stamp_dag, "0 * * * *", timezone="Mars/Olympus"))


def test_poll_check_that_does_not_import(make_engine: Callable[..., Engine]) -> None:
    trigger = Trigger.poll("inbox", stamp_dag, "no_such_module.sub:check", interval=5)
    with pytest.raises(TriggerError) as info:
        make_engine([trigger])
    text = str(info.value)
    assert "trigger 'inbox'" in text and "'no_such_module.sub:check'" in text
    with pytest.raises(TriggerError, match="has no attribute 'nope'"):
        check_trigger(Trigger.poll("inbox", stamp_dag, "_engine_dags:nope", interval=5))


def test_unknown_kind_and_unknown_key(host: PluginHost) -> None:
    with pytest.raises(
        TriggerError,
        match=r"trigger 'x': unknown trigger kind 'webhook' \(installed: manual, poll, schedule",
    ):
        Trigger.from_dict({"dag": "a:b", "kind": "webhook"}, name="x", host=host)
    with pytest.raises(TriggerError, match=r"trigger 'x': unknown key\(s\) 'crn'"):
        Trigger.from_dict(
            {"dag": "a:b", "kind": "schedule", "cron": "* * * * *", "crn": 1}, name="x", host=host
        )
    with pytest.raises(TriggerError, match=r"(?s)trigger 'x'.*expected float @ \$.interval"):
        Trigger.from_dict({"dag": "a:b", "check": "a:b", "interval": "often"}, name="x", host=host)
    with pytest.raises(TriggerError, match="catchup 'sometimes' is not one of"):
        Trigger.from_dict({"dag": "a:b", "catchup": "sometimes"}, name="x", host=host)
    with pytest.raises(TriggerError, match="missing 'dag'"):
        Trigger.from_dict({"cron": "* * * * *"}, name="x", host=host)


def test_invalid_policies_name_the_trigger() -> None:
    with pytest.raises(TriggerError, match=r"trigger 'p': max_active_runs must be >= 1, got 0"):
        Trigger.manual("p", stamp_dag, max_active_runs=0)
    with pytest.raises(TriggerError, match="a trigger name must"):
        Trigger.manual("has space", stamp_dag)


def test_dag_reference_that_does_not_resolve(make_engine: Callable[..., Engine]) -> None:
    with pytest.raises(TriggerError, match=r"trigger 'm': DAG: cannot import module 'nowhere'"):
        make_engine([Trigger.manual("m", "nowhere:dag")])
    with pytest.raises(TriggerError, match=r"'_engine_dags:CALLS' is a list, not a Dag"):
        make_engine([Trigger.manual("m", "_engine_dags:CALLS")])


def test_duplicate_trigger_names(make_engine: Callable[..., Engine]) -> None:
    with pytest.raises(TriggerError, match="trigger 'm' is defined twice"):
        make_engine([Trigger.manual("m", stamp_dag), Trigger.manual("m", stamp_dag)])


@pytest.mark.anyio
async def test_firing_an_unknown_trigger(make_engine: Callable[..., Engine]) -> None:
    engine = make_engine([Trigger.manual("known", stamp_dag)])
    async with engine:
        with pytest.raises(
            TriggerNotFoundError, match=r"no trigger named 'unknwon' \(triggers: known\)"
        ):
            await engine.fire("unknwon")
        with pytest.raises(PlaitError, match="no source parameter or source node 'colour'"):
            await engine.fire("known", {"colour": "red"})
        assert await engine.store.list_fires() == []


def _state(kind: str, definition: dict[str, object], **fields: object) -> TriggerState:
    return TriggerState(
        name="t", kind=kind, active=True, created_at=T_NOW, updated_at=T_NOW,
        definition=definition, **fields,  # type: ignore[arg-type]
    )  # fmt: skip


def test_upcoming_fires_and_spec_text_read_a_stored_trigger() -> None:
    nightly = {"dag": "etl:dag", "kind": "schedule", "cron": "0 3 * * *", "timezone": "UTC"}
    times, problem = upcoming_fires(_state("schedule", nightly), T_NOW, 3)
    assert problem is None
    assert times == tuple(T_NOW.replace(hour=3) + timedelta(days=d) for d in (1, 2, 3))
    assert spec_text(_state("schedule", nightly)) == "0 3 * * * (UTC)"
    paused = attrs.evolve(_state("schedule", nightly), active=False)
    assert upcoming_fires(paused, T_NOW, 3) == ((), None)
    recorded = T_NOW + timedelta(minutes=5)
    poll = _state("poll", {"check": "m:f", "interval": 60}, next_fire_at=recorded)
    assert upcoming_fires(poll, T_NOW, 3) == ((recorded,), None)
    assert spec_text(poll) == "m:f every 60 s"
    broken = _state("schedule", {**nightly, "cron": "61 * * * *"}, next_fire_at=recorded)
    times, problem = upcoming_fires(broken, T_NOW, 3)
    assert times == (recorded,)
    assert problem is not None and "malformed cron expression '61 * * * *'" in problem
    assert spec_text(_state("manual", {})) == ""
