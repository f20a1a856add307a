"""Nodes that log, for the tests of node log lines in the store: worker processes import
them from here (their logging is not configured: plait lets INFO records be created)."""

from __future__ import annotations

import logging
import os

log = logging.getLogger("logging_nodes")


def on_thread(n: int) -> int:
    log.info("thread node got %d", n)
    return n + 1


def in_process(x: int) -> int:
    log.info("process node got %d in pid %d", x, os.getpid())
    log.warning("process node warns")
    return x * 10


def failing_in_process(x: int) -> int:
    log.info("about to fail with %d", x)
    raise ValueError(f"bad value {x}")
