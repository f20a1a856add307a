"""``plait plugins``: every plugin, its distribution, version, what it provides or why it
failed."""

from __future__ import annotations

import importlib.metadata
from typing import Any

import rich_click as click
from rich.table import Table
from rich.text import Text

from plait.cli.common import State, echo_json, json_option, make_console, pass_state
from plait.plugins import PluginHost
from plait.records import PluginInfo

__all__ = ["plugins"]


def _version(info: PluginInfo) -> str | None:
    if info.version is not None or not info.distribution:
        return info.version
    try:
        return importlib.metadata.version(info.distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _rows(host: PluginHost) -> list[dict[str, Any]]:
    infos = host.plugins()
    pm = host.manager
    rows: list[dict[str, Any]] = []
    for info in infos:
        plugin = pm.get_plugin(info.name)
        hooks = sorted(
            caller.name
            for caller in (pm.get_hookcallers(plugin) or [] if plugin is not None else [])
            if not caller.name.startswith("plait_register_")
        )
        rows.append(
            {
                "name": info.name,
                "distribution": info.distribution,
                "version": _version(info),
                "provides": list(info.provides),
                "hooks": hooks,
                "ok": info.error is None,
                "error": info.error,
            }
        )
    return rows


@click.command()
@json_option
@pass_state
def plugins(state: State, as_json: bool) -> None:
    """List every plugin: its distribution, version, what it provides, or why it failed."""
    rows = _rows(state.host)
    if as_json:
        echo_json(rows)
        return
    console = make_console()
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("PLUGIN", "DISTRIBUTION", "VERSION", "PROVIDES", "STATUS"):
        table.add_column(column, no_wrap=column != "PROVIDES")
    for row in rows:
        provides = ", ".join([*row["provides"], *row["hooks"]])
        status = Text("ok", style="green") if row["ok"] else Text("failed", style="red")
        table.add_row(
            row["name"], row["distribution"] or "", row["version"] or "", provides, status
        )
    console.print(table)
    for row in rows:
        if row["error"]:
            console.print()
            console.print(
                Text(f"plugin {row['name']!r} ({row['distribution']}) failed to load:", "red")
            )
            console.print(Text(row["error"].rstrip()))
