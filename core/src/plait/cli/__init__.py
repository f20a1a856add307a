"""The ``plait`` command line, one module per command group.

Every command talks to backends through the plugin host, by name: the core never imports a
plugin. Exit codes: ``0`` success (a run that completed), ``1`` a run that failed or was
cancelled (or an unexpected internal error), ``2`` a usage error or any other user error
(unknown run, bad input, invalid DAG, missing plugin), ``3`` a run that paused,
``130`` interrupted. Errors are printed as ``error: ...`` on stderr, without a traceback
unless ``--debug`` is given.

Modules: :mod:`~plait.cli.app` (the group and :func:`main`), :mod:`~plait.cli.running`
(``run``, ``restart``, ``replay``), :mod:`~plait.cli.runs` (``runs``, ``show``),
:mod:`~plait.cli.graph`, :mod:`~plait.cli.plugins`, :mod:`~plait.cli.cache`,
:mod:`~plait.cli.config` (``config check``, and ``--config`` for the others),
:mod:`~plait.cli.demo`; :mod:`~plait.cli.common` (options, console, errors),
:mod:`~plait.cli.loading` (DAGs, provenance backends, run ids) and
:mod:`~plait.cli.inputs` (``--input`` values) are shared.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from plait.cli.app import cli, main

if TYPE_CHECKING:
    from plait.cli.inputs import parse_inputs
    from plait.cli.loading import load_dag, open_provenance

__all__ = ["cli", "load_dag", "main", "open_provenance", "parse_inputs"]

# Imported on first use: `plait --version` does not load DAGs or the engine.
_EXPORTS: dict[str, str] = {
    "load_dag": "plait.cli.loading",
    "open_provenance": "plait.cli.loading",
    "parse_inputs": "plait.cli.inputs",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'plait.cli' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
