"""mkdocs hook: the command-line reference, generated from the click application.

A page line ``<!-- cli-reference: plait.cli:cli -->`` is replaced by one section per
command of that click group (sub-groups included): its help, its usage line and a table of
its options as ``--help`` prints them (defaults and choices included). Generating it at
build time keeps the reference and the application from drifting apart.
"""

from __future__ import annotations

import html
import importlib
import inspect
import re
from typing import Any

import click

MARKER = re.compile(r"^<!-- cli-reference: ([\w.]+):(\w+) -->$", re.M)


def help_markdown(text: str) -> str:
    """Click help text as Markdown: a ``\\b`` paragraph (kept as written) becomes code."""
    blocks = []
    for paragraph in inspect.cleandoc(text).split("\n\n"):
        if paragraph.startswith("\b\n"):
            blocks.append("```text\n" + paragraph[2:] + "\n```")
        else:
            blocks.append(" ".join(paragraph.split()))
    return "\n\n".join(blocks)


def cell(text: str) -> str:
    return html.escape(" ".join(text.split())).replace("|", "&#124;")


def options_table(command: click.Command, ctx: click.Context) -> str:
    rows = []
    for param in command.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is not None:
            rows.append(f"| <code>{cell(record[0])}</code> | {cell(record[1])} |")
    if not rows:
        return ""
    return "| Option | Description |\n|---|---|\n" + "\n".join(rows)


def sections(command: click.Command, ctx: click.Context, level: int) -> list[str]:
    title = ctx.command_path
    parts = [f"{'#' * level} `{title}`", help_markdown(command.help or "")]
    parts.append(f"```text\n{command.get_usage(ctx)}\n```")
    table = options_table(command, ctx)
    if table:
        parts.append(table)
    out = ["\n\n".join(p for p in parts if p)]
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                sub_ctx = click.Context(sub, info_name=name, parent=ctx)
                out += sections(sub, sub_ctx, level if level > 2 else level + 1)
    return out


def reference(module: str, attribute: str) -> str:
    group: Any = getattr(importlib.import_module(module), attribute)
    ctx = click.Context(group, info_name="plait")
    return "\n\n".join(sections(group, ctx, level=2))


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    return MARKER.sub(lambda m: reference(m.group(1), m.group(2)), markdown)
