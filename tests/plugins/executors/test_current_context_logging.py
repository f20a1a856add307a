"""``plait.current_context()`` answers in nodes that ask for no context, on every executor:
a logging filter configured at import (as applications do) stamps each record with the run
and the node, on the event loop, on a worker thread and in a worker process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("process")]

HERE = Path(__file__).parent


def test_a_log_filter_reads_the_current_context_on_every_executor(tmp_path: Path) -> None:
    log = tmp_path / "nodes.log"
    env = {
        **os.environ,
        "CONTEXT_LOG": str(log),
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", "import _context_logging_nodes as m; m.main()"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.strip()
    lines = [line.split(" ", 4) for line in log.read_text().splitlines()]
    by_message = {message: (rid, dag, node, int(pid)) for rid, dag, node, pid, message in lines}
    program = by_message["after the run"][3]
    assert by_message["after the run"][:3] == ("-", "-", "-")
    assert by_message["on the event loop"] == (run_id, "logged", "on_loop", program)
    assert by_message["on a worker thread"] == (run_id, "logged", "on_thread", program)
    rid, dag, node, pid = by_message["in a worker process"]
    assert (rid, dag, node) == (run_id, "logged", "in_process") and pid != program


def test_worker_process_log_lines_print_once_through_the_runners_logging(
    tmp_path: Path,
) -> None:
    """A module that calls logging.basicConfig at import configures the worker processes
    too; their node lines must not print there (straight onto the terminal, under the
    runner's progress display) but once, through the runner process's logging."""
    pytest.importorskip("plait_provenance_sqlite")  # the lines are kept when runs are recorded
    store = tmp_path / "runs.sqlite3"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    code = "import sys, _shipped_logging_nodes as m; sys.argv[1:] = [sys.argv[1]]; m.main()"
    done = subprocess.run(
        [sys.executable, "-c", code, str(store)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    program, run_id = done.stdout.split()
    lines = [
        line for line in done.stderr.splitlines() if "from worker" in line or "in worker" in line
    ]
    assert len(lines) == 2, done.stderr  # each once
    by_node = {}
    for line in lines:
        assert line.startswith("runner "), line  # printed by the runner, not by the worker
        prefixed_pid, node, message = line.split("|")
        prefix, pid = prefixed_pid.split(" ")
        assert prefix == "runner", line  # printed by the runner's handler, not the worker's
        worker = message.rsplit(" ", 1)[1]
        assert pid == worker != program, line  # naming the worker that logged it
        by_node[node] = message
    assert sorted(by_node) == ["failing", "in_process"]

    async def stored() -> list[str]:
        from plait_provenance_sqlite import SqliteProvenance

        async with SqliteProvenance(store) as prov:
            return [r.message for r in await prov.get_logs(run_id)]

    import anyio

    messages = anyio.run(stored)
    assert sorted(m.split(" worker ")[0] for m in messages) == [
        "about to fail in",
        "hello from",
    ]  # kept once each in the store
