"""First-party executors for plait: ``inline`` (on the event loop), ``thread`` and ``process``."""

from __future__ import annotations

from plait_executors.inline import InlineExecutor
from plait_executors.process import ProcessExecutor
from plait_executors.thread import ThreadExecutor

__all__ = ["InlineExecutor", "ProcessExecutor", "ThreadExecutor"]
