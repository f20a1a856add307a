"""The core's own registrations: backends that ship with ``plait`` itself."""

from __future__ import annotations

from plait.hookspecs import hookimpl
from plait.null import NullProvenance
from plait.records import BackendInfo
from plait.triggers.kinds import TriggerKind, builtin_kinds


@hookimpl
def plait_register_provenance_backends() -> list[BackendInfo]:
    return [
        BackendInfo(
            name="null",
            factory=NullProvenance,
            description="discards every write (the default for `await dag()`)",
        )
    ]


@hookimpl
def plait_register_trigger_kinds() -> list[TriggerKind]:
    return builtin_kinds()
