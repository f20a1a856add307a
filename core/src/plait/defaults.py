"""Which backends plait uses when you name none, and where their files go.

One place for every default: the runner, the command line and the cache read these
functions, so a default changes here and nowhere else.

| what | environment variable | default |
|---|---|---|
| executor of sync nodes | ``PLAIT_EXECUTOR`` | ``"thread"`` |
| provenance backend, library | ``PLAIT_PROVENANCE`` | none (nothing is recorded) |
| provenance backend, command line | ``PLAIT_PROVENANCE`` | ``"sqlite"`` |
| cache backend of ``@cached`` | ``PLAIT_CACHE`` | ``"sqlite"`` |

An explicit argument wins over the environment, which wins over the default. The
environment is read when a function is called, never at import. The default files
(:func:`provenance_path`, :func:`cache_path`) come from ``platformdirs`` and are also
computed when called: a backend resolves them when it opens.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "CACHE",
    "CACHE_ENV",
    "CLI_PROVENANCE",
    "EXECUTOR",
    "EXECUTOR_ENV",
    "PROVENANCE_ENV",
    "cache_name",
    "cache_path",
    "executor_name",
    "provenance_name",
    "provenance_path",
]

#: The environment variable naming the default executor.
EXECUTOR_ENV = "PLAIT_EXECUTOR"
#: The environment variable naming the default provenance backend.
PROVENANCE_ENV = "PLAIT_PROVENANCE"
#: The environment variable naming the default cache backend.
CACHE_ENV = "PLAIT_CACHE"

#: The executor of sync nodes when neither the node, the runner nor the environment names one.
EXECUTOR = "thread"
#: The provenance backend of the command line (a ``DagRunner`` records nothing by default).
CLI_PROVENANCE = "sqlite"
#: The cache backend of ``@cached`` callables.
CACHE = "sqlite"

_APP = "plait"


def _from_env(var: str) -> str | None:
    return os.environ.get(var) or None


def executor_name(explicit: str | None = None) -> str:
    """``explicit``, else ``$PLAIT_EXECUTOR``, else ``"thread"``."""
    return explicit or _from_env(EXECUTOR_ENV) or EXECUTOR


def provenance_name(explicit: str | None = None, *, fallback: str | None = None) -> str | None:
    """``explicit``, else ``$PLAIT_PROVENANCE``, else ``fallback``.

    The library passes no fallback (``None``: record nothing); the command line passes
    :data:`CLI_PROVENANCE`.
    """
    return explicit or _from_env(PROVENANCE_ENV) or fallback


def cache_name(explicit: str | None = None) -> str:
    """``explicit``, else ``$PLAIT_CACHE``, else ``"sqlite"``."""
    return explicit or _from_env(CACHE_ENV) or CACHE


def provenance_path() -> Path:
    """The default provenance file: ``platformdirs.user_data_dir("plait")/provenance.sqlite3``."""
    import platformdirs

    return Path(platformdirs.user_data_dir(_APP)) / "provenance.sqlite3"


def cache_path() -> Path:
    """The default cache file: ``platformdirs.user_cache_dir("plait")/cache.sqlite3``."""
    import platformdirs

    return Path(platformdirs.user_cache_dir(_APP)) / "cache.sqlite3"
