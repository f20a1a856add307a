"""plait-ui as an installed plugin: discovered from metadata, `plait ui` through the hook."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import _ui_support as support
import anyio
import pytest
from click.testing import CliRunner

from plait.cli import cli
from plait.errors import NsrefError
from plait.plugins import PluginHost
from plait_provenance_sqlite import SqliteProvenance
from plait_ui.command import load_dags

PLAIT = Path(sys.executable).with_name("plait")


def plait(*args: str) -> subprocess.CompletedProcess[str]:
    """The real console script, as a user runs it."""
    return subprocess.run(
        [str(PLAIT), *args], capture_output=True, text=True, timeout=60, check=False
    )


async def make_store(path: Path) -> None:
    async with SqliteProvenance(path):
        pass


def test_plugin_is_discovered_from_installed_metadata(host: PluginHost) -> None:
    infos = {p.name: p for p in host.plugins()}
    assert infos["ui"].distribution == "plait-ui"
    assert infos["ui"].error is None


def test_plait_has_the_ui_command_with_its_options() -> None:
    listed = CliRunner().invoke(cli, ["--help"])
    assert listed.exit_code == 0
    assert "ui " in listed.output and "web view" in listed.output
    shown = CliRunner().invoke(cli, ["ui", "--help"])
    assert shown.exit_code == 0
    for option in ("--store", "--provenance", "--host", "--port", "--allow-actions", "--dag"):
        assert option in shown.output
    assert "127.0.0.1" in shown.output


def test_a_refused_store_is_the_backends_message_not_a_traceback(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.sqlite3"
    bogus.write_text("not a database\n" * 100)
    result = plait("ui", "--store", str(bogus))
    assert result.returncode == 2, result
    assert result.stderr.startswith("error: ") and str(bogus) in result.stderr
    assert "Traceback" not in result.stderr
    assert bogus.read_text() == "not a database\n" * 100


def test_a_missing_store_is_an_error_and_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "typo.sqlite3"
    result = plait("ui", "--store", str(missing))
    assert result.returncode == 2, result
    assert f"no provenance store at {str(missing)!r}" in result.stderr
    assert not missing.exists()


def test_dag_references_are_checked(tmp_path: Path) -> None:
    store = tmp_path / "runs.sqlite3"
    anyio.run(make_store, store)
    result = plait("ui", "--store", str(store), "--allow-actions", "--dag", "plait_ui:LOCAL_HOSTS")
    assert result.returncode == 2, result
    assert "is a tuple, not a Dag" in result.stderr
    for ref, message in (
        ("no_colon", "is not a DAG reference"),
        ("plait_ui_nowhere:dag", "cannot import"),
    ):
        with pytest.raises(NsrefError, match=message):
            load_dags((ref,))
    assert load_dags(("_ui_support:shop",)) == {"shop": support.shop}
