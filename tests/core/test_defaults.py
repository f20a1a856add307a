"""plait.defaults: explicit beats the environment beats the default; files resolve on use."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from plait import Dag, DagRunner, defaults
from plait.null import NullProvenance


def test_explicit_then_environment_then_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (defaults.EXECUTOR_ENV, defaults.PROVENANCE_ENV, defaults.CACHE_ENV):
        monkeypatch.delenv(var, raising=False)
    assert defaults.executor_name() == "thread"
    assert defaults.provenance_name() is None
    assert defaults.provenance_name(fallback=defaults.CLI_PROVENANCE) == "sqlite"
    assert defaults.cache_name() == "sqlite"

    monkeypatch.setenv("PLAIT_EXECUTOR", "inline")
    monkeypatch.setenv("PLAIT_PROVENANCE", "jsonl")
    monkeypatch.setenv("PLAIT_CACHE", "memory")
    assert defaults.executor_name() == "inline"
    assert defaults.provenance_name(fallback="sqlite") == "jsonl"
    assert defaults.cache_name() == "memory"
    assert defaults.executor_name("process") == "process"
    assert defaults.provenance_name("sqlite") == "sqlite"
    assert defaults.cache_name("sqlite") == "sqlite"

    monkeypatch.setenv("PLAIT_EXECUTOR", "")  # empty means unset
    assert defaults.executor_name() == "thread"


def test_default_files_follow_the_environment_when_called(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert defaults.provenance_path() == tmp_path / "data" / "plait" / "provenance.sqlite3"
    assert defaults.cache_path() == tmp_path / "cache" / "plait" / "cache.sqlite3"


@pytest.mark.anyio
async def test_the_runner_reads_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    def where() -> str:
        return threading.current_thread().name

    with Dag("defaults") as dag:
        dag.node(where)
    monkeypatch.delenv("PLAIT_PROVENANCE", raising=False)
    monkeypatch.setenv("PLAIT_EXECUTOR", "inline")
    runner = DagRunner(dag)
    assert isinstance(runner.provenance, NullProvenance)
    result = await runner.run()
    assert result.outputs == {"where": threading.current_thread().name}  # on the loop
    monkeypatch.setenv("PLAIT_EXECUTOR", "thread")
    result = await DagRunner(dag).run()
    assert result.outputs["where"] != threading.current_thread().name
