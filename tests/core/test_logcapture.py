"""plait.logcapture: records tagged with run and node, collected per node attempt, bounded."""

from __future__ import annotations

import logging
import pickle
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from plait.context import CURRENT_CONTEXT, DagContext
from plait.logcapture import LogCapture, capturing, install_record_factory, lines_of
from plait.records import LogRecord

log = logging.getLogger("tests.logcapture")


@pytest.fixture(autouse=True)
def _info_enabled() -> Iterator[None]:
    before = log.level
    log.setLevel(logging.DEBUG)
    yield
    log.setLevel(before)


def _in_node(label: str = "load", run_id: str = "r1") -> tuple[Any, Any]:
    ctx = DagContext(dag_nsref="d", node_label=label, run_id=run_id)
    return CURRENT_CONTEXT.set(ctx), CURRENT_CONTEXT


def test_records_carry_run_and_label_inside_a_node_and_none_outside() -> None:
    install_record_factory()
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    handler = Keep()
    log.addHandler(handler)
    try:
        log.info("outside")
        token, var = _in_node()
        try:
            log.info("inside")
        finally:
            var.reset(token)
    finally:
        log.removeHandler(handler)
    assert [(r.getMessage(), r.plait_run_id, r.plait_label) for r in seen] == [
        ("outside", None, None),
        ("inside", "r1", "load"),
    ]


def test_collect_keeps_the_level_and_above_with_exception_text() -> None:
    capture = LogCapture(run_id="r1", label="load", attempt=2, first_seq=5)
    token, var = _in_node()
    try:
        with capture.collect() as lines:
            log.debug("not kept")
            log.info("rows: %d", 3)
            try:
                raise KeyError("z")
            except KeyError:
                log.exception("boom")
    finally:
        var.reset(token)
    got = lines.records()
    assert [(r.seq, r.attempt, r.level, r.logger, r.message) for r in got] == [
        (5, 2, logging.INFO, "tests.logcapture", "rows: 3"),
        (6, 2, logging.ERROR, "tests.logcapture", "boom"),
    ]
    assert got[0].exc_text is None
    assert got[1].exc_text is not None and "KeyError: 'z'" in got[1].exc_text
    assert all(isinstance(r, LogRecord) and r.at.tzinfo is not None for r in got)


def test_other_threads_do_not_leak_into_a_node() -> None:
    capture = LogCapture(run_id="r1", label="load")
    token, var = _in_node()
    try:
        with capture.collect() as lines:
            t = threading.Thread(target=lambda: log.warning("from elsewhere"))
            t.start()
            t.join()
            log.warning("mine")
    finally:
        var.reset(token)
    assert [r.message for r in lines.records()] == ["mine"]


def test_lines_are_bounded_and_the_truncation_is_marked() -> None:
    capture = LogCapture(run_id="r1", label="chatty", limit=10)
    token, var = _in_node("chatty")
    try:
        with capture.collect() as lines:
            for i in range(25):
                log.info("line %d", i)
    finally:
        var.reset(token)
    got = lines.records()
    assert [r.seq for r in got] == list(range(11))
    messages = [r.message for r in got]
    assert messages[:5] == [f"line {i}" for i in range(5)]
    assert messages[6:] == [f"line {i}" for i in range(20, 25)]
    assert got[5].logger == "plait" and got[5].level == logging.WARNING
    assert "15 log lines of node 'chatty' were not kept" in messages[5]


def test_an_exception_carries_the_lines_logged_before_it() -> None:
    capture = LogCapture(run_id="r1", label="load")

    def fail() -> None:
        with capture.collect():
            log.info("about to fail")
            raise ValueError("bad")

    token, var = _in_node()
    try:
        with pytest.raises(ValueError) as info:
            fail()
    finally:
        var.reset(token)
    assert [r.message for r in lines_of(info.value)] == ["about to fail"]
    # and they survive pickling, as a worker process sends the exception back
    again = pickle.loads(pickle.dumps(info.value))
    assert [r.message for r in lines_of(again)] == ["about to fail"]
    assert lines_of(ValueError("other")) == ()


def test_capturing_lowers_an_unconfigured_root_and_restores_it() -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    root.handlers.clear()
    root.setLevel(logging.WARNING)
    try:
        with capturing(logging.INFO):
            assert root.level == logging.INFO
            with capturing(logging.INFO):
                assert root.level == logging.INFO
            assert root.level == logging.INFO
        assert root.level == logging.WARNING
        root.addHandler(logging.NullHandler())
        with capturing(logging.INFO):  # configured: the user's level stands
            assert root.level == logging.WARNING
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
