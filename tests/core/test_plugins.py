"""The plugin host: entry points from installed metadata, guarded loading, look-ups (SPEC 2)."""

from __future__ import annotations

import inspect
import textwrap
from pathlib import Path

import pytest

import plait
from plait import Dag, DagRunner, hookimpl, hookspecs
from plait.errors import (
    BackendError,
    BackendNotFoundError,
    DuplicateBackendError,
    PlaitWarning,
    PluginHookError,
)
from plait.plugins import PluginHost
from plait.records import BackendInfo, NodeRecord


def install_fake_distribution(root: Path, name: str, module: str, source: str) -> None:
    """Lay out a real distribution (module + .dist-info with entry_points.txt) on sys.path."""
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{name.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[plait]\n{name.removeprefix('plait-')} = {module}\n")


def test_executors_plugin_is_discovered_from_installed_metadata(host: PluginHost) -> None:
    executors = host.backends("executor")
    assert {"inline", "thread"} <= set(executors)
    assert executors["thread"].distribution == "plait-executors"
    infos = {p.name: p for p in host.plugins()}
    assert infos["executors"].distribution == "plait-executors"
    assert "executor:thread" in infos["executors"].provides
    ex = plait.get_executor("thread", host=host)
    assert type(ex).__name__ == "ThreadExecutor" and ex.name == "thread"


def test_unknown_backend_lists_installed_and_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLAIT_DISABLE_PLUGINS", "provenance-sqlite")
    host = PluginHost()
    with pytest.raises(BackendNotFoundError) as info:
        host.create("provenance", "sqlite")
    msg = str(info.value)
    assert "no provenance backend named 'sqlite' (installed: " in msg
    assert "null" in msg
    assert "pip install plait-provenance-sqlite" in msg
    assert isinstance(info.value, LookupError)
    with pytest.raises(BackendNotFoundError) as info:
        host.create("executor", "warp-drive")
    assert "inline" in str(info.value)
    assert "thread" in str(info.value)


def test_bad_options_name_the_backend(host: PluginHost) -> None:
    with pytest.raises(BackendError, match="executor backend 'inline' from plait-executors"):
        host.create("executor", "inline", bogus=1)


def test_broken_plugin_is_reported_and_others_still_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_fake_distribution(tmp_path, "plait-broken", "plait_broken_fixture", "import nope\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PLAIT_STRICT_PLUGINS", "0")
    host = PluginHost()
    infos = {p.name: p for p in host.plugins()}
    assert infos["broken"].distribution == "plait-broken"
    assert infos["broken"].version == "1.2.3"
    assert "ModuleNotFoundError" in (infos["broken"].error or "")
    assert "thread" in host.backends("executor")  # the others still work

    monkeypatch.setenv("PLAIT_STRICT_PLUGINS", "1")
    with pytest.raises(BackendError, match="plugin 'broken' from plait-broken failed to load"):
        PluginHost().plugins()


def test_disable_and_allow_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLAIT_DISABLE_PLUGINS", "executors")
    assert "thread" not in PluginHost().backends("executor")
    monkeypatch.delenv("PLAIT_DISABLE_PLUGINS")
    monkeypatch.setenv("PLAIT_LOAD_PLUGINS", "nothing-else")
    assert PluginHost().backends("executor") == {}


def test_duplicate_backend_names_both_distributions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_fake_distribution(
        tmp_path,
        "plait-rival",
        "plait_rival_fixture",
        """
        from plait import hookimpl
        from plait.records import BackendInfo

        @hookimpl
        def plait_register_executors():
            return [BackendInfo(name="thread", factory=object)]
        """,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(DuplicateBackendError) as info:
        PluginHost().backends("executor")
    assert "plait-executors" in str(info.value) and "plait-rival" in str(info.value)


def test_in_process_plugin_and_instances(host: PluginHost) -> None:
    class Mine:
        @hookimpl
        def plait_register_cache_backends(self) -> list[BackendInfo]:
            return [BackendInfo(name="mine", factory=dict)]

    host.register(Mine(), name="mine")
    assert host.create("cache", "mine", a=1) == {"a": 1}


def test_facade_covers_every_hookspec() -> None:
    specs = {
        name
        for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
        if name.startswith("plait_")
    }
    lifecycle = {s for s in specs if s.startswith("plait_on_")}
    facade = {f"plait_{m}" for m in dir(PluginHost) if m.startswith("on_")}
    assert facade == lifecycle
    assert "plait_add_commands" in specs and callable(PluginHost.add_commands)
    registrations = specs - lifecycle - {"plait_add_commands"}
    assert registrations == {
        "plait_register_executors",
        "plait_register_provenance_backends",
        "plait_register_cache_backends",
        "plait_register_trigger_stores",
        "plait_register_trigger_kinds",
    }


def test_plugins_add_commands_and_cannot_replace_one() -> None:
    import click
    from click.testing import CliRunner

    @click.group()
    def cli() -> None:
        pass

    @cli.command()
    def runs() -> None:
        click.echo("core runs")

    class Adds:
        @hookimpl
        def plait_add_commands(self, cli: click.Group) -> None:
            @cli.command()
            def hello() -> None:
                click.echo("hello from a plugin")

    host = PluginHost(load_entry_points=False)
    host.register(Adds(), name="adds")
    host.add_commands(cli)
    assert CliRunner().invoke(cli, ["hello"]).output == "hello from a plugin\n"

    class Replaces:
        @hookimpl
        def plait_add_commands(self, cli: click.Group) -> None:
            cli.add_command(click.Command("runs", callback=lambda: None))

    other = PluginHost(load_entry_points=False)
    other.register(Replaces(), name="replaces")
    with pytest.raises(
        BackendError,
        match="plugin 'replaces' tried to add the command 'runs', which plait itself already",
    ):
        other.add_commands(cli)
    assert CliRunner().invoke(cli, ["runs"]).output == "core runs\n"

    class AddsHelloToo:
        @hookimpl
        def plait_add_commands(self, cli: click.Group) -> None:
            cli.add_command(click.Command("hello", callback=lambda: None))

    @click.group()
    def fresh() -> None:
        pass

    both = PluginHost(load_entry_points=False)
    both.register(Adds(), name="adds")
    both.register(AddsHelloToo(), name="adds-too")
    with pytest.raises(BackendError, match="'hello', which plugin 'adds' already provides"):
        both.add_commands(fresh)

    class Broken:
        @hookimpl
        def plait_add_commands(self, cli: click.Group) -> None:
            raise RuntimeError("no click here")

    broken = PluginHost(load_entry_points=False)
    broken.register(Broken(), name="broken")
    with pytest.raises(BackendError, match="plugin 'broken' failed to add its commands"):
        broken.add_commands(fresh)


def test_core_never_imports_a_plugin() -> None:
    core = Path(plait.__file__).parent
    for path in core.rglob("*.py"):
        text = path.read_text()
        for plugin in (
            "plait_executors",
            "plait_provenance_sqlite",
            "plait_cache_sqlite",
            "plait_dask",
            "plait_ui",
        ):
            assert f"import {plugin}" not in text and f"from {plugin}" not in text, path


def test_misspelled_hookimpl_is_an_error_naming_it(host: PluginHost) -> None:
    class Typo:
        @hookimpl
        def plait_on_node_finsh(self, node: object) -> None:  # misspelled
            pass

    with pytest.raises(PluginHookError) as info:
        host.register(Typo(), name="typo")
    msg = str(info.value)
    assert "plugin 'typo'" in msg and "plait_on_node_finsh" in msg
    assert "did you mean plait_on_node_finish?" in msg
    assert info.value.plugin == "typo" and info.value.hooks == ("plait_on_node_finsh",)
    assert isinstance(info.value, TypeError)
    assert "typo" not in {p.name for p in host.plugins()}  # left unregistered
    assert not host.observes("plait_on_node_finish")


def test_hookimpl_with_a_parameter_the_spec_lacks_names_the_hook(host: PluginHost) -> None:
    class WrongArg:
        @hookimpl
        def plait_on_node_start(self, nod: object) -> None:
            pass

    with pytest.raises(PluginHookError, match=r"plugin 'wrong'.*plait_on_node_start"):
        host.register(WrongArg(), name="wrong")


def test_misspelled_hook_in_an_entry_point_plugin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_fake_distribution(
        tmp_path,
        "plait-typo",
        "plait_typo_fixture",
        """
        from plait import hookimpl

        @hookimpl
        def plait_on_run_finnish(run):
            pass
        """,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginHookError, match=r"plugin 'typo'.*plait_on_run_finnish"):
        PluginHost().plugins()
    monkeypatch.setenv("PLAIT_STRICT_PLUGINS", "0")
    host = PluginHost()
    infos = {p.name: p for p in host.plugins()}
    assert "did you mean plait_on_run_finish?" in (infos["typo"].error or "")
    assert "thread" in host.backends("executor")  # the others still load


def test_wrapper_on_a_lifecycle_hook_is_refused(host: PluginHost) -> None:
    class Wraps:
        @hookimpl(wrapper=True)
        def plait_on_run_start(self, run: object) -> object:
            return (yield)

    with pytest.raises(PluginHookError, match="plait_on_run_start as a wrapper"):
        host.register(Wraps(), name="wraps")


def test_observing_is_known_per_hook(host: PluginHost) -> None:
    assert not host.observing
    assert not host.observes("plait_on_run_finish")

    class Finish:
        @hookimpl
        def plait_on_run_finish(self) -> None:  # takes fewer parameters than the spec
            pass

    name = host.register(Finish())
    assert host.observing and host.observes("plait_on_run_finish")
    assert not host.observes("plait_on_node_start")
    host.unregister(name)
    assert not host.observing and not host.observes("plait_on_run_finish")
    with pytest.raises(ValueError, match="plait_register_executors"):
        host.observes("plait_register_executors")


@pytest.mark.anyio
async def test_a_raising_observer_is_reported_once_and_the_run_goes_on(
    host: PluginHost,
) -> None:
    class Faulty:
        calls = 0

        @hookimpl
        def plait_on_node_finish(self, node: NodeRecord) -> None:
            Faulty.calls += 1
            raise RuntimeError(f"metrics server down at {node.label}")

    class Healthy:
        def __init__(self) -> None:
            self.finished: list[str] = []

        @hookimpl
        def plait_on_node_finish(self, node: NodeRecord) -> None:
            self.finished.append(node.label)

    healthy = Healthy()
    host.register(healthy, name="healthy")
    host.register(Faulty(), name="faulty-metrics")  # called first: last registered

    def one() -> int:
        return 1

    def double(x: int) -> int:
        return 2 * x

    def triple(x: int) -> int:
        return 3 * x

    with Dag("observed-faulty") as dag:
        dag.node(one) >> dag.node(double) >> dag.node(triple)

    with pytest.warns(PlaitWarning) as caught:
        result = await DagRunner(dag, host=host, executor="inline").run()
    assert result.ok and result.outputs == {"triple": 6}
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "plugin 'faulty-metrics'" in message and "plait_on_node_finish" in message
    assert "RuntimeError: metrics server down at one" in message
    assert Faulty.calls == 1
    assert healthy.finished == ["one", "double", "triple"]  # the others still hear every event
    assert host.disabled == {
        ("faulty-metrics", "plait_on_node_finish"): "RuntimeError: metrics server down at one"
    }
