"""Entry-point module: adds the ``plait ui`` command through the core's command hook.

Nothing heavy is imported here: ``plait`` runs this hook on every invocation, so the web
stack loads only when ``plait ui`` itself runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from plait import hookimpl

if TYPE_CHECKING:
    import click


@hookimpl
def plait_add_commands(cli: click.Group) -> None:
    from plait_ui.command import ui

    cli.add_command(ui)
