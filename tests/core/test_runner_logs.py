"""The runner keeps the log lines of nodes: every kind of node, retries, bounds, restarts."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from _memory_backends import MemoryProvenance

from plait import Dag, DagPause, DagRunner, inline
from plait.context import DagContext
from plait.records import LogRecord

pytestmark = pytest.mark.anyio

log = logging.getLogger("tests.runner_logs")


@pytest.fixture(autouse=True)
def _debug_enabled() -> Iterator[None]:
    log.setLevel(logging.DEBUG)
    yield
    log.setLevel(logging.NOTSET)


async def _lines(prov: MemoryProvenance, run_id: str, label: str | None = None) -> list[LogRecord]:
    return await prov.get_logs(run_id, label)


async def test_lines_of_async_inline_and_thread_nodes_with_their_run_and_label() -> None:
    seen: list[tuple[str | None, str | None, str]] = []

    class Tags(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append((record.plait_run_id, record.plait_label, record.getMessage()))  # type: ignore[attr-defined]

    async def fetch(n: int) -> int:
        log.info("fetch %d", n)
        return n + 1

    @inline
    def double(x: int) -> int:
        log.info("double %d", x)
        return 2 * x

    def report(y: int) -> str:  # a thread of the thread executor
        log.info("report %d", y)
        log.debug("report detail")
        return str(y)

    dag = Dag("logs_kinds")
    dag.node(fetch) >> dag.node(double) >> dag.node(report)
    prov = MemoryProvenance()
    handler = Tags()
    log.addHandler(handler)
    try:
        result = await DagRunner(dag, provenance=prov).run({"fetch": {"n": 1}})
    finally:
        log.removeHandler(handler)
    assert result.outputs == {"report": "4"}
    lines = await _lines(prov, result.run_id)
    assert [(x.label, x.message, x.seq, x.attempt) for x in lines] == [
        ("fetch", "fetch 1", 0, 1),
        ("double", "double 2", 0, 1),
        ("report", "report 4", 0, 1),
    ]
    assert seen == [
        (result.run_id, "fetch", "fetch 1"),
        (result.run_id, "double", "double 2"),
        (result.run_id, "report", "report 4"),
        (result.run_id, "report", "report detail"),
    ]


async def test_each_try_of_a_retried_node_keeps_its_lines() -> None:
    tries: list[int] = []

    def flaky() -> str:
        tries.append(1)
        log.warning("try %d", len(tries))
        if len(tries) < 3:
            raise ConnectionError("not yet")
        return "ok"

    dag = Dag("logs_retries")
    dag.node(flaky, retries=3, retry_backoff=0.001)
    prov = MemoryProvenance()
    result = await DagRunner(dag, provenance=prov).run()
    assert result.ok
    lines = await _lines(prov, result.run_id)
    assert [(x.message, x.seq, x.attempt) for x in lines] == [
        ("try 1", 0, 1),
        ("try 2", 1, 2),
        ("try 3", 2, 3),
    ]


async def test_a_failed_node_keeps_the_lines_before_its_error_with_exception_text() -> None:
    def parse() -> int:
        log.info("parsing")
        try:
            int("x")
        except ValueError:
            log.exception("cannot parse")
            raise
        return 0

    dag = Dag("logs_failed")
    dag.node(parse)
    prov = MemoryProvenance()
    result = await DagRunner(dag, provenance=prov).run()
    assert not result.ok
    lines = await _lines(prov, result.run_id)
    assert [x.message for x in lines] == ["parsing", "cannot parse"]
    assert lines[1].exc_text is not None and "invalid literal for int()" in lines[1].exc_text


async def test_level_limit_and_none() -> None:
    @inline
    def chatty() -> int:
        for i in range(30):
            log.info("line %d", i)
        log.debug("debug line")
        return 1

    dag = Dag("logs_limits")
    dag.node(chatty)
    prov = MemoryProvenance()
    bounded = await DagRunner(dag, provenance=prov, log_limit=10).run()
    lines = await _lines(prov, bounded.run_id)
    assert len(lines) == 11 and [x.seq for x in lines] == list(range(11))
    assert lines[5].logger == "plait" and "20 log lines" in lines[5].message
    messages = [x.message for i, x in enumerate(lines) if i != 5]
    assert messages == [f"line {i}" for i in (0, 1, 2, 3, 4, 25, 26, 27, 28, 29)]

    debug = await DagRunner(dag, provenance=prov, log_level=logging.DEBUG).run()
    assert (await _lines(prov, debug.run_id))[-1].message == "debug line"
    info = await DagRunner(dag, provenance=prov).run()
    assert all(x.level >= logging.INFO for x in await _lines(prov, info.run_id))
    silent = await DagRunner(dag, provenance=prov, log_level=None).run()
    assert await _lines(prov, silent.run_id) == []
    with pytest.raises(ValueError, match="log_limit"):
        DagRunner(dag, log_limit=0)


async def test_a_restart_numbers_lines_on_from_the_earlier_attempt() -> None:
    approvals: list[bool] = []

    async def approve(ctx: DagContext) -> str:
        log.info("asking for approval")
        if not approvals:
            approvals.append(True)
            raise DagPause("waiting")
        log.info("approved")
        return "yes"

    dag = Dag("logs_restart")
    dag.node(approve)
    prov = MemoryProvenance()
    runner = DagRunner(dag, provenance=prov)
    paused = await runner.run()
    assert paused.status == "paused"
    done = await DagRunner(dag, provenance=prov).restart(paused.run_id)
    assert done.ok
    lines = await _lines(prov, paused.run_id)
    assert [(x.message, x.seq, x.attempt) for x in lines] == [
        ("asking for approval", 0, 1),
        ("asking for approval", 1, 2),
        ("approved", 2, 2),
    ]


async def test_lines_of_a_map_element_belong_to_its_sub_run() -> None:
    def square(x: int) -> int:
        log.info("squaring %d", x)
        return x * x

    element = Dag("logs_element")
    element.node(square)

    def items() -> list[int]:
        return [1, 2, 3]

    dag = Dag("logs_map")
    dag.node(items) >> dag.map(element, label="squares")
    prov = MemoryProvenance()
    result = await DagRunner(dag, provenance=prov).run()
    assert result.outputs == {"squares": [1, 4, 9]}
    assert await _lines(prov, result.run_id) == []
    subs = await prov.list_runs(parent_run_id=result.run_id)
    messages = []
    for sub in subs:
        messages += [x.message for x in await _lines(prov, sub.run_id)]
    assert sorted(messages) == ["squaring 1", "squaring 2", "squaring 3"]


async def test_a_held_runner_keeps_capturing_across_runs_and_stops_when_closed() -> None:
    """With ``async with``, an unconfigured root logger is lowered once for the runner's
    life (not lowered and restored around every run), and restored when it closes."""

    @inline
    def talk(x: int) -> int:
        log.info("talk %d", x)
        return x

    dag = Dag("logs_held")
    dag.node(talk)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    root.handlers.clear()
    root.setLevel(logging.WARNING)
    prov = MemoryProvenance()
    try:
        async with DagRunner(dag, provenance=prov) as runner:
            assert root.level == logging.INFO
            results = [await runner.run({"talk": {"x": i}}) for i in range(2)]
            assert root.level == logging.INFO
        assert root.level == logging.WARNING
        for i, result in enumerate(results):
            assert [x.message for x in await _lines(prov, result.run_id)] == [f"talk {i}"]
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
