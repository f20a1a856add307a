"""A module whose entry another module imports (register_module must skip it there)."""

from __future__ import annotations

from plait import entry


@entry(tags=["elsewhere"])
def imported_elsewhere(x: int) -> int:
    return x
