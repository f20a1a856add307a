"""A user's install from a clone: wheels built with pip alone, installed into a fresh venv.

No editable install and nothing of the suite's own environment: the venv sees only the
built wheels and what they declare. In it, the README's example runs, `plait plugins` lists
the first-party plugins from their entry points, and `plait runs` lists a run made by
`plait run`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
BACKEND = os.environ.get("PLAIT_TEST_BACKEND", "asyncio")
# read before the suite's fixtures point HOME at a temporary directory: pip keeps its
# download cache there, and a fresh cache per test would download every dependency again
PIP_CACHE_DIR = os.environ.get("PIP_CACHE_DIR") or str(Path.home() / ".cache" / "pip")
DISTRIBUTIONS = (
    "core",
    "plugins/executors",
    "plugins/provenance-sqlite",
    "plugins/cache-sqlite",
    "plugins/ui",
)
PIPELINE = """
from plait import Dag


def numbers(n: int) -> list[int]:
    return list(range(n))


def total(values: list[int]) -> int:
    return sum(values)


with Dag("install_check") as dag:
    dag.node(numbers) >> dag.node(total)
"""

#: plain sync functions: they run on the default executor, `thread`, from plait-executors
PLAIN_DEF = """
import threading

import anyio

from plait import Dag


def double(n: int) -> int:
    return 2 * n


def plus_one(x: int) -> str:
    on_loop_thread = threading.current_thread() is threading.main_thread()
    return f"{x + 1} {'main' if on_loop_thread else 'worker'}"


with Dag("plain") as dag:
    dag.node(double) >> dag.node(plus_one)

result = anyio.run(lambda: dag(n=2))
print(result.status, result.outputs["plus_one"])
"""

pytestmark = [
    pytest.mark.slow,
    pytest.mark.xdist_group("install"),  # one worker builds the venv once for the module
    pytest.mark.skipif(
        BACKEND != "asyncio", reason="does not depend on the event loop: runs on the asyncio pass"
    ),
]


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"^```python\n(.*?)^```", text, re.DOTALL | re.M)
    assert match, "README.md has no python example"
    return match.group(1)


class Venv:
    def __init__(self, path: Path, cwd: Path) -> None:
        self.bin = path / "bin"
        self.cwd = cwd
        self.plain_install: tuple[set[str], str] = (set(), "")
        # a home of its own: the default provenance and cache files land there
        home = cwd / "home"
        self.env = {
            **os.environ,
            "HOME": str(home),
            "XDG_DATA_HOME": str(home / "data"),
            "XDG_CACHE_HOME": str(home / "cache"),
            "PIP_CACHE_DIR": PIP_CACHE_DIR,
            "COLUMNS": "200",
        }
        for name in ("PYTHONPATH", "VIRTUAL_ENV", "PLAIT_PROVENANCE", "PLAIT_CACHE"):
            self.env.pop(name, None)

    def pip_names(self) -> set[str]:
        listed = json.loads(self.run("python", "-m", "pip", "list", "--format", "json"))
        return {d["name"] for d in listed}

    def run(self, program: str, *args: str, timeout: float = 120) -> str:
        proc = subprocess.run(
            [str(self.bin / program), *args],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert proc.returncode == 0, f"{program} {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """A fresh venv with `plait[all]` installed from wheels built out of this tree."""
    base = tmp_path_factory.mktemp("install")
    venv.create(base / "venv", with_pip=True)
    env = Venv(base / "venv", cwd=base)
    dist = base / "dist"
    packages = [str(ROOT / d) for d in DISTRIBUTIONS]
    env.run("python", "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), *packages)
    # first plain `plait`, as `pip install plait` gets it: what it brings must run a def node
    env.run("python", "-m", "pip", "install", "-q", "--find-links", str(dist), "plait")
    (base / "plain_def.py").write_text(PLAIN_DEF)
    env.plain_install = (env.pip_names(), env.run("python", "plain_def.py"))
    env.run("python", "-m", "pip", "install", "-q", "--find-links", str(dist), "plait[all]")
    return env


def test_plain_plait_brings_the_executors_and_runs_a_def_node(installed: Venv) -> None:
    names, printed = installed.plain_install
    assert {n for n in names if n.startswith("plait")} == {"plait", "plait-executors"}
    assert printed.split() == ["completed", "5", "worker"]  # on a worker thread


def test_the_install_is_built_wheels_only(installed: Venv) -> None:
    listed = json.loads(installed.run("python", "-m", "pip", "list", "--format", "json"))
    ours = {d["name"] for d in listed if d["name"].startswith("plait")}
    assert ours == {
        "plait",
        "plait-executors",
        "plait-provenance-sqlite",
        "plait-cache-sqlite",
        "plait-ui",
    }
    assert "editable_project_location" not in json.dumps(listed)
    where = installed.run("python", "-c", "import plait; print(plait.__file__)")
    assert "site-packages" in where and str(ROOT) not in where


def test_readme_example_runs(installed: Venv) -> None:
    (installed.cwd / "readme_example.py").write_text(readme_example())
    installed.run("python", "readme_example.py")


def test_plugins_lists_the_first_party_plugins(installed: Venv) -> None:
    out = installed.run("plait", "plugins")
    for plugin in ("executors", "provenance-sqlite", "cache-sqlite", "ui"):
        assert re.search(rf"^{plugin}\s+plait-{plugin}\s+0\.1\.0\s", out, re.M), out
    assert "executor:thread" in out and "provenance:sqlite" in out and "cache:sqlite" in out


def test_runs_lists_a_run(installed: Venv) -> None:
    (installed.cwd / "install_check.py").write_text(PIPELINE)
    run = json.loads(
        installed.run("plait", "run", "install_check:dag", "-i", "numbers.n=4", "--json")
    )
    assert run["status"] == "completed"
    runs = json.loads(installed.run("plait", "runs", "--json"))
    assert [r["run_id"] for r in runs] == [run["run_id"]]
    assert run["run_id"][:8] in installed.run("plait", "runs")


def test_the_web_view_command_comes_with_all(installed: Venv) -> None:
    out = installed.run("plait", "ui", "--help")
    assert "--allow-actions" in out and "--store" in out
