"""Logs on the screen and in the store, through the real ``plait`` console script.

The terminal tests run ``plait run`` under a pseudo-terminal (so the live progress display
is on, as for a person at a terminal) and feed everything it wrote into a terminal emulator:
what they assert is the screen as a person sees it, not the bytes.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BACKEND = os.environ.get("PLAIT_TEST_BACKEND", "asyncio")
PLAIT = Path(sys.executable).with_name("plait")
COLS, ROWS = 110, 60


def _load_terminal_capture() -> ModuleType:
    """``docs/gen/terminal_capture.py``: runs a command under a pseudo-terminal and reads
    the screen back through a terminal emulator (pyte)."""
    path = Path(__file__).parents[2] / "docs" / "gen" / "terminal_capture.py"
    spec = importlib.util.spec_from_file_location("plait_docs_terminal_capture", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


TERMINAL = _load_terminal_capture()

Plait = Callable[..., Any]

# Set up the way users do: basicConfig at import of their module (its handler holds on to
# the stderr it finds then). Six nodes, each logging, one printing, some in parallel.
LOGGING_PIPELINE = """
import logging
import sys
import time

from plait import Dag

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
log = logging.getLogger("chatty")


def _step(name: str, n: int) -> int:
    for i in range(3):
        log.info("%s line %d of 3 (n=%d)", name, i + 1, n)
        time.sleep(0.12)
    return n + 1


def first(n: int) -> int:
    return _step("first", n)


def second(x: int) -> str:
    print(f"second prints {x}")
    return str(_step("second", x))


def third(x: int) -> float:
    return float(_step("third", x))


def fourth(s: str) -> int:
    return _step("fourth", len(s))


def fifth(f: float) -> bool:
    log.warning("fifth warns about %s", f)
    _step("fifth", int(f))
    return True


def sixth(count: int, ok: bool) -> str:
    _step("sixth", count)
    return "done"


with Dag("chatty") as dag:
    a, f = dag.node(first), dag.node(sixth)
    a >> dag.node(second) >> dag.node(fourth) >> f
    a >> dag.node(third) >> dag.node(fifth) >> f


def boom(n: int) -> int:
    log.info("boom starts with %d", n)
    log.warning("boom is about to fail")
    raise RuntimeError("boom failed on purpose")


with Dag("failing") as failing:
    dag_first = failing.node(first)
    dag_first >> failing.node(boom)


def slow(n: int) -> int:
    time.sleep(0.8)
    return n


def slower(x: int) -> int:
    time.sleep(0.8)
    return x


with Dag("slow") as slow_dag:
    slow_dag.node(slow) >> slow_dag.node(slower)
"""

EXPECTED_LINES = [
    f"INFO chatty: {name} line {i} of 3"
    for name in ("first", "second", "third", "fourth", "fifth", "sixth")
    for i in (1, 2, 3)
] + ["WARNING chatty: fifth warns about", "second prints 1"]


@pytest.fixture
def logging_project(project: Path) -> Path:
    (project / "chatty.py").write_text(LOGGING_PIPELINE)
    return project


def _env(project: Path) -> dict[str, str]:
    env = {**os.environ, "PLAIT_LOOP": BACKEND}
    for name in ("PLAIT_PROVENANCE", "NO_COLOR", "FORCE_COLOR", "COLUMNS", "LINES", "CI"):
        env.pop(name, None)
    return env


def run_in_terminal(args: list[str], cwd: Path) -> tuple[int, bytes]:
    """``plait args`` under a pseudo-terminal (the docs' capture code, shared)."""
    return TERMINAL.run_in_terminal([str(PLAIT), *args], cwd, env=_env(cwd), cols=COLS, rows=ROWS)


def screen_of(output: bytes) -> list[str]:
    """The lines of the screen a terminal shows after receiving ``output``."""
    screen = TERMINAL.screen_of(output, cols=COLS, rows=ROWS)
    return [line.rstrip() for line in screen.display]


def test_every_log_line_reaches_the_screen_under_the_live_display(
    logging_project: Path,
) -> None:
    code, output = run_in_terminal(["run", "chatty:dag", "-i", "first.n=0"], logging_project)
    screen = screen_of(output)
    text = "\n".join(screen)
    assert code == 0, text
    for expected in EXPECTED_LINES:
        found = [line for line in screen if expected in line]
        assert len(found) == 1, f"{expected!r} is on the screen {len(found)} times:\n{text}"
    # the log lines are whole lines above the final display, in the order they were emitted
    firsts = [
        screen.index(next(ln for ln in screen if f"{name} line 1" in ln))
        for name in ("first", "second", "fourth", "sixth")
    ]
    assert firsts == sorted(firsts), text
    # one progress bar, not a pile of stale copies
    bars = [line for line in screen if "run chatty" in line]
    assert len(bars) == 1, text
    assert "completed" in bars[0] and "6/6" in bars[0], text
    result = [line for line in screen if line.startswith("run ") and "completed in" in line]
    assert len(result) == 1, text
    assert screen.index(bars[0]) > max(screen.index(ln) for ln in screen if "line 3 of 3" in ln)


def test_a_failed_run_under_the_terminal_prints_its_id_and_the_restart_command(
    logging_project: Path,
) -> None:
    code, output = run_in_terminal(["run", "chatty:failing", "-i", "first.n=0"], logging_project)
    text = "\n".join(screen_of(output))
    assert code == 1, text
    assert "WARNING chatty: boom is about to fail" in text
    assert "error: run " in text and "RuntimeError: boom failed on purpose" in text
    run_id = text.split("error: run ", 1)[1].split()[0]
    assert f"plait restart {run_id}" in text
    assert "--dag" not in text.split(f"plait restart {run_id}", 1)[1].splitlines()[0]


def test_without_a_terminal_node_events_arrive_as_they_happen(logging_project: Path) -> None:
    """Under a pipe (``plait run ... | cat``, CI): one line per node event, flushed when it
    happens, not at the end."""
    started = time.monotonic()
    arrivals: list[tuple[float, str]] = []
    with subprocess.Popen(
        [str(PLAIT), "run", "chatty:slow_dag", "-i", "slow.n=1"],
        cwd=logging_project,
        env=_env(logging_project),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    ) as proc:
        assert proc.stdout is not None
        for raw in iter(proc.stdout.readline, b""):
            arrivals.append((time.monotonic() - started, raw.decode().rstrip()))
        code = proc.wait(timeout=60)
    ended = time.monotonic() - started
    lines = [line for _at, line in arrivals]
    assert code == 0, lines

    def when(*fragments: str) -> float:
        for at, line in arrivals:
            if all(f in line for f in fragments):
                return at
        raise AssertionError(f"no line with {fragments} in {lines}")

    assert when("started", "slow") < when("completed", "slow", " ms") < when("started", "slower")
    # each event is seen when it happens: the first node's completion about 0.8 s before
    # the run ends, not in a heap at the end
    assert ended - when("completed", "slow ") > 0.5, arrivals
    assert when("completed", "slower") - when("completed", "slow ") > 0.5, arrivals
    assert any("completed in" in line and line.startswith("run ") for line in lines), lines


def test_ctrl_c_prints_the_run_id_and_the_restart_command(logging_project: Path) -> None:
    with subprocess.Popen(
        [str(PLAIT), "run", "chatty:slow_dag", "-i", "slow.n=1"],
        cwd=logging_project,
        env=_env(logging_project),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        for raw in iter(proc.stdout.readline, b""):
            if b"started   slow" in raw:
                break
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=60)
    text = err.decode()
    assert proc.returncode == 130, (rest, text)
    run_id = text.split("run ", 1)[1].split()[0]
    assert f"run {run_id} cancelled; resume it: plait restart {run_id}" in text, text
    assert "error: interrupted" in text


def test_logs_and_show_print_the_stored_lines(plait: Plait, logging_project: Path) -> None:
    ok = plait("run", "chatty:dag", "-i", "first.n=0", "--json")
    assert ok.code == 0, ok
    run_id = ok.json()["run_id"]
    logs = plait("logs", run_id[:8])
    assert logs.code == 0, logs
    for name in ("first", "second", "third", "fourth", "fifth", "sixth"):
        for i in (1, 2, 3):
            assert sum(f"{name} line {i} of 3" in line for line in logs.out.splitlines()) == 1
    assert "fifth warns about 2.0" in logs.out and "WARNING" in logs.out
    one = plait("logs", run_id, "--node", "second", "--json")
    records = one.json()
    assert [r["message"] for r in records] == [f"second line {i} of 3 (n=1)" for i in (1, 2, 3)]
    assert {(r["label"], r["logger"], r["level"], r["attempt"]) for r in records} == {
        ("second", "chatty", 20, 1)
    }
    assert [r["seq"] for r in records] == [0, 1, 2]
    missing = plait("logs", run_id, "--node", "nope")
    assert missing.code == 2 and "'nope'" in missing.err, missing
    followed = plait("logs", run_id, "--follow", "--node", "sixth")
    assert followed.code == 0 and "sixth line 3 of 3" in followed.out, followed

    bad = plait("run", "chatty:failing", "-i", "first.n=0", "--json")
    assert bad.code == 1, bad
    bad_id = bad.json()["run_id"]
    shown = plait("show", bad_id)
    assert shown.code == 0, shown
    assert "node boom failed: builtins.RuntimeError: boom failed on purpose" in shown.out
    assert 'raise RuntimeError("boom failed on purpose")' in shown.out  # the traceback
    assert "last log lines of boom" in shown.out
    assert "boom is about to fail" in shown.out
    good = plait("show", run_id)
    assert "outputs" in good.out and "sixth = 'done'" in good.out, good
