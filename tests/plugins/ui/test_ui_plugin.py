"""plait-ui as an installed plugin: discovered from metadata, adds `plait ui` via the hook."""

from __future__ import annotations

from pathlib import Path

import anyio
import click
from click.testing import CliRunner

from plait.plugins import PluginHost
from plait_provenance_sqlite import SqliteProvenance


def test_plugin_is_discovered_from_installed_metadata(host: PluginHost) -> None:
    infos = {p.name: p for p in host.plugins()}
    assert infos["ui"].distribution == "plait-ui"
    assert infos["ui"].error is None


async def make_store(path: str) -> None:
    async with SqliteProvenance(path):
        pass


def plait_group(host: PluginHost) -> click.Group:
    @click.group()
    def cli() -> None:
        """A stand-in for the `plait` group."""

    host.add_commands(cli)
    return cli


def test_the_hook_adds_the_ui_command_with_its_options(host: PluginHost) -> None:
    cli = plait_group(host)
    assert "ui" in cli.commands
    shown = CliRunner().invoke(cli, ["ui", "--help"])
    assert shown.exit_code == 0
    for option in ("--store", "--host", "--port", "--allow-actions", "--dag", "--cache"):
        assert option in shown.output
    assert "127.0.0.1" in shown.output


def test_a_refused_store_is_the_backends_message_not_a_traceback(
    host: PluginHost, tmp_path: Path
) -> None:
    bogus = tmp_path / "notes.sqlite3"
    bogus.write_text("not a database\n" * 100)
    result = CliRunner().invoke(plait_group(host), ["ui", "--store", str(bogus)])
    assert result.exit_code == 1
    assert "Error:" in result.output and str(bogus) in result.output
    assert "Traceback" not in result.output
    assert bogus.read_text() == "not a database\n" * 100


def test_dag_references_are_checked(host: PluginHost, tmp_path: Path) -> None:
    store = str(tmp_path / "runs.sqlite3")
    anyio.run(make_store, store)
    cli = plait_group(host)
    for ref, message in (
        ("no_colon", "is not MODULE:DAG"),
        ("plait_ui_nowhere:dag", "cannot load"),
        ("plait_ui:create_app", "not a Dag"),
    ):
        result = CliRunner().invoke(cli, ["ui", "--store", store, "--allow-actions", "--dag", ref])
        assert result.exit_code == 2, result.output
        assert message in result.output


def test_a_missing_store_is_an_error_and_is_not_created(host: PluginHost, tmp_path: Path) -> None:
    missing = tmp_path / "typo.sqlite3"
    result = CliRunner().invoke(plait_group(host), ["ui", "--store", str(missing)])
    assert result.exit_code == 1
    assert f"no provenance store at {str(missing)!r}" in result.output
    assert not missing.exists()
