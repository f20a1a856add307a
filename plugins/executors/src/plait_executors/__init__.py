"""First-party executors for plait: ``inline`` (on the event loop) and ``thread``."""

from __future__ import annotations

from plait_executors.inline import InlineExecutor
from plait_executors.thread import ThreadExecutor

__all__ = ["InlineExecutor", "ThreadExecutor"]
