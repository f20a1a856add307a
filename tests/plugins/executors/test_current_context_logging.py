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
