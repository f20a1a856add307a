"""pydantic models as inputs, outputs, recorded and cached values (pydantic is optional)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from plait import Dag, DagPause, DagRunner, cached
from plait.cache import close_backends
from plait.converter import structure, to_json_safe
from plait.errors import ConversionError

pydantic = pytest.importorskip("pydantic")
pytest.importorskip("plait_cache_sqlite")


class Reading(pydantic.BaseModel):
    city: str
    at: datetime
    celsius: float


class Summary(pydantic.BaseModel):
    city: str
    readings: list[Reading]

    @property
    def high(self) -> float:
        return max(r.celsius for r in self.readings)


@pytest.fixture(autouse=True)
def _close_shared_backends() -> Iterator[None]:
    yield
    close_backends()


def reading(city: str) -> Reading:
    return Reading(city=city, at=datetime(2026, 1, 2, 3, 4), celsius=4.5)


def summarise(r: Reading) -> Summary:
    return Summary(city=r.city, readings=[r, r.model_copy(update={"celsius": 6.0})])


def test_the_converter_round_trips_models_with_their_type() -> None:
    value = summarise(reading("Oslo"))
    data = to_json_safe(value, Summary)
    assert data["readings"][0] == {"city": "Oslo", "at": "2026-01-02T03:04:00", "celsius": 4.5}
    again = structure(data, Summary)
    assert type(again) is Summary and again == value
    assert structure([data], list[Summary]) == [value]


def test_invalid_data_is_a_conversion_error_naming_the_field() -> None:
    with pytest.raises(ConversionError, match="Summary") as caught:
        structure({"city": "x", "readings": [{"city": 1}]}, Summary)
    assert "readings.0.at" in str(caught.value)


@pytest.mark.anyio
async def test_models_flow_between_nodes() -> None:
    dag = Dag("models")
    dag.node(reading) >> dag.node(summarise)
    result = await dag(city="Rome")
    summary = result.outputs["summarise"]
    assert isinstance(summary, Summary) and summary.high == 6.0


@pytest.mark.anyio
async def test_a_model_input_and_a_recorded_output_restore_on_restart(tmp_path: Path) -> None:
    pytest.importorskip("plait_provenance_sqlite")
    from plait_provenance_sqlite import SqliteProvenance

    gate = {"open": False}

    def approve(summary: Summary) -> float:
        if not gate["open"]:
            raise DagPause("waiting")
        assert isinstance(summary, Summary)  # restored from the store with its type
        return summary.high

    def from_input(r: Reading) -> Summary:
        assert isinstance(r, Reading)
        return summarise(r)

    dag = Dag("approve")
    dag.node(from_input) >> dag.node(approve)
    store = SqliteProvenance(tmp_path / "runs.sqlite3")
    runner = DagRunner(dag, provenance=store)
    first = await runner.run(source_inputs={"from_input": {"r": reading("Oslo")}})
    assert first.status == "paused"
    gate["open"] = True
    again = await DagRunner(dag, provenance=SqliteProvenance(tmp_path / "runs.sqlite3")).restart(
        first.run_id
    )
    assert again.status == "completed" and again.outputs == {"approve": 6.0}


def test_cached_models_come_back_with_their_type(tmp_path: Path) -> None:
    calls = []

    @cached(1, 2, db_path=tmp_path / "cache.sqlite3")
    def enrich(r: Reading) -> Summary:  # a model as key and as value
        calls.append(r)
        return summarise(r)

    first = enrich(reading("Oslo"))
    second = enrich(reading("Oslo"))
    assert type(second) is Summary and second == first
    assert len(calls) == 1
    assert enrich(reading("Rome")).city == "Rome" and len(calls) == 2


def test_pydantic_is_not_imported_by_plait() -> None:
    code = (
        "import sys, plait, plait.converter as c; c.get_converter(); "
        "c.to_json_safe({'a': 1}); print('pydantic' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"
