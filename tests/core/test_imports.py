"""``import plait`` stays cheap: public names load their module on first use (PEP 562)."""

from __future__ import annotations

import importlib
import importlib.metadata
import subprocess
import sys

import pytest

import plait

HEAVY = (
    "cattrs",
    "anyio",
    "pluggy",
    "plait.cache",
    "plait.converter",
    "plait.runner",
    "plait._engine",
)


def loaded_after(code: str) -> set[str]:
    """Modules (among HEAVY) loaded by a fresh interpreter after running ``code``."""
    probe = f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    names = set(out.stdout.split())
    return {h for h in HEAVY if h in names}


def test_import_plait_loads_no_engine_converter_or_cache() -> None:
    assert loaded_after("import plait") == set()


def test_every_public_name_resolves_to_its_module() -> None:
    assert sorted(plait.__all__) == sorted(plait._EXPORTS)
    for name in plait.__all__:
        value = getattr(plait, name)
        assert value is getattr(importlib.import_module(plait._EXPORTS[name]), name)
        assert name in dir(plait)


def test_star_import_gives_every_public_name() -> None:
    namespace: dict[str, object] = {}
    exec("from plait import *", namespace)
    assert set(plait.__all__) <= set(namespace)


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        plait.nope  # type: ignore[attr-defined]  # noqa: B018


def test_cli_version_loads_no_engine() -> None:
    code = "from plait.cli import main\ntry:\n    main(['--version'])\nexcept SystemExit:\n    pass"
    assert loaded_after(code) == set()


def test_cli_version_loads_neither_click_nor_rich() -> None:
    code = "from plait.cli import main\ntry:\n    main(['--version'])\nexcept SystemExit:\n    pass"
    probe = f"{code}\nimport sys\nprint(sorted(m for m in sys.modules if m.startswith(('click', 'rich'))))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == ["plait, version " + plait.__version__, "[]"]


def test_cli_version_fast_path_prints_what_click_prints() -> None:
    from click.testing import CliRunner

    from plait.cli import VERSION_LINE, cli

    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert result.output == VERSION_LINE + "\n"
    assert importlib.metadata.version("plait") == plait.__version__


def test_cli_help_lists_core_commands_by_their_own_short_help() -> None:
    from plait.cli.app import COMMANDS

    for name, (module, attribute, short_help) in COMMANDS.items():
        command = getattr(importlib.import_module(module), attribute)
        assert command.name == name
        assert command.get_short_help_str(10_000) == short_help
