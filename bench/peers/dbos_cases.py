"""DBOS Transact (Python) on plait's durable cases, with a SQLite system database.

Run by ``bench/run.py`` in DBOS's own virtualenv (see :mod:`protocol` for the request on
stdin and the JSON lines on stdout). ``variant`` in the request chooses the database:

- ``default``: the SQLite file as DBOS opens it (its journal mode and ``synchronous``
  setting are SQLite's defaults, read back and shown in the note);
- ``wal``: the same with ``journal_mode=WAL`` and ``synchronous=NORMAL`` on every
  connection (plait's level), set by a ``sqlite3.Connection`` subclass passed as the
  connection factory; DBOS's own connect hook still runs.

Cases (every result checked before it is timed):

- ``chain_sqlite``: one workflow calling ``n - 1`` steps ``v + 1`` in sequence (``n`` steps
  with the workflow's own record, as plait's ``n``-node chain);
- ``fanout``: one async workflow gathering ``width`` async steps that sleep 10 ms;
- ``durable_one``: ``size`` runs of a workflow with one step (the per-run fixed cost).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from protocol import Subject, run_driver

CASES = ("chain_sqlite", "fanout", "durable_one")


class _WalConnection(sqlite3.Connection):
    """Every connection DBOS opens: WAL journal, ``synchronous=NORMAL``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.execute("PRAGMA journal_mode=WAL")
        self.execute("PRAGMA synchronous=NORMAL")


def _define(dbos_cls: Any) -> dict[str, Any]:
    """The workflows and steps, registered before launch (DBOS requires it)."""

    @dbos_cls.step()
    def inc(v: int) -> int:
        return v + 1

    @dbos_cls.workflow()
    def chain(n: int) -> int:
        v = 0  # the workflow's own record stands for the source node
        for _ in range(1, n):
            v = inc(v)
        return v

    @dbos_cls.step()
    async def branch(v: int) -> float:
        await asyncio.sleep(0.01)
        return v * 1.0

    @dbos_cls.workflow()
    async def fan(width: int) -> float:
        xs = await asyncio.gather(*[branch(1) for _ in range(width)])
        return sum(xs)

    @dbos_cls.step()
    def one(x: int) -> int:
        return x + 1

    @dbos_cls.workflow()
    def one_step(x: int) -> int:
        return one(x)

    return {"chain": chain, "fan": fan, "one_step": one_step}


@contextlib.contextmanager
def launched(variant: str) -> Iterator[tuple[Any, dict[str, Any], str, float]]:
    """DBOS launched on a fresh SQLite file; yields (DBOS, workflows, its SQLite settings as
    read back from its engine, seconds the launch took)."""
    from dbos import DBOS

    with tempfile.TemporaryDirectory(prefix="dbos-bench-") as tmp:
        config: dict[str, Any] = {
            "name": "plait-bench",
            "system_database_url": f"sqlite:///{Path(tmp) / 'dbos.sqlite'}",
            "run_admin_server": False,
            "log_level": "WARNING",  # no line per schema migration on the terminal
        }
        if variant == "wal":
            config["db_engine_kwargs"] = {"connect_args": {"factory": _WalConnection}}
        dbos = DBOS(config=config)  # type: ignore[arg-type]
        workflows = _define(DBOS)
        t0 = time.perf_counter()
        DBOS.launch()
        launch = time.perf_counter() - t0
        try:
            with dbos._sys_db.engine.connect() as conn:
                journal = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
                sync = conn.exec_driver_sql("PRAGMA synchronous").scalar()
            names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
            yield DBOS, workflows, f"{journal} journal, synchronous {names.get(sync, sync)}", launch
        finally:
            DBOS.destroy()


def subjects(request: dict[str, Any]) -> Iterator[Subject]:
    variant = request.get("variant", "default")
    lib = "dbos" if variant == "default" else "dbos wal+normal"
    wanted = [c for c in request["cases"] if c["key"] in CASES]
    if not wanted:
        return
    with launched(variant) as (dbos_cls, wf, settings, launch):
        for case in wanted:
            yield Subject(case, (lib,), _setup(dbos_cls, wf, case), settings, launch)


def _setup(dbos_cls: Any, wf: dict[str, Any], case: dict[str, Any]) -> Any:
    size = case["size"]

    @contextlib.contextmanager
    def chain() -> Iterator[Any]:
        def once() -> None:
            out = wf["chain"](size)
            assert out == size - 1, out

        yield once

    @contextlib.contextmanager
    def fan() -> Iterator[Any]:
        async def once() -> None:
            out = await wf["fan"](size)
            assert out == float(size), out

        yield once

    @contextlib.contextmanager
    def one_step() -> Iterator[Any]:
        def once() -> None:
            for i in range(size):
                out = wf["one_step"](i)
                assert out == i + 1, out

        yield once

    return {"chain_sqlite": chain, "fanout": fan, "durable_one": one_step}[case["key"]]


if __name__ == "__main__":
    run_driver(subjects, ("dbos", "sqlalchemy"))
