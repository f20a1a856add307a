"""Triggers as configuration data: the ``[triggers]`` section of a configuration file.

One table per trigger; the kind's options sit beside the common keys::

    [triggers.nightly]
    dag = "etl.pipelines:nightly"
    cron = "30 2 * * *"            # kind "schedule" is implied by "cron"
    timezone = "Europe/Berlin"
    catchup = "latest"             # or { policy = "all", limit = 5 }
    retry = { attempts = 3, backoff = 60 }

``kind`` may be omitted when ``cron`` (schedule) or ``check`` (poll) says it; otherwise it
is ``manual``. Every value goes through the one converter, so wrong types and unknown keys
are reported with their path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import attrs

from plait.converter import get_converter, structure, to_json_safe
from plait.errors import ConversionError, PlaitError, TriggerError
from plait.triggers.model import Catchup, RetryPolicy, Trigger

if TYPE_CHECKING:
    from plait.plugins import PluginHost

__all__ = ["trigger_from_dict", "trigger_to_dict", "triggers_from_config"]

#: Keys every trigger table may have, whatever its kind.
COMMON_KEYS: Final = frozenset(
    {
        "name",
        "dag",
        "kind",
        "inputs",
        "catchup",
        "max_active_runs",
        "overlap",
        "retry",
        "active",
        "description",
    }
)


def _implied_kind(data: Mapping[str, Any]) -> str:
    if "cron" in data:
        return "schedule"
    if "check" in data:
        return "poll"
    return "manual"


def _structured(value: Any, as_type: Any, where: str) -> Any:
    try:
        return structure(value, as_type, where=where)
    except ConversionError as exc:
        raise TriggerError(str(exc)) from exc


def trigger_from_dict(
    data: Mapping[str, Any], *, name: str | None = None, host: PluginHost | None = None
) -> Trigger:
    """See :meth:`Trigger.from_dict`."""
    from plait.triggers.kinds import get_trigger_kind

    if not isinstance(data, Mapping):
        raise TriggerError(f"trigger {name!r}: expected a table of settings, got {data!r}")
    name = name or data.get("name")
    if not isinstance(name, str) or not name:
        raise TriggerError(f"a trigger needs a name: {dict(data)!r}")
    where = f"trigger {name!r}"
    if "dag" not in data:
        raise TriggerError(f"{where}: missing 'dag' (a DAG reference such as 'package.module:dag')")
    kind_name = data.get("kind") or _implied_kind(data)
    kind = get_trigger_kind(kind_name, host, trigger=name)
    option_keys = {a.name for a in attrs.fields(kind.options_type)}
    unknown = sorted(set(data) - COMMON_KEYS - option_keys)
    if unknown:
        allowed = ", ".join(sorted(COMMON_KEYS | option_keys))
        raise TriggerError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))} (allowed: {allowed})"
        )
    options = _structured(
        {k: v for k, v in data.items() if k in option_keys}, kind.options_type, where
    )
    common: dict[str, Any] = {}
    for key, as_type in (
        ("dag", str),
        ("inputs", dict[str, Any]),
        ("catchup", Catchup | str),
        ("max_active_runs", int),
        ("overlap", str),
        ("retry", RetryPolicy | int | None),
        ("active", bool),
        ("description", str),
    ):
        if key in data:
            common[key] = _common(data[key], as_type, f"{where}: {key}")
    try:
        return Trigger(name=name, kind=kind.name, options=options, **common)
    except PlaitError:
        raise
    except (TypeError, ValueError) as exc:
        raise TriggerError(f"{where}: {exc}") from exc


def _common(value: Any, as_type: Any, where: str) -> Any:
    if as_type is Catchup | str:
        return value if isinstance(value, str) else _structured(value, Catchup, where)
    if as_type == RetryPolicy | int | None:
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        return _structured(value, RetryPolicy, where)
    return _structured(value, as_type, where)


def trigger_to_dict(trigger: Trigger) -> dict[str, Any]:
    """See :meth:`Trigger.to_dict`."""
    conv = get_converter()
    options = conv.unstructure(trigger.options)
    check = getattr(trigger.options, "check", None)
    if check is not None and not isinstance(check, str):
        module = getattr(check, "__module__", "?")
        options["check"] = f"{module}:{getattr(check, '__qualname__', type(check).__qualname__)}"
    data: dict[str, Any] = {
        "name": trigger.name,
        "dag": trigger.dag_ref,
        "kind": trigger.kind,
        **options,
        "inputs": to_json_safe(trigger.inputs, where=f"trigger {trigger.name!r} inputs"),
        "catchup": conv.unstructure(trigger.catchup),
        "max_active_runs": trigger.max_active_runs,
        "overlap": trigger.overlap.value,
        "active": trigger.active,
    }
    if trigger.retry is not None:
        data["retry"] = conv.unstructure(trigger.retry)
    if trigger.description:
        data["description"] = trigger.description
    return {k: v for k, v in data.items() if v is not None}


def triggers_from_config(
    section: Mapping[str, Any], *, host: PluginHost | None = None
) -> list[Trigger]:
    """Every trigger of a ``[triggers]`` section (``{name: table}``), in order."""
    if not isinstance(section, Mapping):
        raise TriggerError(f"[triggers] must be a table of trigger tables, got {section!r}")
    return [trigger_from_dict(table, name=name, host=host) for name, table in section.items()]
