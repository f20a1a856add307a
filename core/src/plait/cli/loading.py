"""Finding what a command names: a DAG by ``MODULE:DAG``, a provenance backend by name
(on a file given by ``--store``), a run by its id or a unique prefix of it."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from plait import defaults
from plait.cli.common import first_line
from plait.dag import Dag
from plait.errors import BackendNotFoundError, NsrefError, PlaitError, RunNotFoundError
from plait.plugins import PluginHost
from plait.protocols import ProvenanceBackend
from plait.records import BackendKind, RunRecord

__all__ = ["load_dag", "open_provenance", "resolve_run"]


def load_dag(ref: str) -> Dag:
    """The Dag named by ``MODULE:ATTR`` (or ``path/to/file.py:ATTR``).

    ``ATTR`` may be a dotted path; it names a :class:`Dag` or a callable taking no argument
    that returns one. The current directory is importable, as with ``python -m``.
    """
    module_name, colon, attr = ref.partition(":")
    if not colon or not module_name or not attr:
        raise NsrefError(f"{ref!r} is not a DAG reference: write MODULE:DAG, e.g. pipeline:dag")
    module = _import(module_name, ref)
    target: Any = module
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise NsrefError(f"{ref!r}: module {module_name!r} has no attribute {attr!r}") from None
    if not isinstance(target, Dag) and callable(target):
        target = target()
    if not isinstance(target, Dag):
        raise NsrefError(
            f"{ref!r} is a {type(target).__name__}, not a Dag (or a function returning a Dag)"
        )
    return target


def _import(module_name: str, ref: str) -> Any:
    if module_name.endswith(".py") or os.sep in module_name or "/" in module_name:
        path = Path(module_name).expanduser().resolve()
        if not path.is_file():
            raise NsrefError(f"{ref!r}: no such file {str(path)!r}")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise NsrefError(f"{ref!r}: cannot import {str(path)!r}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        _exec_module(lambda: spec.loader.exec_module(module), ref)  # type: ignore[union-attr]
        return module
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    holder: list[Any] = []
    _exec_module(lambda: holder.append(importlib.import_module(module_name)), ref)
    return holder[0]


def _exec_module(load: Callable[[], None], ref: str) -> None:
    try:
        load()
    except PlaitError:
        raise
    except ModuleNotFoundError as exc:
        raise NsrefError(f"{ref!r}: cannot import {exc.name!r} ({exc})") from exc
    except Exception as exc:
        raise NsrefError(
            f"{ref!r}: importing the module raised {type(exc).__name__}: {first_line(str(exc))}"
        ) from exc


def open_provenance(
    host: PluginHost, name: str | None, store: Path | None = None
) -> ProvenanceBackend:
    """The provenance backend ``name`` (``--provenance``), on the file ``store``
    (``--store``, passed to the backend as its ``path`` option) when one is given.

    ``name`` is always a backend name, never a path: ``None`` means ``$PLAIT_PROVENANCE``,
    else ``sqlite`` (:data:`plait.defaults.CLI_PROVENANCE`). Without ``store`` the backend
    uses its own default file.
    """
    chosen = defaults.provenance_name(name, fallback=defaults.CLI_PROVENANCE)
    assert chosen is not None  # there is a fallback
    options: dict[str, Any] = {} if store is None else {"path": str(store)}
    try:
        backend: ProvenanceBackend = host.create(BackendKind.PROVENANCE, chosen, **options)
    except BackendNotFoundError as exc:
        if name is None:
            raise
        raise BackendNotFoundError(
            f"{exc}; --provenance takes a backend name: give a file with --store PATH"
        ) from None
    return backend


async def resolve_run(prov: ProvenanceBackend, run_id: str) -> RunRecord:
    """The run ``run_id``, or the only top-level run whose id starts with it.

    Sub-runs (the elements of map and call nodes) are matched only when no top-level run
    is: a map's thousands of sub-runs do not make a prefix of its run's id ambiguous.
    """
    try:
        return await prov.get_run(run_id)
    except RunNotFoundError:
        if len(run_id) < 4:
            raise
        matches = [r for r in await prov.list_runs() if r.run_id.startswith(run_id)]
        top = [r for r in matches if r.parent_run_id is None]
        chosen = top or matches
        if len(chosen) == 1:
            return chosen[0]
        if len(chosen) > 1:
            ids = ", ".join(r.run_id for r in chosen[:5])
            raise RunNotFoundError(
                f"run id prefix {run_id!r} is ambiguous: it matches {len(chosen)} runs ({ids})"
            ) from None
        raise
