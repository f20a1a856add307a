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
from plait.config import load
from plait.errors import NsrefError
from plait.plugins import PluginHost
from plait_provenance_sqlite import SqliteProvenance
from plait_ui.command import choose_store, load_dags, open_store, open_trigger_store

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
    options = (
        "--config",
        "--store",
        "--provenance",
        "--host",
        "--port",
        "--allow-actions",
        "--dag",
    )
    for option in options:
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


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[storage]\nbogus = 1\n", "storage.bogus: unknown key 'bogus'"),
        ("[storage.provenance]\nbackend = 'nosuch'\n", "storage.provenance"),
        ("this is not toml", "not valid TOML"),
    ],
)
def test_a_bad_config_file_is_the_config_layers_message(
    tmp_path: Path, text: str, message: str
) -> None:
    config = tmp_path / "plait.toml"
    config.write_text(text)
    result = plait("ui", "--config", str(config))
    assert result.returncode == 2, result
    assert result.stderr.startswith("error: invalid configuration"), result.stderr
    assert message in result.stderr and "plait.toml" in result.stderr
    assert "Traceback" not in result.stderr
    missing = plait("ui", "--config", str(tmp_path / "nothere.toml"))
    assert missing.returncode == 2 and "cannot read the file" in missing.stderr


def test_command_line_options_win_over_the_config_file(tmp_path: Path, host: PluginHost) -> None:
    pytest.importorskip("plait_cache_sqlite")  # the file's [storage.cache] names it
    configured, other = tmp_path / "configured.sqlite3", tmp_path / "other.sqlite3"
    for path in (configured, other):
        anyio.run(make_store, path)
    config_file = tmp_path / "plait.toml"
    config_file.write_text(
        '[storage.provenance]\nbackend = "sqlite"\npath = "configured.sqlite3"\n'
        '[storage.cache]\nbackend = "sqlite"\npath = "cache.sqlite3"\n'
    )
    with load(config_file, host=host) as config:
        from_file = choose_store(None, None, config)
        overridden = choose_store(None, other, config)
        assert open_store(host, from_file)[1] == str(configured)
        assert open_store(host, overridden)[1] == str(other)
        assert choose_store(None, None, None).options == {}  # the backend's default file
        triggers = open_trigger_store(host, from_file)
        assert triggers is not None and triggers.path == configured  # type: ignore[attr-defined]
        assert open_trigger_store(host, overridden).path == other  # type: ignore[union-attr]


def test_a_backend_without_a_trigger_store_gets_none(tmp_path: Path, host: PluginHost) -> None:
    pytest.importorskip("plait_jsonl_provenance")
    choice = choose_store("jsonl", tmp_path / "runs", None)
    assert open_trigger_store(host, choice) is None


def test_the_config_files_dags_may_be_restarted(tmp_path: Path, host: PluginHost) -> None:
    config_file = tmp_path / "plait.toml"
    config_file.write_text('[[entries]]\ngref = "_ui_support:greet"\nnsref = "pipelines:greet"\n')
    with load(config_file, host=host) as config:
        dags = load_dags(("_ui_support:shop",), config)
    assert dags == {"pipelines:greet": support.greet, "shop": support.shop}


def test_loading_the_plugins_leaves_the_web_stack_unimported() -> None:
    """Every DagRunner and every plait command loads the installed plugins: the web view's
    entry point must not bring Starlette, Jinja2, Hypercorn or click with it."""
    probe = (
        "import sys\n"
        "from plait.plugins import default_host\n"
        "default_host().ensure_loaded()\n"
        "assert 'plait_ui.plugin' in sys.modules  # the plugin itself is loaded\n"
        "heavy = ('starlette', 'jinja2', 'hypercorn', 'click', 'plait_ui.app')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy or m in heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]", out.stdout
