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
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from plait import __version__

if TYPE_CHECKING:
    from plait.cli.app import cli
    from plait.cli.inputs import parse_inputs
    from plait.cli.loading import load_dag, open_provenance

__all__ = ["cli", "load_dag", "main", "open_provenance", "parse_inputs"]

#: what ``plait --version`` prints (click's ``version_option`` prints the same line)
VERSION_LINE = f"plait, version {__version__}"


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """The console script ``plait``: see :func:`plait.cli.app.main`.

    ``plait --version`` alone is answered here, before click and rich are imported (they
    are most of the command line's start-up time); every other command line goes to the
    click group.
    """
    args = sys.argv[1:] if argv is None else list(argv)
    if args == ["--version"]:
        print(VERSION_LINE)
        sys.exit(0)
    from plait.cli.app import main as run_cli

    run_cli(args)


# Imported on first use: `plait --version` does not load click, DAGs or the engine.
_EXPORTS: dict[str, str] = {
    "cli": "plait.cli.app",
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
