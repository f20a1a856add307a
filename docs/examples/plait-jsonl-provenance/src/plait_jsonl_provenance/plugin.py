"""The entry-point module: tells plait which backends this distribution provides."""

from __future__ import annotations

from plait import hookimpl
from plait.records import BackendInfo
from plait_jsonl_provenance.backend import JsonlProvenance


@hookimpl
def plait_register_provenance_backends() -> list[BackendInfo]:
    return [
        BackendInfo(
            name="jsonl",
            factory=JsonlProvenance,
            description="run history appended to a JSON-lines file (option: path)",
        )
    ]
