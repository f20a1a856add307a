"""Configuration files: a namespace declared as data, and the one place that wires the
provenance store, the cache and logging.

A file is TOML (read with the standard library), or YAML (``.yaml``/``.yml``) when PyYAML
is installed. Its top-level keys::

    pythonpath = ["."]        # directories (relative to the file) put on sys.path first
    [[entries]]               # namespace entries: see plait.entries
    [[modules]]               # module fragments: module = "pkg.mod", branch = "a.b"
    [storage]
    log_level = "INFO"        # the root logger's level (configure_logging)
    [storage.provenance]      # backend = plugin name; the other keys are its options
    [storage.cache]           # idem; served to every entry with a cache section
    [triggers.<name>]         # checked as the engine reads them, kept as tables

A relative ``path`` option of a backend is relative to the file. :func:`check` reports
every problem at once, each with the file and key; :func:`load` raises them as one
:class:`plait.errors.ConfigError`.
"""

from __future__ import annotations

import importlib
import logging
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import attrs

from plait.entries import build_namespace, parse_namespace
from plait.errors import ConfigError, DagValidationError, NsrefError, PlaitError
from plait.namespace import Namespace
from plait.plugins import PluginHost, default_host
from plait.problems import Checker, Problem, join
from plait.records import BackendKind

if TYPE_CHECKING:
    from plait.dag import Dag
    from plait.protocols import CacheBackend, ProvenanceBackend
    from plait.runner import DagRunner, DagRunResult

__all__ = ["BackendConfig", "Config", "StorageConfig", "check", "load"]

TOP_KEYS: Final = ("pythonpath", "entries", "modules", "storage", "triggers")
STORAGE_KEYS: Final = ("provenance", "cache", "log_level")
LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@attrs.frozen(kw_only=True)
class BackendConfig:
    """A backend by plugin name, with the options its factory takes."""

    backend: str
    options: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class StorageConfig:
    """The ``[storage]`` section."""

    provenance: BackendConfig | None = None
    cache: BackendConfig | None = None
    log_level: str | None = None


class Config:
    """A loaded configuration: its namespace, storage and triggers.

    ``runner(dag)`` builds a :class:`~plait.DagRunner` recording into the configured
    provenance store; cached entries already use the configured cache. Close it (or use
    ``with``) to release the cache backend it opened.
    """

    def __init__(
        self,
        *,
        path: Path | None,
        namespace: Namespace,
        storage: StorageConfig,
        triggers: Mapping[str, Mapping[str, Any]],
        cache: CacheBackend | None,
        host: PluginHost,
    ) -> None:
        self.path = path
        self.namespace = namespace
        self.storage = storage
        self.triggers = triggers
        self.host = host
        self._cache = cache

    def __repr__(self) -> str:
        return f"<Config {str(self.path)!r}: {len(self.namespace)} entries>"

    def __enter__(self) -> Config:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the cache backend (cached entries reopen it on their next call)."""
        if self._cache is not None:
            self._cache.close()

    # -- what it wires ------------------------------------------------------------------
    def dag(self, nsref: str) -> Dag:
        """The Dag registered at ``nsref``; :class:`NsrefError` if nothing, or not a Dag."""
        node = self.namespace.get(nsref)
        if node.dag is None:
            raise NsrefError(
                f"nsref {nsref!r} is a callable, not a DAG (DAGs here: "
                f"{', '.join(n.nsref for n in self.namespace if n.dag is not None) or 'none'})"
            )
        return node.dag

    def cache(self) -> CacheBackend | None:
        """The configured cache backend (``None``: cached entries use the default)."""
        return self._cache

    def provenance(self) -> ProvenanceBackend | None:
        """A new instance of the configured provenance backend (the caller opens and closes
        it), or ``None`` when none is configured."""
        spec = self.storage.provenance
        if spec is None:
            return None
        backend: ProvenanceBackend = self.host.create(
            BackendKind.PROVENANCE, spec.backend, **spec.options
        )
        return backend

    def runner(self, dag: Dag | str, **options: Any) -> DagRunner:
        """A runner for ``dag`` (a Dag, or the nsref of one) recording into the configured
        provenance store; ``options`` go to :class:`~plait.DagRunner` and win."""
        from plait.runner import DagRunner

        target = self.dag(dag) if isinstance(dag, str) else dag
        spec = self.storage.provenance
        if spec is not None and "provenance" not in options:
            options["provenance"] = spec.backend
            options.setdefault("provenance_options", dict(spec.options))
        options.setdefault("host", self.host)
        return DagRunner(target, **options)

    async def run(self, nsref: str, **inputs: Any) -> DagRunResult:
        """Run the Dag at ``nsref`` once, recorded under that nsref; ``inputs`` as for
        ``await dag(...)`` (by parameter name, or ``label={...}``)."""
        from plait.run_inputs import source_inputs

        dag = self.dag(nsref)
        plan = dag.plan()
        given = source_inputs(nsref, [plan.node(i) for i in plan.sources], inputs)
        async with self.runner(dag) as runner:
            return await runner.run(source_inputs=given, dag_nsref=nsref)

    def configure_logging(self) -> None:
        """Set the root logger's level to ``log_level`` (with a stderr handler when the
        root logger has none). Does nothing when no level is configured."""
        level = self.storage.log_level
        if level is None:
            return
        root = logging.getLogger()
        if not root.handlers:
            logging.basicConfig(level=level)
        root.setLevel(level)


# ---------------------------------------------------------------------- reading
def _read(path: Path, checker: Checker) -> Mapping[str, Any] | None:
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        checker.add("", f"cannot read the file: {exc}")
        return None
    if suffix in (".yaml", ".yml"):
        try:
            yaml: Any = importlib.import_module("yaml")
        except ImportError:
            checker.add("", "a YAML configuration needs PyYAML: pip install pyyaml")
            return None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            checker.add("", f"not valid YAML: {exc}")
            return None
        return data if data is not None else {}
    if suffix != ".toml":
        checker.add("", f"unknown file type {suffix!r}: use .toml (or .yaml with PyYAML)")
        return None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        checker.add("", f"not valid TOML: {exc}")
        return None


def _pythonpath(table: Mapping[str, Any], base: Path, checker: Checker) -> None:
    dirs = checker.strings(table, "pythonpath", "")
    for directory in dirs or ():
        full = str((base / directory).resolve())
        if full not in sys.path:
            sys.path.insert(0, full)
            importlib.invalidate_caches()  # a module written since the last import is seen


def _backend(
    raw: object, key: str, kind: BackendKind, base: Path, host: PluginHost, checker: Checker
) -> tuple[BackendConfig | None, Any]:
    """The backend section and an instance built from it (not opened)."""
    table = checker.table(raw, key, None)
    if table is None:
        return None, None
    name = checker.string(table, "backend", key, required=True)
    if name is None:
        return None, None
    options = {k: v for k, v in table.items() if k != "backend"}
    path = options.get("path")
    if isinstance(path, str) and not Path(path).expanduser().is_absolute():
        options["path"] = str(base / path)
    spec = BackendConfig(backend=name, options=options)
    try:
        return spec, host.create(kind, name, **options)
    except PlaitError as exc:
        checker.add(key, str(exc))
        return None, None


def _storage(
    raw: object, base: Path, host: PluginHost, checker: Checker
) -> tuple[StorageConfig, Any]:
    if raw is None:
        return StorageConfig(), None
    table = checker.table(raw, "storage", STORAGE_KEYS)
    if table is None:
        return StorageConfig(), None
    provenance = cache = cache_backend = None
    if table.get("provenance") is not None:
        provenance, _ = _backend(
            table["provenance"], "storage.provenance", BackendKind.PROVENANCE, base, host, checker
        )
    if table.get("cache") is not None:
        cache, cache_backend = _backend(
            table["cache"], "storage.cache", BackendKind.CACHE, base, host, checker
        )
    level = checker.string(table, "log_level", "storage")
    if level is not None:
        level = level.upper()
        if level not in LOG_LEVELS:
            checker.add("storage.log_level", f"{level!r} is not one of {', '.join(LOG_LEVELS)}")
            level = None
    storage = StorageConfig(provenance=provenance, cache=cache, log_level=level)
    return storage, cache_backend


def _triggers(raw: object, host: PluginHost, checker: Checker) -> dict[str, Mapping[str, Any]]:
    """Each trigger table checked as the engine reads it (:func:`trigger_from_dict`: its
    kind, options and common keys), and kept as the table."""
    from plait.triggers.config import trigger_from_dict

    if raw is None:
        return {}
    table = checker.table(raw, "triggers", None)
    if table is None:
        return {}
    out: dict[str, Mapping[str, Any]] = {}
    for name, value in table.items():
        key = join("triggers", name)
        trigger = checker.table(value, key, None)
        if trigger is None:
            continue
        try:
            trigger_from_dict(trigger, name=name, host=host)
        except PlaitError as exc:
            checker.add(key, str(exc))
            continue
        out[name] = dict(trigger)
    return out


def _validate_dags(namespace: Namespace, declared: Mapping[str, str], checker: Checker) -> None:
    for node in namespace:
        dag = node.dag
        if dag is None:
            continue
        try:
            dag.validate()
        except DagValidationError as exc:
            for problem in exc.problems:
                checker.add(declared.get(node.nsref, node.nsref), f"DAG {node.nsref!r}: {problem}")


def _build(path: Path, checker: Checker, host: PluginHost | None) -> Config | None:
    data = _read(path, checker)
    if data is None:
        return None
    table = checker.table(data, "", TOP_KEYS)
    if table is None:
        return None
    host = host or default_host()
    base = path.parent.resolve()
    _pythonpath(table, base, checker)
    storage, cache = _storage(table.get("storage"), base, host, checker)
    entries, modules = parse_namespace(table, checker)
    namespace = Namespace()
    declared = build_namespace(namespace, entries, modules, checker, cache=cache)
    _validate_dags(namespace, declared, checker)
    triggers = _triggers(table.get("triggers"), host, checker)
    return Config(
        path=path,
        namespace=namespace,
        storage=storage,
        triggers=triggers,
        cache=cache,
        host=host,
    )


def check(path: str | Path, *, host: PluginHost | None = None) -> list[Problem]:
    """Every problem of the configuration file at ``path`` (empty: it is valid): keys,
    types, grefs that do not import, factories, DAGs that do not validate, backends that
    are not installed or reject their options, triggers naming nothing."""
    checker = Checker(str(path))
    config = _build(Path(path), checker, host)
    if config is not None:
        config.close()
    return checker.problems


def load(path: str | Path, *, host: PluginHost | None = None) -> Config:
    """The configuration at ``path``; :class:`ConfigError` listing every problem."""
    checker = Checker(str(path))
    config = _build(Path(path), checker, host)
    if checker.problems or config is None:
        if config is not None:
            config.close()
        raise ConfigError(checker.problems)
    return config
