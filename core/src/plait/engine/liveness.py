"""Is an engine still running? One answer for the engine (whose runs to adopt), ``plait
engine status`` and the web view."""

from __future__ import annotations

import os
import socket
from datetime import datetime
from typing import Final

from plait.triggers import EngineRecord

__all__ = ["ALIVE_WITHIN", "engine_alive", "pid_alive"]

#: seconds since its last heartbeat after which an engine is taken for dead (an engine
#: beats every second or so; the engine's own ``lease`` is the same 30 s by default)
ALIVE_WITHIN: Final = 30.0

_HOST: Final = socket.gethostname()


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine (one we may not signal counts)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def engine_alive(record: EngineRecord, now: datetime, *, within: float = ALIVE_WITHIN) -> bool:
    """Whether the engine ``record`` still runs: not stopped, its process present when it
    runs on this machine, and its last heartbeat at most ``within`` seconds before
    ``now``."""
    if record.stopped_at is not None:
        return False
    if record.host == _HOST and not pid_alive(record.pid):
        return False
    return (now - record.heartbeat_at).total_seconds() <= within
