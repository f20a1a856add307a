"""``plait engine``, ``plait engine status``, ``plait triggers`` and ``plait fire``, end to
end: a real engine process, the console script in others."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _cli import BACKEND, PLAIT

Plait = Callable[..., Any]

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("engine-processes")]

CONFIG = """
[triggers.every-second]
dag = "pipe:dag"
cron = "* * * * * *"
inputs = { day = "2026-01-01" }

[triggers.by-hand]
dag = "pipe:dag"
max_active_runs = 2

[triggers.dormant]
dag = "pipe:dag"
cron = "0 3 * * *"
timezone = "Europe/Berlin"
active = false
"""


@pytest.fixture
def config(project: Path) -> Path:
    path = project / "plait.toml"
    path.write_text(CONFIG)
    return path


@pytest.fixture
def engine_proc(project: Path, config: Path) -> Iterator[subprocess.Popen[str]]:
    env = {**os.environ, "PLAIT_LOOP": BACKEND}
    env.pop("PLAIT_PROVENANCE", None)
    with (project / "engine.err").open("w") as err:
        proc = subprocess.Popen(
            [str(PLAIT), "engine", "--config", str(config), "--store", "db.sqlite", "--grace", "1"],
            cwd=project,
            env=env,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.communicate(timeout=30)


def _wait(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_engine_fires_and_the_cli_sees_it(
    plait: Plait, engine_proc: subprocess.Popen[str], config: Path
) -> None:
    def listed() -> list[dict[str, Any]]:
        result = plait("triggers", "--store", "db.sqlite", "--json")
        return result.json() if result.code == 0 and result.out.strip() else []

    _wait(lambda: any(t["last_outcome"] == "completed" for t in listed()), "a scheduled run")
    by_name = {t["name"]: t for t in listed()}
    assert set(by_name) == {"every-second", "by-hand", "dormant"}
    assert by_name["every-second"]["next_fire_at"] is not None
    assert by_name["dormant"]["active"] is False

    fired = plait(
        "fire",
        "by-hand",
        "--payload",
        '{"day": "2026-03-05", "n": 2}',
        "--wait",
        "--timeout",
        "30",
        "--store",
        "db.sqlite",
        "--json",
    )
    assert fired.code == 0, fired
    record = fired.json()
    assert record["outcome"] == "completed"
    shown = plait("show", record["run_id"], "--store", "db.sqlite", "--json")
    assert shown.code == 0, shown
    assert shown.json()["run"]["correlation_id"] == record["fire_id"]

    status = plait("engine", "status", "--store", "db.sqlite", "--json")
    assert status.code == 0, status
    engines = status.json()["engines"]
    assert [e["pid"] for e in engines if e["alive"]] == [engine_proc.pid]

    table = plait("triggers", "--store", "db.sqlite")
    assert table.code == 0, table
    assert "every-second" in table.out and "0 3 * * * (Europe/Berlin)" in table.out

    engine_proc.send_signal(signal.SIGTERM)
    engine_proc.communicate(timeout=30)
    err = (config.parent / "engine.err").read_text()
    assert engine_proc.returncode == 0, err
    assert "stopped" in err
    status = plait("engine", "status", "--store", "db.sqlite")
    assert "no engine is running" in status.out


def test_activate_and_deactivate_persist(plait: Plait, config: Path) -> None:
    # define the triggers without an engine: start one and stop it at once
    env = {**os.environ, "PLAIT_LOOP": BACKEND}
    proc = subprocess.Popen(
        [str(PLAIT), "engine", "--config", str(config), "--store", "db.sqlite"],
        cwd=config.parent,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait(
            lambda: (
                plait("triggers", "--store", "db.sqlite", "--json").out.strip() not in ("", "[]")
            ),
            "triggers",
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert plait("triggers", "deactivate", "every-second", "--store", "db.sqlite").code == 0
    assert plait("triggers", "activate", "dormant", "--store", "db.sqlite").code == 0
    active = {
        t["name"]: t["active"] for t in plait("triggers", "--store", "db.sqlite", "--json").json()
    }
    assert active == {"by-hand": True, "dormant": True, "every-second": False}
    inactive = plait("fire", "every-second", "--store", "db.sqlite")
    assert inactive.code == 2
    assert "trigger 'every-second' is inactive" in inactive.err
    # no engine runs: the fire is recorded, the user is told, --wait gives up after --timeout
    waiting = plait("fire", "by-hand", "--wait", "--timeout", "0.5", "--store", "db.sqlite")
    assert waiting.code == 1
    assert "of trigger 'by-hand': requested" in waiting.out
    assert "no engine is running" in waiting.err


def test_fire_bad_input(plait: Plait, config: Path) -> None:
    for command in (["fire", "nope"], ["triggers"], ["engine", "status"]):
        missing = plait(*command, "--store", "db.sqlite")  # a mistyped path creates nothing
        assert missing.code == 2 and "File 'db.sqlite' does not exist" in missing.err, missing
        assert not (config.parent / "db.sqlite").exists()
    assert plait("run", "pipe:dag", "-i", "day=2026-03-01", "--store", "db.sqlite").code == 0
    unknown = plait("fire", "nope", "--store", "db.sqlite")
    assert unknown.code == 2
    assert "no trigger named 'nope'" in unknown.err and "Traceback" not in unknown.err
    bad = plait("fire", "by-hand", "--payload", "{not json", "--store", "db.sqlite")
    assert bad.code == 2 and "--payload" in bad.err and "not JSON" in bad.err
    not_object = plait("fire", "by-hand", "--payload", "[1, 2]", "--store", "db.sqlite")
    assert not_object.code == 2 and "JSON object" in not_object.err
    config.write_text('[triggers.bad]\ndag = "pipe:dag"\ncron = "61 * * * *"\n')
    malformed = plait("engine", "--config", str(config), "--store", "db.sqlite")
    assert malformed.code == 2
    assert "trigger 'bad': malformed cron expression '61 * * * *'" in malformed.err
    no_section = config.parent / "empty.toml"
    no_section.write_text('pythonpath = ["."]\n')
    assert "has no [triggers] section" in plait("engine", "--config", str(no_section)).err
    unknown_key = config.parent / "typo.toml"
    unknown_key.write_text('[trigers.daily]\ndag = "pipe:dag"\n')
    typo = plait("engine", "--config", str(unknown_key))
    assert typo.code == 2 and "trigers" in typo.err and "Traceback" not in typo.err
