"""The benchmark code must not rot: run plait's side of every case at tiny sizes.

Peers are not installed in the test environment; only plait's subjects run here.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from functools import partial
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load_runner() -> ModuleType:
    spec = importlib.util.spec_from_file_location("plait_bench_run", BENCH / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


bench = _load_runner()
pc = sys.modules["plait_cases"]
peers = sys.modules["peer_cases"]
drivers = sys.modules["peer_drivers"]


def _case(key: str, size: int, *setups: tuple[str, object]) -> object:
    return bench.Case(key, f"{key} {size}", size, "unit", [bench.Subject(*s) for s in setups])


def test_every_case_is_built_with_plait_first() -> None:
    cases = bench.build_cases(quick=True)
    assert {c.key for c in cases} == set(bench.CASE_KEYS)
    assert all(c.subjects[0].lib == "plait" for c in cases)
    assert [c.key for c in bench.build_cases(quick=True, only=["fanout"])] == ["fanout"]


@pytest.mark.anyio
async def test_plait_cases_run_at_tiny_sizes() -> None:
    cases = [
        _case("chain", 20, ("plait", partial(pc.plait_chain, 20))),
        _case("chain_sqlite", 20, ("plait", partial(pc.plait_chain, 20, sqlite=True))),
        _case(
            "chain_sqlite",
            10,
            ("plait", partial(pc.plait_chain, 10, sqlite=True, synchronous="full")),
            ("commit floor", partial(peers.sqlite_commit_floor, 10, "full")),
        ),
        _case(
            "durable_one",
            3,
            ("plait", partial(pc.plait_durable_one, 3)),
            ("plait, store per run", partial(pc.plait_durable_one, 3, held_open=False)),
            ("3-commit floor", partial(peers.sqlite_run_floor, 3)),
        ),
        _case("map_sqlite", 20, ("plait", partial(pc.plait_map, 20, sqlite=True))),
        _case("fanout", 5, ("plait", partial(pc.plait_fanout, 5))),
        _case("map", 50, ("plait", partial(pc.plait_map, 50))),
        _case("cache_hit", 20, ("plait", partial(pc.plait_cache_hits, 20))),
        _case("cache_miss", 20, ("plait", partial(pc.plait_cache_misses, 20))),
        _case(
            "thread",
            10,
            ("plait", partial(pc.plait_chain, 10, threaded=True)),
            ("to_thread floor", partial(pc.bare_to_thread, 10)),
        ),
    ]
    results = await bench.run_cases(cases, reps=1, cap=30.0)
    for m in results:
        assert m.error is None, (m.case, m.lib, m.error)
        assert not m.capped
        assert len(m.times) == 1 and m.per_unit_us > 0
    assert set(bench.ratios(results)) == {
        ("chain_sqlite", 10, "commit floor"),
        ("durable_one", 3, "plait, store per run"),
        ("durable_one", 3, "3-commit floor"),
        ("thread", 10, "to_thread floor"),
    }
    assert len(bench.rows(results)) == len(results)


@pytest.mark.anyio
async def test_a_broken_or_slow_subject_is_reported_not_fatal() -> None:
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def broken():  # type: ignore[no-untyped-def]
        raise ImportError("no module named 'peer'")
        yield  # pragma: no cover

    @asynccontextmanager
    async def forever():  # type: ignore[no-untyped-def]
        import anyio

        async def once() -> None:
            await anyio.sleep(10)

        yield once

    case = _case(
        "chain", 20, ("plait", partial(pc.plait_chain, 20)), ("peer", broken), ("slow", forever)
    )
    plait, peer, slow = await bench.measure_case(case, reps=1, cap=0.05)
    assert plait.error is None and plait.times
    assert peer.error == "ImportError: no module named 'peer'"
    assert slow.capped and "cut off" in slow.note


def test_main_writes_json_and_evaluates_targets(tmp_path: Path) -> None:
    out = tmp_path / "latest.json"
    assert bench.main(["--quick", "--only", "scale", "--reps", "1", "--output", str(out)]) == 0
    payload = json.loads(out.read_text())
    assert [(r["size"], r["lib"]) for r in payload["results"]] == [
        (1_000, "plait"),
        (1_000, "build floor"),
        (10_000, "plait"),
        (10_000, "build floor"),
    ]
    assert all(r["per_unit_us"] > 0 and r["build_s"] > 0 for r in payload["results"])
    assert {t["target"] for t in payload["targets"]} >= {"chain 1,000: <= 10 us per node"}


def test_markdown_tables_hold_every_measurement_and_target(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "latest.json"
    argv = ["--quick", "--only", "scale", "--reps", "1", "--output", str(out), "--markdown"]
    assert bench.main(argv) == 0
    text = capsys.readouterr().out
    table = [line for line in text.splitlines() if line.startswith("| scaling")]
    assert len(table) == 2 and all(line.count("|") == len(bench.HEADER) + 1 for line in table)
    assert "| chain 10k -> 100k run time: <= 12x |" in text


def test_startup_and_memory_figures_are_measured_in_fresh_processes() -> None:
    sm = sys.modules["startup_memory"]
    assert 0 < sm.import_ms(reps=1) < 10_000
    assert 0 < sm.version_wall_s(reps=1) < 60
    assert 10 < sm.chain_peak_rss_mb(n=1_000, reps=1) < 10_000


CASES = [
    {"key": "chain_sqlite", "title": "chain of 10, SQLite provenance", "size": 10, "unit": "node"},
    {"key": "fanout", "title": "fan-out", "size": 5, "unit": "branch"},
    {"key": "map", "title": "map", "size": 10, "unit": "element"},
]
DRIVER = f"""
import sys
sys.path.insert(0, {str(BENCH / "peers")!r})
import contextlib
from protocol import Subject, run_driver

def subjects(request):
    for case in request["cases"]:
        if case["key"] == "fanout" and request.get("mode") == "crash":
            raise SystemExit("peer went away")
        if case["key"] == "fanout" and request.get("mode") == "raise":
            raise RuntimeError("server did not start")

        @contextlib.contextmanager
        def setup(size=case["size"]):
            def once():
                assert sum(range(size)) == size * (size - 1) // 2
                return 0.001
            yield once

        yield Subject(case, ("peer (outside)", "peer (inside)"), setup, "a note")

run_driver(subjects, ("pytest",))
"""


def _driver(tmp_path: Path, mode: str = "") -> object:
    script = tmp_path / "fake_driver.py"
    script.write_text(DRIVER)
    cases = {"chain_sqlite": None, "fanout": None}
    return drivers.Driver(
        "fake", str(script), ("peer (outside)", "peer (inside)"), cases, {"mode": mode}
    )


def test_a_peer_driver_reports_from_its_own_python(tmp_path: Path) -> None:
    found, env = drivers.run_driver(
        _driver(tmp_path), CASES, python=sys.executable, install_error=None, reps=2, cap=30
    )
    assert env["versions"]["pytest"] and env["sqlite"]
    assert [(r["key"], r["lib"]) for r in found] == [
        ("chain_sqlite", "peer (outside)"),
        ("chain_sqlite", "peer (inside)"),
        ("fanout", "peer (outside)"),
        ("fanout", "peer (inside)"),
    ]  # the map case is not the driver's
    outside, inside = found[:2]
    assert len(outside["times"]) == 2 and outside["first_s"] > 0 and not outside["error"]
    assert inside["times"] == [0.001, 0.001] and inside["note"] == "a note"


def test_a_peer_that_crashes_or_is_missing_is_reported_with_the_reason(tmp_path: Path) -> None:
    found, _ = drivers.run_driver(
        _driver(tmp_path, "crash"), CASES, python=sys.executable, install_error=None, reps=1, cap=30
    )
    assert [r.get("error") for r in found] == [
        None,
        None,
        "exit 1: peer went away",
        "exit 1: peer went away",
    ]
    raised, _ = drivers.run_driver(
        _driver(tmp_path, "raise"), CASES, python=sys.executable, install_error=None, reps=1, cap=30
    )
    assert [r.get("error") for r in raised][2:] == ["RuntimeError: server did not start"] * 2
    missing, _ = drivers.run_driver(
        _driver(tmp_path), CASES, python=None, install_error="no index", reps=1, cap=30
    )
    assert {r["error"] for r in missing} == {"not installed: no index"} and len(missing) == 4
    unset, _ = drivers.run_driver(
        _driver(tmp_path), CASES, python=None, install_error=None, reps=1, cap=30
    )
    assert all("no virtualenv for fake" in r["error"] for r in unset)
    gone, _ = drivers.run_driver(
        _driver(tmp_path), CASES, python=str(tmp_path / "nope"), install_error=None, reps=1, cap=30
    )
    assert all(r["error"].startswith("cannot start") for r in gone) and len(gone) == 4


def test_peer_rows_join_their_case_in_the_table(tmp_path: Path) -> None:
    plait = [bench.Measurement(c["key"], c["title"], c["size"], c["unit"], "plait") for c in CASES]
    for m in plait:
        m.times, m.cpu_times = [0.01], [0.01]
    found, _ = drivers.run_driver(
        _driver(tmp_path), CASES, python=sys.executable, install_error=None, reps=1, cap=30
    )
    peer_rows = [
        bench.Measurement(r["key"], r["title"], r["size"], r["unit"], r["lib"]) for r in found
    ]
    merged = bench.merge(plait, peer_rows)
    assert [(m.case, m.lib) for m in merged] == [
        ("chain_sqlite", "plait"),
        ("chain_sqlite", "peer (outside)"),
        ("chain_sqlite", "peer (inside)"),
        ("fanout", "plait"),
        ("fanout", "peer (outside)"),
        ("fanout", "peer (inside)"),
        ("map", "plait"),
    ]
