"""Problems found in declarative data (a configuration file, a namespace dict), collected
so every one is reported at once, each naming its file and key."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

__all__ = ["Checker", "Problem", "join"]


@attrs.frozen(kw_only=True)
class Problem:
    """One thing wrong: ``key`` is its dotted path (``entries[2].cache.min_ttl``), ``file``
    the configuration file (``None`` for data given in code)."""

    file: str | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.key}" if self.file else self.key
        return f"{where}: {self.message}"


def _kind(value: object) -> str:
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list | tuple):
        return "a list"
    return f"{type(value).__name__} {value!r}"


class Checker:
    """Collects :class:`Problem` records while data is read."""

    def __init__(self, file: str | None = None) -> None:
        self.file = file
        self.problems: list[Problem] = []

    def add(self, key: str, message: str) -> None:
        self.problems.append(Problem(file=self.file, key=key, message=message))

    def table(
        self, value: object, key: str, known: Iterable[str] | None
    ) -> Mapping[str, Any] | None:
        """``value`` if it is a table whose keys are all ``known`` (``None``: any key);
        a problem per unknown key, with the closest known one as a suggestion."""
        if not isinstance(value, Mapping):
            self.add(key, f"must be a table, got {_kind(value)}")
            return None
        if known is not None:
            names = sorted(known)
            for name in value:
                if name not in names:
                    close = difflib.get_close_matches(str(name), names, n=1)
                    hint = f"; did you mean {close[0]!r}?" if close else ""
                    self.add(
                        join(key, name),
                        f"unknown key {name!r}{hint} (known: {', '.join(names)})",
                    )
        return value

    def string(
        self, table: Mapping[str, Any], name: str, key: str, *, required: bool = False
    ) -> str | None:
        value = table.get(name)
        if value is None:
            if required:
                self.add(join(key, name), "is required")
            return None
        if not isinstance(value, str) or not value:
            self.add(join(key, name), f"must be a non-empty string, got {_kind(value)}")
            return None
        return value

    def strings(self, table: Mapping[str, Any], name: str, key: str) -> list[str] | None:
        value = table.get(name)
        if value is None:
            return None
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            self.add(join(key, name), f"must be a list of strings, got {_kind(value)}")
            return None
        return list(value)

    def records(self, value: object, key: str) -> list[tuple[str, Any]]:
        """``[(key[i], item), ...]`` for a list; a problem for anything else."""
        if value is None:
            return []
        if not isinstance(value, list | tuple):
            self.add(key, f"must be a list of tables, got {_kind(value)}")
            return []
        return [(f"{key}[{i}]", item) for i, item in enumerate(value)]


def join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name
