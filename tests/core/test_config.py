"""Configuration files: load, check (every problem at once, with file and key), wiring."""

from __future__ import annotations

import logging
import shutil
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from plait import NullProvenance
from plait.cache import close_backends, stats
from plait.config import BackendConfig, check, load
from plait.errors import ConfigError, InputError, NsrefError, PlaitError

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "config"

pytest.importorskip("plait_cache_sqlite")
pytest.importorskip("plait_provenance_sqlite")


@pytest.fixture(autouse=True)
def _close_shared_backends() -> Iterator[None]:
    saved = list(sys.path)
    yield
    close_backends()
    sys.path[:] = saved


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The documented example, copied: its state files go beside the copy."""
    shutil.copytree(EXAMPLE, tmp_path / "project")
    return tmp_path / "project"


def write(tmp_path: Path, text: str, name: str = "plait.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ---------------------------------------------------------------------- the docs example
def test_the_documented_example_is_valid(project: Path) -> None:
    assert check(project / "pipeline.toml") == []


@pytest.mark.anyio
async def test_the_documented_example_runs_end_to_end_with_its_storage(project: Path) -> None:
    from plait_provenance_sqlite import SqliteProvenance

    with load(project / "pipeline.toml") as config:
        assert config.namespace.nsrefs() == [
            "weather:fetch_readings",
            "weather:summarise",
            "reports:fahrenheit",
            "reports:celsius",
        ]
        assert [n.nsref for n in config.namespace.query("report & ~critical")] == [
            "reports:fahrenheit"
        ]
        assert config.storage.provenance == BackendConfig(
            backend="sqlite", options={"path": str(project / "state" / "runs.sqlite3")}
        )
        assert config.triggers == {
            "nightly": {
                "kind": "schedule",
                "dag": "reports:fahrenheit",
                "cron": "0 3 * * *",
                "inputs": {"city": "Oslo"},
            }
        }

        result = await config.run("reports:fahrenheit", city="Oslo")
        assert result.status == "completed"
        assert result.outputs == {"format_line": "low 37.4°F, high 41.9°F"}

        # the cached entry is served through the configured cache file
        fetch = config.namespace.weather.fetch_readings
        assert fetch("Oslo") == fetch("Oslo") == [3.0, 3.5, 4.0, 4.5, 5.0, 5.5]
        cache = config.cache()
        assert cache is not None
        counts = stats(cache)["weather:fetch_readings"]
        assert (counts.misses, counts.hits, counts.entries) == (1, 1, 1)

    # the run is in the configured provenance file, under the entry's nsref
    assert (project / "state" / "cache.sqlite3").exists()
    store = SqliteProvenance(project / "state" / "runs.sqlite3")
    await store.open()
    try:
        runs = await store.list_runs()
        assert [(r.dag_nsref, r.status) for r in runs] == [("reports:fahrenheit", "completed")]
    finally:
        await store.aclose()


@pytest.mark.anyio
async def test_runner_and_provenance_follow_the_storage_section(project: Path) -> None:
    with load(project / "pipeline.toml") as config:
        runner = config.runner("reports:celsius")
        result = await runner.run(source_inputs={"fetch_readings": {"city": "Rome"}})
        assert result.outputs == {"format_line": "low 3.0°C, high 5.5°C"}
        store = config.provenance()
        assert store is not None
        await store.open()
        try:
            assert (await store.get_run(result.run_id)).status == "completed"
        finally:
            await store.aclose()
        with pytest.raises(InputError, match="no source node takes 'town'"):
            await config.run("reports:celsius", town="Rome")


def test_configure_logging_sets_the_root_level(project: Path) -> None:
    root = logging.getLogger()
    before = root.level
    try:
        with load(project / "pipeline.toml") as config:
            config.configure_logging()
            assert root.level == logging.WARNING
    finally:
        root.setLevel(before)


def test_a_config_without_storage_uses_the_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, '[[entries]]\ngref = "_fragments:one"\nnsref = "x:one"\n')
    with load(path) as config:
        assert config.provenance() is None and config.cache() is None
        assert config.namespace.x.one(3) == 3
        assert isinstance(config.runner(_dag()).provenance, NullProvenance)
        with pytest.raises(NsrefError, match="'x:one' is a callable, not a DAG"):
            config.dag("x:one")
        with pytest.raises(NsrefError, match="nothing is registered at nsref 'x:two'"):
            config.dag("x:two")


def _dag():  # type: ignore[no-untyped-def]
    from plait import Dag

    dag = Dag("d")
    dag.node(lambda: 1)
    return dag


# ---------------------------------------------------------------------- bad files
BAD = """\
pythonpath = "not a list"
entrys = []

[storage]
log_level = "LOUD"
provenance = { backend = "no_such_store" }
cache = { backend = "sqlite", pth = "c.sqlite3" }
extra = 1

[[entries]]
gref = "_fragments:nope"

[[entries]]
gref = "_fragments:one"
nsref = "a:one"
tags = ["ok", "not ok"]

[[entries]]
gref = "_fragments:two"
cache = { min_ttl = 1, max_tll = 2 }

[[entries]]
gref = "_fragments:broken_dag"

[[modules]]
module = "_not_a_module"

[triggers.nightly]
cron = "0 3 * * *"
"""


def test_check_reports_every_problem_with_file_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, BAD.replace("_fragments:broken_dag", "_config_dags:broken"))
    (tmp_path / "_config_dags.py").write_text(BROKEN_DAG)
    text = path.read_text().replace('pythonpath = "not a list"', 'pythonpath = ["."]\nbad = 1')
    path.write_text(text)
    problems = check(path)
    keys = [p.key for p in problems]
    assert all(p.file == str(path) for p in problems)
    assert "bad" in keys and "entrys" in keys
    assert "storage.extra" in keys
    assert "storage.log_level" in keys
    assert "storage.provenance" in keys  # not installed: lists the installed ones
    assert "storage.cache" in keys  # the sqlite cache rejects the option 'pth'
    assert "entries[0]" in keys  # the gref does not import
    assert "entries[1].tags" in keys
    assert "entries[2].cache.max_tll" in keys
    assert "entries[3]" in keys  # the DAG does not validate
    assert "modules[0]" in keys
    assert "triggers.nightly" in keys
    assert "trigger 'nightly': missing 'dag'" in "\n".join(str(p) for p in problems)
    messages = "\n".join(str(p) for p in problems)
    assert f"{path}: entries[0]: gref '_fragments:nope': 'nope' not found" in messages
    assert "no provenance backend named 'no_such_store' (installed:" in messages
    assert "DAG 'broken': node 'needs': required parameter missing: int" in messages
    assert "'LOUD' is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL" in messages
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert caught.value.problems == tuple(problems)
    assert isinstance(caught.value, PlaitError)


BROKEN_DAG = """\
from plait import Dag, dag_factory


def needs(missing: int) -> int:
    return missing


def make() -> str:
    return "x"


@dag_factory
def broken() -> Dag:
    dag = Dag("broken")
    dag.node(make) >> dag.node(needs)
    return dag
"""


@pytest.mark.parametrize(
    ("name", "text", "words"),
    [
        ("plait.toml", "entries = [\n", "not valid TOML"),
        ("plait.json", "{}", "unknown file type '.json'"),
        ("plait.toml", "entries = 3\n", "must be a list of tables"),
        ("plait.yaml", "entries: [\n", "not valid YAML"),
        ("plait.yaml", "- just a list\n", "must be a table"),
    ],
)
def test_unreadable_files_are_one_problem(tmp_path: Path, name: str, text: str, words: str) -> None:
    problems = check(write(tmp_path, text, name))
    assert len(problems) == 1 and words in problems[0].message
    assert str(problems[0]).startswith(str(tmp_path / name))


def test_a_missing_file_is_a_problem(tmp_path: Path) -> None:
    [problem] = check(tmp_path / "nothing.toml")
    assert "cannot read the file" in problem.message


def test_yaml_is_read_when_pyyaml_is_installed(tmp_path: Path) -> None:
    pytest.importorskip("yaml")
    path = write(
        tmp_path,
        "entries:\n  - gref: _fragments:one\n    nsref: y:one\n    tags: [a]\n",
        "plait.yaml",
    )
    with load(path) as config:
        assert config.namespace.get("y:one").tags == {"a"}


def test_yaml_without_pyyaml_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "yaml", None)  # import yaml -> ImportError
    [problem] = check(write(tmp_path, "entries: []\n", "plait.yml"))
    assert "pip install pyyaml" in problem.message


def test_relative_backend_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    sub = tmp_path / "conf"
    sub.mkdir()
    path = write(sub, '[storage.cache]\nbackend = "sqlite"\npath = "c.sqlite3"\n')
    with load(path) as config:
        assert config.storage.cache == BackendConfig(
            backend="sqlite", options={"path": str(sub.resolve() / "c.sqlite3")}
        )


def test_sqlite_paths_in_the_state_dir_are_created_on_use(project: Path) -> None:
    with load(project / "pipeline.toml") as config:
        config.namespace.weather.fetch_readings("Oslo")
    conn = sqlite3.connect(project / "state" / "cache.sqlite3")
    assert conn.execute("SELECT count(*) FROM entries").fetchone() == (1,)
    conn.close()
