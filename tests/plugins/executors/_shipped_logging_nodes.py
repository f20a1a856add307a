"""A user's module that configures logging at import (as applications do), with nodes for
the process executor; ``main()`` runs them recorded, in the process that runs the DAG."""

from __future__ import annotations

import logging
import os
import sys

FORMAT = "%(process)d|%(plait_label)s|%(message)s"
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format=FORMAT)
log = logging.getLogger("shipped")


def in_process(x: int) -> int:
    log.info("hello from worker %d", os.getpid())
    return x + 1


def failing(y: int) -> int:
    log.warning("about to fail in worker %d", os.getpid())
    raise ValueError("boom")


def main() -> None:
    import anyio

    import plait
    from plait_provenance_sqlite import SqliteProvenance

    # only the program's own handler says "runner": a worker imports this module, not main
    for handler in logging.getLogger().handlers:
        handler.setFormatter(logging.Formatter("runner " + FORMAT))
    dag = plait.Dag("shipped")
    dag.node(in_process, executor="process")
    dag.node(failing, executor="process")

    async def go() -> None:
        runner = plait.DagRunner(dag, provenance=SqliteProvenance(sys.argv[1]))
        async with runner:
            result = await runner.run({"in_process": {"x": 1}, "failing": {"y": 2}})
        print(os.getpid(), result.run_id)

    anyio.run(go)
