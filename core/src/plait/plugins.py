"""The plugin host: a pluggy manager owned by an object, loaded lazily and guarded.

There is no module-level manager. :func:`default_host` builds one per process on first use;
tests and embedders create their own :class:`PluginHost`.

Environment:

- ``PLAIT_DISABLE_PLUGINS``: comma-separated entry-point names never loaded.
- ``PLAIT_LOAD_PLUGINS``: if set, only these entry-point names are loaded.
- ``PLAIT_STRICT_PLUGINS=1``: a plugin that fails to load raises instead of being reported
  (the test suite sets it).

A hook implementation whose name matches no hookspec (a misspelled hook) or whose parameters
the spec lacks is a :class:`~plait.errors.PluginHookError` naming the plugin and the hook:
raised by :meth:`PluginHost.register`, and for an entry-point plugin reported like a plugin
that failed to import (raised under ``PLAIT_STRICT_PLUGINS=1``).

Lifecycle hooks are observers: each implementation is called on its own, and one that raises
is reported once (a :class:`~plait.errors.PlaitWarning` naming the plugin and the hook) and
not called for that hook again by this host; the run goes on. :meth:`PluginHost.observes`
says whether anyone implements a lifecycle hook, so the runner builds no payload for nobody.
"""

from __future__ import annotations

import difflib
import functools
import importlib.metadata as metadata
import os
import traceback
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

from plait import hookspecs
from plait.errors import (
    BackendError,
    BackendNotFoundError,
    DuplicateBackendError,
    PlaitError,
    PlaitWarning,
    PluginHookError,
)
from plait.records import BackendInfo, BackendKind, MapProgress, NodeRecord, PluginInfo, RunRecord

if TYPE_CHECKING:
    import click

__all__ = ["ENTRY_POINT_GROUP", "PluginHost", "default_host"]

ENTRY_POINT_GROUP = "plait"

#: Which distribution provides the first-party backends, for "did you mean to install" hints.
KNOWN_PROVIDERS: dict[BackendKind, dict[str, str]] = {
    BackendKind.EXECUTOR: {
        "inline": "plait-executors",
        "thread": "plait-executors",
        "process": "plait-executors",
        "dask": "plait-dask",
    },
    BackendKind.PROVENANCE: {"sqlite": "plait-provenance-sqlite"},
    BackendKind.CACHE: {"sqlite": "plait-cache-sqlite"},
    BackendKind.TRIGGER_STORE: {"sqlite": "plait-provenance-sqlite"},
}

_REGISTER_HOOKS: dict[BackendKind, str] = {
    BackendKind.EXECUTOR: "plait_register_executors",
    BackendKind.PROVENANCE: "plait_register_provenance_backends",
    BackendKind.CACHE: "plait_register_cache_backends",
    BackendKind.TRIGGER_STORE: "plait_register_trigger_stores",
}

_LIFECYCLE_HOOKS = (
    "plait_on_run_start",
    "plait_on_node_start",
    "plait_on_node_finish",
    "plait_on_map_progress",
    "plait_on_run_finish",
)

#: One observer of one lifecycle hook: plugin name, function, the parameters it takes.
_Observer = tuple[str, Callable[..., object], tuple[str, ...]]


def _env_names(var: str) -> set[str] | None:
    raw = os.environ.get(var)
    if raw is None:
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


class PluginHost:
    """Owns a pluggy ``PluginManager`` for the ``plait`` project.

    Entry points of the ``plait`` group load on first use. A plugin that fails to import is
    recorded (with its traceback) and the others still load.
    """

    def __init__(self, *, load_entry_points: bool = True) -> None:
        self._pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self._pm.add_hookspecs(hookspecs)
        self._load_entry_points = load_entry_points
        self._loaded = False
        self._infos: dict[str, PluginInfo] = {}
        self._backends: dict[BackendKind, dict[str, BackendInfo]] | None = None
        self._observing: bool | None = None
        self._observers: dict[str, tuple[_Observer, ...]] = {}
        self._disabled: dict[tuple[str, str], str] = {}
        from plait import _builtin  # the core's own backends (null provenance)

        self._register(_builtin, "plait-core", distribution="plait")

    # ------------------------------------------------------------------ loading
    @property
    def manager(self) -> pluggy.PluginManager:
        self.ensure_loaded()
        return self._pm

    def ensure_loaded(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        if self._load_entry_points:
            self._load_group()

    def _load_group(self) -> None:
        allow = _env_names("PLAIT_LOAD_PLUGINS")
        block = _env_names("PLAIT_DISABLE_PLUGINS") or set()
        strict = os.environ.get("PLAIT_STRICT_PLUGINS") == "1"
        for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            if ep.name in block or (allow is not None and ep.name not in allow):
                continue
            dist = ep.dist.name if ep.dist is not None else None
            version = ep.dist.version if ep.dist is not None else None
            if self._pm.has_plugin(ep.name) or self._pm.is_blocked(ep.name):
                self._infos[f"{ep.name} ({dist})"] = PluginInfo(
                    name=ep.name,
                    distribution=dist,
                    version=version,
                    error=f"entry-point name {ep.name!r} is already taken by "
                    f"{self._infos[ep.name].distribution}; skipped",
                )
                continue
            try:
                plugin = ep.load()
            except Exception as exc:
                if strict:
                    raise BackendError(
                        f"plugin {ep.name!r} from {dist} failed to load: {exc!r}"
                    ) from exc
                self._infos[ep.name] = PluginInfo(
                    name=ep.name,
                    distribution=dist,
                    version=version,
                    error=traceback.format_exc(),
                )
                continue
            try:
                self._register(plugin, ep.name, distribution=dist, version=version)
            except PluginHookError as exc:
                if strict:
                    raise
                self._infos[ep.name] = PluginInfo(
                    name=ep.name, distribution=dist, version=version, error=str(exc)
                )

    def _register(
        self, plugin: object, name: str, *, distribution: str | None, version: str | None = None
    ) -> None:
        """Register ``plugin`` and check its hooks; a bad hook leaves it unregistered."""
        try:
            self._pm.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:
            raise PluginHookError(f"plugin {name!r}: {_first_line(str(exc))}", plugin=name) from exc
        try:
            self._check_hooks(plugin, name)
        except PluginHookError:
            self._pm.unregister(plugin)
            raise
        self._infos[name] = PluginInfo(name=name, distribution=distribution, version=version)
        self._changed()

    def _check_hooks(self, plugin: object, name: str) -> None:
        """pluggy's ``check_pending`` (every hookimpl matches a hookspec) plus: lifecycle
        hooks take no wrappers (each observer is called on its own)."""
        try:
            self._pm.check_pending()
        except pluggy.PluginValidationError as exc:
            unknown = [
                caller.name
                for caller in self._pm.get_hookcallers(plugin) or []
                if not caller.has_spec()
            ]
            raise PluginHookError(
                _unknown_hooks_message(name, unknown), plugin=name, hooks=unknown
            ) from exc
        wrappers = [
            impl.function.__name__
            for hook in _LIFECYCLE_HOOKS
            for impl in getattr(self._pm.hook, hook).get_hookimpls()
            if impl.plugin is plugin and (impl.wrapper or impl.hookwrapper)
        ]
        if wrappers:
            raise PluginHookError(
                f"plugin {name!r} implements {', '.join(wrappers)} as a wrapper; lifecycle "
                "hooks call each implementation on its own: drop wrapper=True/hookwrapper=True",
                plugin=name,
                hooks=wrappers,
            )

    def _changed(self) -> None:
        self._backends = None
        self._observing = None
        self._observers = {}

    def register(self, plugin: object, name: str | None = None) -> str:
        """Register an in-process plugin (an object or module with ``@hookimpl`` methods).

        Raises :class:`~plait.errors.PluginHookError` naming the hook when one of its
        ``@hookimpl`` functions matches no hookspec (a misspelled name) or takes a parameter
        the spec does not have; the plugin is then not registered.
        """
        self.ensure_loaded()
        name = name or f"{type(plugin).__name__}-{id(plugin):x}"
        self._register(plugin, name, distribution=None)
        return name

    def unregister(self, name: str) -> None:
        self._pm.unregister(name=name)
        self._infos.pop(name, None)
        self._changed()

    # ------------------------------------------------------------------ backends
    def plugins(self) -> list[PluginInfo]:
        """Every plugin: loaded ones with what they provide, failed ones with their error."""
        self.ensure_loaded()
        provided: dict[str, list[str]] = {}
        for kind in BackendKind:
            for hookimpl in getattr(self._pm.hook, _REGISTER_HOOKS[kind]).get_hookimpls():
                for info in hookimpl.function() or ():
                    provided.setdefault(hookimpl.plugin_name, []).append(f"{kind}:{info.name}")
        for hookimpl in self._pm.hook.plait_register_trigger_kinds.get_hookimpls():
            kinds: Any = hookimpl.function()
            for trigger_kind in kinds or ():
                provided.setdefault(hookimpl.plugin_name, []).append(
                    f"trigger-kind:{trigger_kind.name}"
                )
        out = []
        for key, info in self._infos.items():
            out.append(
                PluginInfo(
                    name=info.name,
                    distribution=info.distribution,
                    version=info.version,
                    provides=tuple(provided.get(key, ())),
                    error=info.error,
                )
            )
        return out

    def backends(self, kind: BackendKind | str) -> dict[str, BackendInfo]:
        """Every backend of ``kind`` by name. Duplicate names raise, naming both packages."""
        kind = BackendKind(kind)
        if self._backends is None:
            self.ensure_loaded()
            self._backends = {k: self._collect(k) for k in BackendKind}
        return self._backends[kind]

    def _collect(self, kind: BackendKind) -> dict[str, BackendInfo]:
        found: dict[str, BackendInfo] = {}
        hook = getattr(self._pm.hook, _REGISTER_HOOKS[kind])
        for hookimpl in reversed(hook.get_hookimpls()):  # registration order
            dist = self._infos.get(hookimpl.plugin_name)
            dist_name = dist.distribution if dist else hookimpl.plugin_name
            for info in hookimpl.function() or ():
                if not isinstance(info, BackendInfo):
                    raise BackendError(
                        f"plugin {hookimpl.plugin_name!r} returned {info!r} from "
                        f"{_REGISTER_HOOKS[kind]}; expected BackendInfo records"
                    )
                info = BackendInfo(
                    name=info.name,
                    factory=info.factory,
                    description=info.description,
                    distribution=dist_name,
                )
                if info.name in found:
                    raise DuplicateBackendError(
                        f"{kind} backend {info.name!r} is registered twice: by "
                        f"{found[info.name].distribution} and by {dist_name}; uninstall one "
                        "or disable it with PLAIT_DISABLE_PLUGINS"
                    )
                found[info.name] = info
        return found

    def create(self, kind: BackendKind | str, name: str, **options: Any) -> Any:
        """Build the backend ``name`` of ``kind`` with ``options``."""
        kind = BackendKind(kind)
        available = self.backends(kind)
        info = available.get(name)
        if info is None:
            installed = ", ".join(sorted(available)) or "none"
            hint = KNOWN_PROVIDERS[kind].get(name)
            tail = f"; `pip install {hint}` provides it" if hint else ""
            raise BackendNotFoundError(
                f"no {kind} backend named {name!r} (installed: {installed}){tail}"
            )
        try:
            return info.factory(**options)
        except PlaitError:
            raise
        except TypeError as exc:
            raise BackendError(
                f"{kind} backend {name!r} from {info.distribution} rejected options "
                f"{sorted(options)}: {exc}"
            ) from exc

    # ------------------------------------------------------------------ commands
    def add_commands(self, cli: click.Group) -> None:
        """Let every plugin add its commands to the ``plait`` group ``cli``.

        A plugin command whose name the group already has raises :class:`BackendError`
        naming the command, the plugin that tried to add it and the one that has it; so
        does a plugin whose hook fails.
        """
        owners = dict.fromkeys(cli.commands, "plait itself")
        for impl in self.manager.hook.plait_add_commands.get_hookimpls():  # registration order
            plugin = f"plugin {impl.plugin_name!r}"
            before = dict(cli.commands)
            try:
                impl.function(cli=cli)
            except Exception as exc:
                raise BackendError(f"{plugin} failed to add its commands: {exc!r}") from exc
            for name, command in before.items():
                if cli.commands.get(name) is not command:
                    cli.commands[name] = command
                    raise BackendError(
                        f"{plugin} tried to add the command {name!r}, which {owners[name]} "
                        "already provides; disable one with PLAIT_DISABLE_PLUGINS"
                    )
            owners.update(dict.fromkeys(cli.commands.keys() - before.keys(), plugin))

    # ------------------------------------------------------------------ lifecycle facade
    @property
    def observing(self) -> bool:
        """Whether any plugin implements any lifecycle hook (else the runner skips them)."""
        if self._observing is None:
            self._observing = any(self.observes(name) for name in _LIFECYCLE_HOOKS)
        return self._observing

    def observes(self, hook: str) -> bool:
        """Whether any enabled plugin implements the lifecycle hook ``hook``
        (``"plait_on_node_finish"``): without one, build no payload for it."""
        return bool(self._observers_of(hook))

    @property
    def disabled(self) -> dict[tuple[str, str], str]:
        """``(plugin, hook)`` pairs switched off because the hook raised, with the error."""
        return dict(self._disabled)

    def _observers_of(self, hook: str) -> tuple[_Observer, ...]:
        found = self._observers.get(hook)
        if found is None:
            if hook not in _LIFECYCLE_HOOKS:
                raise ValueError(f"{hook!r} is not a lifecycle hook (one of {_LIFECYCLE_HOOKS})")
            impls = getattr(self.manager.hook, hook).get_hookimpls()
            found = tuple(
                (impl.plugin_name, impl.function, tuple(impl.argnames))
                for impl in reversed(impls)  # pluggy's call order: last registered first
                if (impl.plugin_name, hook) not in self._disabled
            )
            self._observers[hook] = found
        return found

    def _notify(self, hook: str, kwargs: dict[str, object]) -> None:
        """Call every observer of ``hook``; one that raises is reported and disabled."""
        for plugin, function, argnames in self._observers_of(hook):
            try:
                function(*[kwargs[arg] for arg in argnames])
            except Exception as exc:
                self._disable(plugin, hook, exc)

    def _disable(self, plugin: str, hook: str, exc: Exception) -> None:
        error = f"{type(exc).__name__}: {_first_line(str(exc))}"
        self._disabled[(plugin, hook)] = error
        self._changed()
        warnings.warn(
            PlaitWarning(
                f"plugin {plugin!r} raised {error} in {hook}; plait no longer calls its "
                f"{hook} (the run goes on)"
            ),
            stacklevel=4,
        )

    def on_run_start(self, run: RunRecord) -> None:
        self._notify("plait_on_run_start", {"run": run})

    def on_node_start(self, node: NodeRecord) -> None:
        self._notify("plait_on_node_start", {"node": node})

    def on_node_finish(self, node: NodeRecord) -> None:
        self._notify("plait_on_node_finish", {"node": node})

    def on_map_progress(self, progress: MapProgress) -> None:
        self._notify("plait_on_map_progress", {"progress": progress})

    def on_run_finish(self, run: RunRecord) -> None:
        self._notify("plait_on_run_finish", {"run": run})


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def _unknown_hooks_message(plugin: str, hooks: list[str]) -> str:
    specs = [name for name in dir(hookspecs) if name.startswith("plait_")]
    parts = []
    for hook in hooks:
        close = difflib.get_close_matches(hook, specs, n=1)
        parts.append(f"{hook} (did you mean {close[0]}?)" if close else hook)
    noun = "hooks" if len(parts) > 1 else "hook"
    return (
        f"plugin {plugin!r} implements unknown {noun} {', '.join(parts)}: every @hookimpl "
        "must be named after a hook in plait.hookspecs"
    )


@functools.cache
def default_host() -> PluginHost:
    """The process's default host, created on first use (entry points load lazily)."""
    return PluginHost()


def _lookup(kind: BackendKind, name: str, host: PluginHost | None, options: dict[str, Any]) -> Any:
    return (host or default_host()).create(kind, name, **options)


def get_executor(name: str, *, host: PluginHost | None = None, **options: Any) -> Any:
    """Build the executor ``name`` from the installed plugins."""
    return _lookup(BackendKind.EXECUTOR, name, host, options)


def get_provenance(name: str, *, host: PluginHost | None = None, **options: Any) -> Any:
    """Build the provenance backend ``name`` from the installed plugins."""
    return _lookup(BackendKind.PROVENANCE, name, host, options)


def get_cache(name: str, *, host: PluginHost | None = None, **options: Any) -> Any:
    """Build the cache backend ``name`` from the installed plugins."""
    return _lookup(BackendKind.CACHE, name, host, options)
