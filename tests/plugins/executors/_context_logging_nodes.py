"""Nodes that log without asking for a context, configured as an application would: a
``logging.Filter`` stamps every record with ``plait.current_context()``.

Run as a program (``python -c "import _context_logging_nodes as m; m.main()"``): the log
goes to the file named by ``CONTEXT_LOG``, the run id to stdout. Worker processes of the
``process`` executor import this module too, so their logging is configured the same way.
"""

from __future__ import annotations

import logging
import os

import anyio

import plait


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        ctx = plait.current_context()
        record.run_id = ctx.run_id if ctx else "-"
        record.node = ctx.node_label if ctx else "-"
        record.dag = ctx.dag_nsref if ctx else "-"
        return True


logging.basicConfig(
    filename=os.environ["CONTEXT_LOG"],
    level=logging.INFO,
    format="%(run_id)s %(dag)s %(node)s %(process)d %(message)s",
)
for handler in logging.getLogger().handlers:
    handler.addFilter(ContextFilter())
log = logging.getLogger(__name__)


@plait.inline
def on_loop(x: int) -> int:
    log.info("on the event loop")
    return x + 1


def on_thread(x: int) -> int:
    log.info("on a worker thread")
    return x + 1


def in_process(x: int) -> int:
    log.info("in a worker process")
    return x + 1


async def run() -> str:
    dag = plait.Dag("logged")
    (
        dag.node(on_loop)
        >> dag.node(on_thread, executor="thread")
        >> dag.node(in_process, executor="process")
    )
    result = await plait.DagRunner(dag).run({"on_loop": {"x": 1}})
    assert result.ok, result.error
    assert result.outputs == {"in_process": 4}
    log.info("after the run")
    return result.run_id


def main() -> None:
    print(anyio.run(run, backend=os.environ.get("PLAIT_TEST_BACKEND", "asyncio")))
