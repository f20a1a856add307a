"""The ``plait`` console script, end to end, in subprocesses."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

Plait = Callable[..., Any]


def assert_error_line(result: Any, *fragments: str) -> None:
    """stderr is one ``error: ...`` line naming ``fragments``, with no traceback."""
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result
    assert lines[0].startswith("error: "), result
    assert "Traceback" not in result.err
    for fragment in fragments:
        assert fragment in lines[0], result


def test_run_completed_exits_0_and_prints_json(plait: Plait) -> None:
    result = plait("run", "pipe:dag", "--input", "load.day=2024-05-03", "--json")
    assert result.code == 0, result
    data = result.json()
    assert data["status"] == "completed"
    assert data["outputs"] == {"total": 9.0}
    assert len(data["run_id"]) == 32


def test_run_inputs_are_json_then_structured(plait: Plait) -> None:
    # n=4 is JSON (an int); day is not JSON, so a string the converter makes a date;
    # an unlabelled PARAM=VALUE feeds every source node taking that parameter
    result = plait("run", "pipe:dag", "-i", "day=2024-05-02", "-i", "load.n=4", "--json")
    assert result.code == 0, result
    assert result.json()["outputs"] == {"total": 12.0}


def test_failed_run_exits_1_with_one_error_line(plait: Plait) -> None:
    result = plait("run", "pipe:dag", "-i", "load.day=2024-05-30", "-i", "load.n=100")
    assert result.code == 1, result
    assert_error_line(result, "failed at node 'total'", "ValueError: too big")
    assert "plait show" in result.out


def test_failed_run_with_debug_shows_the_traceback(plait: Plait) -> None:
    result = plait("--debug", "run", "pipe:dag", "-i", "load.day=2024-05-30", "-i", "load.n=100")
    assert result.code == 1, result
    assert "Traceback" in result.err
    assert 'raise ValueError("too big")' in result.err


def test_paused_run_exits_3_and_says_how_to_resume(plait: Plait) -> None:
    result = plait("run", "pipe:paused", "-i", "load.day=2024-05-01")
    assert result.code == 3, result
    assert "plait restart" in result.out


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["run", "nosuchmodule:dag"], ["nosuchmodule"]),
        (["run", "pipe:missing"], ["no attribute 'missing'"]),
        (["run", "pipe:not_a_dag"], ["not a Dag"]),
        (["run", "pipe"], ["MODULE:DAG"]),
        (["run", "pipe:dag", "-i", "load.day=someday"], ["--input load.day"]),
        (["run", "pipe:dag", "-i", "nonsense"], ["LABEL.PARAM=VALUE"]),
        (["show", "0123456789abcdef0123456789abcdef"], ["0123456789abcdef0123456789abcdef"]),
        (["runs", "--provenance", "postgres"], ["postgres", "sqlite"]),
        (["runs", "--since", "yesterday"], ["--since"]),
        (["runs", "--store", "typo/runs.db"], ["--store", "'typo/runs.db' does not exist"]),
        (["show", "abcd", "--store", "typo.db"], ["--store", "'typo.db' does not exist"]),
        (["logs", "abcd", "--store", "typo.db"], ["--store", "'typo.db' does not exist"]),
        (["lineage", "abcd", "x", "--store", "typo.db"], ["'typo.db' does not exist"]),
        (["restart", "abcd", "--store", "typo.db"], ["--store", "'typo.db' does not exist"]),
        (["frobnicate"], ["No such command"]),
        (["run"], ["Missing argument"]),
        (["replay", "abcd", "--rerun", "nope", "--dag", "pipe:dag"], ["nope"]),
    ],
)
def test_user_errors_exit_2_with_one_line(
    plait: Plait, args: list[str], fragments: list[str]
) -> None:
    result = plait(*args)
    assert result.code == 2, result
    assert_error_line(result, *fragments)


def test_missing_input_lists_problems_without_traceback(plait: Plait) -> None:
    result = plait("run", "pipe:dag")
    assert result.code == 2, result
    assert result.err.startswith("error: invalid run inputs")
    assert "day: date" in result.err
    assert "Traceback" not in result.err


def test_runs_show_and_graph(plait: Plait) -> None:
    ok = plait("run", "pipe:dag", "-i", "load.day=2024-05-03", "--json").json()
    bad = plait("run", "pipe:dag", "-i", "load.day=2024-05-30", "-i", "load.n=100", "--json")
    bad_id = bad.json()["run_id"]

    runs = plait("runs", "--json")
    assert runs.code == 0, runs
    listed = runs.json()
    assert [r["run_id"] for r in listed] == [bad_id, ok["run_id"]]
    failed = plait("runs", "--status", "failed", "--json").json()
    assert [r["run_id"] for r in failed] == [bad_id]
    assert plait("runs", "--since", "1h", "--limit", "1", "--json").json()[0]["run_id"] == bad_id
    assert plait("runs", "--nsref", "other", "--json").json() == []
    assert plait("runs", "--nsref", "pipe", "--json").json() == listed
    # --dag means MODULE:DAG, as in every command
    assert plait("runs", "--dag", "pipe:dag", "--json").json() == listed
    assert plait("runs", "--dag", "pipe:paused", "--json").json() == []
    table = plait("runs")
    assert bad_id in table.out and "failed at total" in table.out

    shown = plait("show", bad_id[:8], "--json")
    assert shown.code == 0, shown
    nodes = {n["label"]: n for n in shown.json()["nodes"]}
    assert nodes["load"]["status"] == "completed"
    assert nodes["total"]["status"] == "failed"
    assert nodes["total"]["error_type"] == "builtins.ValueError"
    text = plait("show", bad_id).out
    assert "ValueError: too big" in text and "EXECUTOR" in text

    mermaid = plait("show", bad_id, "--format", "mermaid").out
    assert mermaid.startswith("flowchart TD")
    assert "class n1 failed" in mermaid
    assert "classDef failed" in mermaid

    dot = plait("graph", "pipe:dag", "--format", "dot")
    assert dot.code == 0 and '"load" -> "total"' in dot.out
    assert plait("graph", "pipe.py:dag").out.startswith("flowchart TD")


def test_replay_and_restart(plait: Plait, project: Any) -> None:
    bad = plait("run", "pipe:dag", "-i", "load.day=2024-05-30", "-i", "load.n=100", "--json")
    bad_id = bad.json()["run_id"]
    # fix the bug, then resume the failed run in place: only 'total' runs again
    pipe = project / "pipe.py"
    pipe.write_text(pipe.read_text().replace("> 1000", "> 10**9"))
    restarted = plait("restart", bad_id, "--dag", "pipe:dag", "--json")
    assert restarted.code == 0, restarted
    assert restarted.json()["run_id"] == bad_id
    assert restarted.json()["outputs"] == {"total": float(sum(30 * i for i in range(100)))}

    replayed = plait("replay", bad_id, "--rerun", "total", "--dag", "pipe:dag", "--json")
    assert replayed.code == 0, replayed
    new_id = replayed.json()["run_id"]
    assert new_id != bad_id
    nodes = {n["label"]: n["status"] for n in plait("show", new_id, "--json").json()["nodes"]}
    assert nodes == {"load": "skipped", "total": "completed"}
    assert plait("show", new_id, "--json").json()["run"]["replay_of"] == bad_id


def test_restart_and_replay_need_no_dag(plait: Plait, project: Any) -> None:
    """A run started by ``plait run`` records where its DAG came from."""
    bad = plait("run", "pipe:dag", "-i", "load.day=2024-05-30", "-i", "load.n=100")
    assert bad.code == 1, bad
    bad_id = bad.err.split("error: run ", 1)[1].split()[0]
    assert f"resume it: plait restart {bad_id}\n" in bad.out, bad  # no --dag to remember
    shown = plait("show", bad_id, "--json").json()["run"]
    assert shown["dag_ref"] == "pipe:dag"
    first_work = shown["earlier_ms"] + 0.0
    assert first_work == 0.0 and shown["resumed_at"] is None
    time.sleep(1.5)  # idle between the failure and the restart: not work

    pipe = project / "pipe.py"
    pipe.write_text(pipe.read_text().replace("> 1000", "> 10**9"))
    restarted = plait("restart", bad_id[:10], "--json")  # a prefix, and no --dag
    assert restarted.code == 0, restarted
    assert restarted.json()["run_id"] == bad_id
    run = plait("show", bad_id, "--json").json()["run"]
    assert run["attempt"] == 2 and run["resumed_at"] is not None
    assert run["earlier_ms"] > 0
    table = plait("runs", "--json").json()
    assert table[0]["run_id"] == bad_id

    replayed = plait("replay", bad_id, "--rerun", "total", "--json")
    assert replayed.code == 0, replayed
    new = plait("show", replayed.json()["run_id"], "--json").json()["run"]
    assert new["replay_of"] == bad_id and new["dag_ref"] == "pipe:dag"


def test_restarted_run_duration_counts_work_not_the_idle_gap(plait: Plait, project: Any) -> None:
    bad = plait("run", "pipe:dag", "-i", "load.day=2024-05-30", "-i", "load.n=100", "--json")
    bad_id = bad.json()["run_id"]
    time.sleep(2.0)
    pipe = project / "pipe.py"
    pipe.write_text(pipe.read_text().replace("> 1000", "> 10**9"))
    assert plait("restart", bad_id, "--json").code == 0
    shown = plait("show", bad_id).out
    line = next(ln for ln in shown.splitlines() if ln.strip().startswith("duration"))
    value, unit = line.split()[1:3]
    assert unit == "ms" or float(value) < 1.5, shown  # not the 2 s the run sat failed


def test_restart_of_a_run_started_from_python_asks_for_dag(plait: Plait, project: Any) -> None:
    script = (
        "import anyio, pipe\n"
        "from plait import DagRunner\n"
        "r = anyio.run(lambda: DagRunner(pipe.dag, provenance='sqlite').run("
        "{'load': {'day': '2024-05-30', 'n': 100}}))\n"
        "print(r.run_id)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=project, capture_output=True, text=True, check=False
    )
    run_id = proc.stdout.strip().splitlines()[-1]
    result = plait("restart", run_id)
    assert result.code == 2, result
    assert_error_line(result, run_id, "--dag MODULE:DAG")
    pipe = project / "pipe.py"
    pipe.write_text(pipe.read_text().replace("> 1000", "> 10**9"))
    given = plait("restart", run_id, "--dag", "pipe:dag", "--json")
    assert given.code == 0, given


def test_lineage(plait: Plait) -> None:
    ok = plait("run", "pipe:dag", "-i", "load.day=2024-05-03", "--json").json()
    lineage = plait("lineage", ok["run_id"][:8], "total", "--json")
    assert lineage.code == 0, lineage
    data = lineage.json()
    assert data["node"]["label"] == "total"
    assert [n["label"] for n in data["lineage"]] == ["load"]
    table = plait("lineage", ok["run_id"], "total")
    assert "load" in table.out and "completed" in table.out
    source = plait("lineage", ok["run_id"], "load")
    assert "a source node" in source.out
    missing = plait("lineage", ok["run_id"], "nope")
    assert missing.code == 2
    assert_error_line(missing, "'nope'", ok["run_id"], "load, total")


def test_a_prefix_resolves_among_top_level_runs(plait: Plait, project: Any) -> None:
    """The sub-runs of a big map do not make a prefix of its run's id ambiguous."""
    db = project / "runs.sqlite3"
    script = f"""
import anyio
from datetime import UTC, datetime
from plait.records import RunRecord, RunStatus
from plait_provenance_sqlite import SqliteProvenance

async def main():
    now = datetime.now(UTC)
    async with SqliteProvenance({str(db)!r}) as prov:
        def run(run_id, parent=None):
            return RunRecord(run_id=run_id, dag_nsref="m", status=RunStatus.COMPLETED,
                             started_at=now, updated_at=now, parent_run_id=parent)
        prov.write_run(run("4fb4" + "0" * 28))
        for i in range(300):
            prov.write_run(run(f"4fb4{{i:028x}}1", parent="4fb4" + "0" * 28))
        prov.write_run(run("77aa" + "1" * 28))
        prov.write_run(run("77aa" + "2" * 28))
        await prov.commit()

anyio.run(main)
"""
    subprocess.run([sys.executable, "-c", script], cwd=project, check=True)
    shown = plait("show", "4fb4", "--store", str(db), "--json")
    assert shown.code == 0, shown
    assert shown.json()["run"]["run_id"] == "4fb4" + "0" * 28
    sub = plait("show", f"4fb4{7:028x}", "--store", str(db), "--json")  # only a sub-run
    assert sub.json()["run"]["parent_run_id"] == "4fb4" + "0" * 28
    ambiguous = plait("show", "77aa", "--store", str(db))
    assert ambiguous.code == 2
    assert_error_line(ambiguous, "'77aa' is ambiguous", "2 runs")


def test_loop_trio_without_trio_is_a_usage_error(plait: Plait, project: Any) -> None:
    hide = project / "no_trio"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text("import sys\nsys.modules['trio'] = None\n")
    result = plait("--loop", "trio", "runs", env={"PYTHONPATH": str(hide)})
    assert result.code == 2, result
    assert_error_line(result, "--loop", "trio", "pip install trio")


def test_store_path_option(plait: Plait, project: Any) -> None:
    db = project / "here.sqlite3"
    ran = plait("run", "pipe:dag", "-i", "load.day=2024-05-03", "--store", str(db), "--json")
    assert ran.code == 0, ran
    assert db.exists()
    listed = plait("runs", "--store", str(db), "--json").json()
    assert [r["run_id"] for r in listed] == [ran.json()["run_id"]]
    assert plait("runs", "--json").json() == []  # the default file knows nothing of it
    same = plait("runs", "--provenance", "sqlite", "--store", str(db), "--json").json()
    assert same == listed


def test_provenance_is_a_name_never_a_path(plait: Plait, project: Any) -> None:
    db = project / "here.sqlite3"
    result = plait("runs", "--provenance", str(db))
    assert result.code == 2, result
    assert_error_line(result, f"no provenance backend named {str(db)!r}", "--store PATH")
    assert not db.exists()


@pytest.mark.parametrize("args", [[], ["cache"]])
def test_a_group_without_a_command_prints_its_help(plait: Plait, args: list[str]) -> None:
    result = plait(*args)
    assert result.code == 0, result
    assert result.err == ""
    assert result.out.strip().startswith(f"Usage: plait {' '.join(args)}".rstrip() + " [OPTIONS]")
    assert "Commands" in result.out


def test_plugins_lists_first_party_and_the_example_plugin(plait: Plait) -> None:
    result = plait("plugins", "--json")
    assert result.code == 0, result
    by_name = {p["name"]: p for p in result.json()}
    assert by_name["provenance-sqlite"]["provides"] == ["provenance:sqlite", "trigger-store:sqlite"]
    example = by_name["jsonl-provenance"]
    assert example["distribution"] == "plait-jsonl-provenance"
    assert example["version"] == "0.1.0"
    assert example["provides"] == ["provenance:jsonl"]
    assert example["ok"] is True
    table = plait("plugins").out
    assert "plait-jsonl-provenance" in table and "provenance:jsonl" in table


def test_broken_plugin_is_reported_not_fatal(plait: Plait, project: Any) -> None:
    dist = project / "plait_broken-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: plait-broken\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[plait]\nbroken = plait_broken_nowhere.plugin\n")
    env = {"PLAIT_STRICT_PLUGINS": "0", "PYTHONPATH": str(project)}
    result = plait("plugins", "--json", env=env)
    assert result.code == 0, result
    by_name = {p["name"]: p for p in result.json()}
    assert by_name["broken"]["ok"] is False
    assert "plait_broken_nowhere" in by_name["broken"]["error"]
    assert by_name["provenance-sqlite"]["ok"] is True
    table = plait("plugins", env=env)
    assert "failed to load" in table.out and "Traceback" in table.out


def test_example_plugin_backend_by_name(plait: Plait, project: Any) -> None:
    env = {"PLAIT_JSONL_PATH": str(project / "runs.jsonl")}
    ran = plait(
        "run", "pipe:dag", "-i", "load.day=2024-05-03", "--provenance", "jsonl", "--json", env=env
    )
    assert ran.code == 0, ran
    assert (project / "runs.jsonl").exists()
    listed = plait("runs", "--provenance", "jsonl", "--json", env=env).json()
    assert [r["run_id"] for r in listed] == [ran.json()["run_id"]]


def test_missing_sqlite_plugin_names_the_package(plait: Plait) -> None:
    result = plait("runs", env={"PLAIT_DISABLE_PLUGINS": "provenance-sqlite"})
    assert result.code == 2, result
    assert_error_line(result, "pip install plait-provenance-sqlite")


def test_demo_twice_shows_cache_hits(plait: Plait) -> None:
    first = plait("demo", "--orders", "12", "--json")
    assert first.code == 0, first
    one = first.json()
    assert one["status"] == "completed"
    assert one["cache"]["misses"] > 0 and one["cache"]["hits"] == 0
    assert one["report"]["orders"] > 0

    second = plait("demo", "--orders", "12")
    assert second.code == 0, second
    assert "0 misses" in second.out and "served from the cache" in second.out
    assert "plait show " in second.out and "plait runs" in second.out
    # the test session installs plait-ui: the demo points at the web view
    assert "plait ui" in second.out

    listed = plait("runs", "--json").json()
    assert len(listed) == 2 and {r["dag_nsref"] for r in listed} == {"plait.demo"}
    shown = plait("show", listed[0]["run_id"], "--json").json()
    assert shown["sub_runs"]["score_orders"]["completed"] == one["report"]["orders"]

    stats = plait("cache", "stats", "--json")
    assert stats.code == 0, stats
    by_id = {s["callable_id"]: s for s in stats.json()["callables"]}
    assert by_id["plait.demo:lookup_customer"]["hits"] > 0
    assert plait("cache", "prune", "--json").json() == {"pruned": 0}
    cleared = plait("cache", "clear", "plait.demo:exchange_rate", "--json").json()
    assert cleared["cleared"] > 0
    assert plait("cache", "clear").code == 0
    assert plait("cache", "stats", "--json").json() == {"callables": [], "pushbacks": []}


def install_command_plugin(project: Any, name: str, source: str) -> dict[str, str]:
    """A real distribution on PYTHONPATH whose plugin adds commands to ``plait``."""
    module = f"plait_{name}_commands"
    (project / f"{module}.py").write_text(source)
    dist = project / f"plait_{name}-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: plait-{name}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[plait]\n{name} = {module}\n")
    return {"PYTHONPATH": str(project)}


def test_plugins_add_commands_to_plait(plait: Plait, project: Any) -> None:
    env = install_command_plugin(
        project,
        "hello",
        "import click\n"
        "from plait import hookimpl\n\n"
        "@hookimpl\n"
        "def plait_add_commands(cli):\n"
        "    @cli.command()\n"
        "    @click.argument('name')\n"
        "    def hello(name):\n"
        "        '''Say hello.'''\n"
        "        click.echo(f'hello {name}')\n",
    )
    assert plait("hello", "world", env=env).out == "hello world\n"
    listed = plait("--help", env=env).out
    assert "hello" in listed and "Say hello." in listed
    assert plait("run", "pipe:dag", "-i", "load.day=2024-05-03", env=env).code == 0


def test_a_plugin_cannot_replace_a_command_and_a_broken_one_spares_the_core(
    plait: Plait, project: Any
) -> None:
    env = install_command_plugin(
        project,
        "clash",
        "import click\n"
        "from plait import hookimpl\n\n"
        "@hookimpl\n"
        "def plait_add_commands(cli):\n"
        "    cli.add_command(click.Command('runs', callback=lambda: None))\n",
    )
    result = plait("nosuchcommand", env=env)
    assert result.code == 2, result
    assert_error_line(result, "plugin 'clash' tried to add the command 'runs'")
    assert plait("runs", env=env).code == 0  # core commands never wait on plugin commands


SWITCHING = """
from plait import Dag, DagContext


def route(x: int) -> tuple[str, int]:
    return ("even" if x % 2 == 0 else "odd", x)


def half(x: int) -> int:
    return x // 2


def triple(x: int) -> int:
    return 3 * x + 1


def lookup(key: str) -> int:
    return len(key)


def show(n: int, ctx: DagContext) -> str:
    return f"{n} {ctx.call('lookup', key='abc')}"


with Dag("sw") as dag:
    dag.namespace.register(lookup)
    dag.node(route) >> dag.switch({"even": half, "odd": triple}, label="step") >> dag.node(show)
"""


def test_show_tree_prints_the_run_with_its_sub_runs(plait: Plait, project: Path) -> None:
    (project / "switching.py").write_text(SWITCHING)
    ran = plait("run", "switching:dag", "-i", "route.x=3", "--json")
    assert ran.code == 0, ran
    run_id = ran.json()["run_id"]
    shown = plait("show", run_id[:8], "--tree")
    assert shown.code == 0, shown
    out = shown.out
    assert run_id in out
    assert "step[odd]" in out and "switch sub-run" in out
    assert "step[even]" in out and "skipped" in out
    assert "show/call:lookup#1" in out and "ctx.call sub-run" in out
    tree = plait("show", run_id, "--tree", "--json").json()
    assert tree["run"]["run_id"] == run_id
    assert {c["name"] for c in tree["children"]} == {"step[odd]", "show/call:lookup#1"}


def test_a_mistyped_store_path_creates_nothing(plait: Plait, project: Path) -> None:
    for command in (["runs"], ["show", "abcd"], ["logs", "abcd"], ["restart", "abcd"]):
        assert plait(*command, "--store", "typo/runs.db").code == 2
    assert not (project / "typo").exists()
