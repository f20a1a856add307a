"""``plait graph``: a DAG drawn as Mermaid or Graphviz text."""

from __future__ import annotations

import rich_click as click

from plait.cli.common import State, pass_state
from plait.cli.config import dag_for

__all__ = ["graph"]


@click.command()
@click.argument("dag_ref", metavar="MODULE:DAG|NSREF")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["mermaid", "dot"]),
    default="mermaid",
    show_default=True,
)
@pass_state
def graph(state: State, dag_ref: str, fmt: str) -> None:
    """Print the DAG MODULE:DAG (or NSREF of the --config file) as a Mermaid flowchart or a
    Graphviz digraph."""
    dag, _ = dag_for(state, dag_ref)
    dag.validate()
    click.echo(dag.to_mermaid() if fmt == "mermaid" else dag.to_dot(), nl=False)
