"""The engine's fast record constructors build what ``attrs.evolve`` and ``uuid`` would."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import attrs

from plait._engine import recording
from plait.records import RunRecord, RunStatus


def _every_field_set() -> RunRecord:
    """A run record whose every field differs from its default."""
    t = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    return RunRecord(
        run_id="r1",
        dag_nsref="pkg/dag",
        status=RunStatus.RUNNING,
        started_at=t,
        updated_at=t + timedelta(seconds=1),
        finished_at=t + timedelta(seconds=2),
        source_inputs={"src": {"x": 1}},
        parent_run_id="p1",
        replay_of="r0",
        correlation_id="c1",
        attempt=3,
        owner_pid=42,
        owner_host="host",
        owner_started="123",
        failed_node="n0",
        error_type="builtins.ValueError",
        error_message="bad",
        traceback="Traceback ...",
        dag_ref="pkg.mod:dag",
        resumed_at=t + timedelta(seconds=3),
        earlier_ms=12.5,
    )


def test_every_run_field_is_set_in_the_test_record() -> None:
    run = _every_field_set()
    defaults = {
        f.name: f.default.factory() if isinstance(f.default, attrs.Factory) else f.default
        for f in attrs.fields(RunRecord)
        if f.default is not attrs.NOTHING
    }
    assert [name for name, value in defaults.items() if getattr(run, name) == value] == []


def test_ended_run_is_evolve_with_the_end() -> None:
    run = _every_field_set()
    now = datetime(2026, 1, 3, tzinfo=UTC)
    for failed in (None, "n1"):
        expected = attrs.evolve(
            run, status=RunStatus.COMPLETED, updated_at=now, finished_at=now, failed_node=failed
        )
        assert recording.ended_run(run, RunStatus.COMPLETED, now, failed) == expected


def test_new_run_id_is_a_uuid4_hex() -> None:
    ids = {recording.new_run_id() for _ in range(1000)}
    assert len(ids) == 1000
    for run_id in ids:
        parsed = uuid.UUID(hex=run_id)
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        assert parsed.hex == run_id
