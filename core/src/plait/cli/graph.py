"""``plait graph``: a DAG drawn as Mermaid or Graphviz text."""

from __future__ import annotations

import rich_click as click

from plait.cli.loading import load_dag

__all__ = ["graph"]


@click.command()
@click.argument("dag_ref", metavar="MODULE:DAG")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["mermaid", "dot"]),
    default="mermaid",
    show_default=True,
)
def graph(dag_ref: str, fmt: str) -> None:
    """Print the DAG MODULE:DAG as a Mermaid flowchart or a Graphviz digraph."""
    dag = load_dag(dag_ref)
    dag.validate()
    click.echo(dag.to_mermaid() if fmt == "mermaid" else dag.to_dot(), nl=False)
