from __future__ import annotations

import dataclasses
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import attrs
import pytest

from plait.converter import dumps, loads, structure, to_json_safe
from plait.errors import ConversionError, PlaitError
from plait.records import NodeRecord, NodeStatus, RunRecord, RunStatus


@attrs.frozen
class Point:
    x: int
    y: float


@dataclasses.dataclass
class Bundle:
    when: datetime
    day: date
    where: Path
    pair: tuple[int, str]
    points: list[Point]
    tags: dict[str, set[int]]
    wait: timedelta


def test_round_trip_through_json_keeps_types() -> None:
    value = Bundle(
        when=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        day=date(2026, 1, 2),
        where=Path("/tmp/x"),
        pair=(1, "a"),
        points=[Point(1, 2.5)],
        tags={"a": {1, 2}},
        wait=timedelta(seconds=90),
    )
    data = loads(dumps(to_json_safe(value, Bundle)))
    assert structure(data, Bundle) == value


def test_unconvertible_value_names_where() -> None:
    with pytest.raises(ConversionError, match=r"node 'x' output.*object"):
        to_json_safe(object(), where="node 'x' output")


def test_structure_error_carries_the_path() -> None:
    with pytest.raises(ConversionError) as info:
        structure({"x": "nope", "y": 1.0}, Point, where="run r1 node 'p' output")
    assert isinstance(info.value, PlaitError | TypeError)
    assert "run r1 node 'p' output" in str(info.value)
    assert "$.x" in str(info.value)


def test_records_round_trip_and_statuses_are_strings() -> None:
    now = datetime.now(UTC)
    run = RunRecord(
        run_id="r",
        dag_nsref="d",
        status=RunStatus.FAILED,
        started_at=now,
        updated_at=now,
        source_inputs={"a": {"x": 1}},
    )
    node = NodeRecord(
        run_id="r",
        label="a",
        status=NodeStatus.COMPLETED,
        updated_at=now,
        output=[1, 2],
        restorable=True,
    )
    for rec in (run, node):
        assert structure(loads(dumps(to_json_safe(rec))), type(rec)) == rec
    assert run.status == "failed"
    assert node.status == "completed"
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        run.status = RunStatus.COMPLETED  # type: ignore[misc]


@pytest.mark.parametrize(
    "sample",
    [1, -3, 10**30, 2.5, -0.0, None, True, "", 'é\n"\u2028', [], {}, [1, {"b": 2, "a": [None]}]],
)
def test_dumps_is_compact_sorted_ascii_json(sample: object) -> None:
    expected = json.dumps(sample, sort_keys=True, separators=(",", ":"), allow_nan=False)
    assert dumps(sample) == expected
    assert loads(dumps(sample)) == sample


@pytest.mark.parametrize(
    ("sample", "text"),
    [
        (float("inf"), "1e999"),
        (-float("inf"), "-1e999"),
        (
            [1, {"b": -float("inf"), "a": ("é", 2.5, None, True)}],
            '[1,{"a":["\\u00e9",2.5,null,true],"b":-1e999}]',
        ),
    ],
)
def test_dumps_spells_infinities_as_json_numbers_that_read_back(sample: object, text: str) -> None:
    assert dumps(sample) == text
    assert json.loads(text) == loads(text)  # plain JSON: any reader with doubles agrees
    expected = json.loads(json.dumps(sample))  # (tuples come back as lists)
    assert loads(dumps(sample)) == expected


@pytest.mark.parametrize("bad", [float("nan"), [1, float("nan")], {"a": object()}, [b"bytes"]])
def test_dumps_refuses_what_json_cannot_hold(bad: object) -> None:
    with pytest.raises((ValueError, TypeError)):
        dumps(bad)


def test_object_annotations_give_the_data_back_as_is() -> None:
    data = [1, "a", {"b": [2.5]}]
    assert structure(data, object) == data
    assert structure(data, list[object]) == data
    assert structure({"k": data}, dict[str, object]) == {"k": data}
    when = datetime(2026, 1, 2, tzinfo=UTC)
    assert to_json_safe(when, object) == to_json_safe(when)  # by its own type
