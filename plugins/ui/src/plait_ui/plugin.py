"""Entry-point module: adds the ``plait ui`` command through the core's command hook.

Nothing heavy is imported here: ``plait`` runs this hook on every invocation, so the web
stack loads only when ``plait ui`` itself runs.
"""

from __future__ import annotations

import click

from plait import hookimpl


@hookimpl
def plait_add_commands(cli: click.Group) -> None:
    from plait_ui.command import ui

    cli.add_command(ui)
