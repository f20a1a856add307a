"""``plait --config FILE``: runs by nsref with the file's storage; ``plait config check``;
pushbacks in ``plait cache``."""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from _cli import BACKEND, PLAIT, Result

EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "config"

pytest.importorskip("plait_provenance_sqlite")
pytest.importorskip("plait_cache_sqlite")

Plait = Callable[..., Result]


@pytest.fixture
def configured(project: Path) -> Path:
    """The documented example project, copied into the working directory."""
    for item in EXAMPLE.iterdir():
        shutil.copy(item, project / item.name)
    return project / "pipeline.toml"


def test_run_by_nsref_records_in_the_configured_store(plait: Plait, configured: Path) -> None:
    done = plait(
        "--config", "pipeline.toml", "run", "reports:fahrenheit", "--input",
        "fetch_readings.city=Oslo", "--json",
    )  # fmt: skip
    assert done.code == 0, done
    result = done.json()
    assert result["status"] == "completed"
    assert result["outputs"] == {"format_line": "low 37.4°F, high 41.9°F"}

    store = configured.parent / "state" / "runs.sqlite3"
    assert store.exists()
    listed = plait("runs", "--store", str(store), "--json").json()
    assert [(r["run_id"], r["dag_nsref"]) for r in listed] == [
        (result["run_id"], "reports:fahrenheit")
    ]
    # with the config, the store is the configured one without --store
    shown = plait("--config", "pipeline.toml", "runs", "--json")
    assert shown.code == 0, shown
    assert [r["run_id"] for r in shown.json()] == [result["run_id"]]


def test_config_from_the_environment_and_module_refs_still_work(
    plait: Plait, configured: Path
) -> None:
    env = {"PLAIT_CONFIG": str(configured)}
    graph = plait("graph", "reports:celsius", env=env)
    assert graph.code == 0, graph
    assert "fetch_readings" in graph.out and "format_line" in graph.out
    # not in the namespace: MODULE:DAG as before, recorded in the configured store
    done = plait("run", "pipe:dag", "--input", "load.day=2024-05-03", "--json", env=env)
    assert done.code == 0, done
    assert (configured.parent / "state" / "runs.sqlite3").exists()


def test_restart_by_nsref(plait: Plait, configured: Path) -> None:
    text = configured.read_text()
    configured.write_text(
        text.replace(
            'gref = "weather:report"\nnsref = "reports:celsius"',
            'gref = "gate:gated"\nnsref = "reports:gated"',
        )
    )
    (configured.parent / "gate.py").write_text(GATE)
    first = plait(
        "--config", "pipeline.toml", "run", "reports:gated", "-i", "fetch_readings.city=Oslo"
    )
    assert first.code == 3, first  # paused
    found = re.search(r"\brun ([0-9a-f]{32})", first.out)
    assert found is not None, first
    run_id = found.group(1)
    # the run records its DAG as the config's NSREF: restarting it needs no --dag
    hint = f"resume it: plait --config pipeline.toml restart {run_id}\n"
    assert hint in first.out
    (configured.parent / "open").write_text("")
    again = plait("--config", "pipeline.toml", "restart", run_id, "--json")
    assert again.code == 0, again
    assert again.json()["outputs"] == {"approve": 5.5}


GATE = """
from pathlib import Path

from plait import Dag, DagPause, dag_factory
from weather import fetch_readings


@dag_factory
def gated() -> Dag:
    def approve(readings: list[float]) -> float:
        if not Path("open").exists():
            raise DagPause("waiting")
        return max(readings)

    dag = Dag("gated")
    dag.node(fetch_readings) >> dag.node(approve)
    return dag
"""


def test_config_check_ok_and_every_problem(plait: Plait, configured: Path) -> None:
    ok = plait("config", "check", "pipeline.toml")
    assert ok.code == 0, ok
    assert ok.out.strip() == "pipeline.toml: ok"

    configured.write_text(
        configured.read_text()
        .replace(
            'gref = "weather:report"\nnsref = "reports:celsius"',
            'gref = "weather:reprot"\nnsref = "reports:celsius"',
        )
        .replace(
            'backend = "sqlite"\npath = "state/cache.sqlite3"', 'backend = "sqlite"\npth = "x"'
        )
        .replace('module = "weather"', 'modul = "weather"')
    )
    bad = plait("config", "check", "pipeline.toml")
    assert bad.code == 2, bad
    assert "pipeline.toml: 4 problems" in bad.err
    assert (
        "storage.cache: cache backend 'sqlite' from plait-cache-sqlite rejected options ['pth']"
        in bad.err
    )
    assert "modules[0].modul: unknown key 'modul'; did you mean 'module'?" in bad.err
    assert "modules[0].module: is required" in bad.err
    assert "entries[1]: gref 'weather:reprot': 'reprot' not found" in bad.err
    as_json = plait("config", "check", "pipeline.toml", "--json")
    assert as_json.code == 2
    assert {p["key"] for p in as_json.json()} == {
        "storage.cache",
        "modules[0].modul",
        "modules[0].module",
        "entries[1]",
    }
    assert all(p["file"] == "pipeline.toml" for p in as_json.json())


def test_an_invalid_config_stops_any_command_with_its_problems(
    plait: Plait, configured: Path
) -> None:
    configured.write_text(configured.read_text().replace("[storage]", "[storgae]"))
    done = plait("--config", "pipeline.toml", "run", "reports:celsius")
    assert done.code == 2, done
    assert "error: invalid configuration (1 problem)" in done.err
    assert "storgae: unknown key 'storgae'; did you mean 'storage'?" in done.err
    assert "Traceback" not in done.err


def test_config_check_of_a_missing_file(plait: Plait) -> None:
    done = plait("config", "check", "nothing.toml")
    assert done.code == 2
    assert "nothing.toml: 1 problem" in done.err and "cannot read the file" in done.err


def test_cache_pushback_shown_in_stats(plait: Plait, configured: Path) -> None:
    cfg = ("--config", "pipeline.toml")
    ran = plait(*cfg, "run", "reports:celsius", "-i", "fetch_readings.city=Oslo")
    assert ran.code == 0, ran
    pushed = plait(*cfg, "cache", "pushback", "weather", "6h", "--json")
    assert pushed.code == 0, pushed
    assert pushed.json()["prefix"] == "weather"
    stats = plait(*cfg, "cache", "stats", "--json").json()
    assert stats["pushbacks"] == [{"prefix": "weather", "until": pushed.json()["until"]}]
    text = plait(*cfg, "cache", "stats")
    assert "PUSHBACK PREFIX" in text.out and "weather" in text.out
    # the pushback is in the configured cache file
    conn = sqlite3.connect(configured.parent / "state" / "cache.sqlite3")
    assert [row[0] for row in conn.execute("SELECT prefix FROM pushbacks")] == ["weather"]
    conn.close()
    lifted = plait(*cfg, "cache", "pushback", "weather", "--lift")
    assert lifted.code == 0 and "lifted" in lifted.out
    assert plait(*cfg, "cache", "stats", "--json").json()["pushbacks"] == []
    bad = plait(*cfg, "cache", "pushback", "weather", "soon")
    assert bad.code == 2 and "'soon' is not a duration" in bad.err


@pytest.mark.slow
@pytest.mark.xdist_group("engine-processes")
def test_engine_runs_the_configs_triggers_by_nsref_in_its_store(
    plait: Plait, configured: Path
) -> None:
    """`plait engine --config FILE`: the trigger's DAG is an nsref of the file's namespace,
    runs and trigger state go to the file's store; `plait --config FILE fire` finds it."""
    project = configured.parent
    env = {**os.environ, "PLAIT_LOOP": BACKEND, "HOME": str(project)}
    env.pop("PLAIT_PROVENANCE", None)
    with (project / "engine.err").open("w") as err:
        engine = subprocess.Popen(
            [str(PLAIT), "engine", "--config", "pipeline.toml", "--grace", "1"],
            cwd=project,
            env=env,
            stderr=err,
            text=True,
        )
    try:
        deadline = time.monotonic() + 60
        while "nightly" not in plait("--config", "pipeline.toml", "triggers").out:
            assert engine.poll() is None, (project / "engine.err").read_text()
            assert time.monotonic() < deadline, "the engine never defined its triggers"
            time.sleep(0.2)
        fired = plait(
            "--config", "pipeline.toml", "fire", "nightly", "--wait", "--timeout", "60", "--json"
        )  # fmt: skip
        assert fired.code == 0, (fired, (project / "engine.err").read_text())
        record = fired.json()
        assert record["outcome"] == "completed", record
        store = project / "state" / "runs.sqlite3"
        runs = plait("runs", "--store", str(store), "--json").json()
        assert [(r["run_id"], r["dag_nsref"], r["status"]) for r in runs] == [
            (record["run_id"], "reports:fahrenheit", "completed")
        ]
        shown = plait("show", record["run_id"], "--store", str(store), "--json").json()
        assert shown["run"]["correlation_id"] == record["fire_id"]
    finally:
        engine.send_signal(signal.SIGTERM)
        engine.communicate(timeout=30)
    assert engine.returncode == 0, (project / "engine.err").read_text()
