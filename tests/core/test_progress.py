"""RunProgress: one line per node event without a terminal; logging above the live bars."""

from __future__ import annotations

import io
import logging
import re
import sys

import pytest
from rich.console import Console

from plait import Dag, DagRunner, inline
from plait.plugins import PluginHost
from plait.progress import RunProgress

pytestmark = pytest.mark.anyio


async def test_without_a_terminal_each_node_event_is_one_line() -> None:
    @inline
    def load(n: int) -> int:
        return n

    @inline
    def check(x: int) -> int:
        raise ValueError(f"bad {x}\nsecond line")

    dag = Dag("events")
    dag.node(load) >> dag.node(check)
    out = io.StringIO()
    host = PluginHost()
    with RunProgress(total=2, host=host, console=Console(file=out, width=200), events=True):
        result = await DagRunner(dag, host=host).run({"load": {"n": 3}})
    lines = [re.sub(r"^\d\d:\d\d:\d\d ", "", line) for line in out.getvalue().splitlines()]
    assert lines == [
        f"run {result.run_id} of events",
        "started   load",
        next(line for line in lines if line.startswith("completed load in ")),
        "started   check",
        "failed    check: ValueError: bad 3",
        f"run {result.run_id} failed",
    ]
    assert re.fullmatch(r"completed load in \d+ ms", lines[2])


async def test_a_terminal_display_routes_logging_handlers_above_the_bars() -> None:
    log = logging.getLogger("tests.progress")
    log.setLevel(logging.INFO)
    # what a handler made at import holds on to (stdout here: pytest's stderr is no terminal,
    # and a stderr that is no terminal, such as 2>file, is left alone)
    terminal = sys.stdout
    handler = logging.StreamHandler(terminal)
    handler.setFormatter(logging.Formatter("LOG %(message)s"))
    log.addHandler(handler)
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)

    def work(n: int) -> int:
        log.info("working on %d", n)
        print(f"printed {n}")
        return n

    dag = Dag("above")
    dag.node(work)
    host = PluginHost()
    try:
        with RunProgress(total=1, host=host, console=console):
            assert handler.stream is not terminal  # through the console while it is live
            await DagRunner(dag, host=host).run({"work": {"n": 5}})
        assert handler.stream is terminal  # and back afterwards
    finally:
        log.removeHandler(handler)
        log.setLevel(logging.NOTSET)
    text = out.getvalue()
    assert "LOG working on 5" in text and "printed 5" in text
