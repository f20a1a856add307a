"""Developer sessions. `nox -s tests` is what CI runs (see README and .ci/run).

Every session installs plait's packages the way a user gets them: wheels built from the
source trees, installed as real (non-editable) distributions, so entry points come from
the installed metadata and the tests exercise the built wheels.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True

ROOT = Path(__file__).parent
PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")
PLUGINS = sorted(p.parent for p in ROOT.glob("plugins/*/pyproject.toml"))
DOC_EXAMPLES = sorted(p.parent for p in ROOT.glob("docs/examples/*/pyproject.toml"))
PACKAGES = [ROOT / "core", *PLUGINS]
DIST = ROOT / "dist"
BACKENDS = ("asyncio", "trio")


def group(name: str) -> list[str]:
    return list(nox.project.dependency_groups(PYPROJECT, name))


def distribution_name(package: Path) -> str:
    return str(nox.project.load_toml(package / "pyproject.toml")["project"]["name"])


def uv_binary() -> str | None:
    """The uv that nox itself uses (installed beside nox, or on PATH)."""
    try:
        from uv import find_uv_bin
    except ImportError:
        return shutil.which("uv")
    return str(find_uv_bin())


def build_wheels(session: nox.Session, out_dir: Path, *packages: Path) -> list[Path]:
    """Build one wheel per package into a freshly emptied `out_dir`."""
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    uv = uv_binary()
    for package in packages:
        if uv:
            build = [uv, "build", "--wheel", "--quiet", "--no-sources", "--out-dir"]
            session.run(*build, str(out_dir), str(package), external=True)
        else:
            wheel = ["pip", "wheel", "--quiet", "--no-deps", "--wheel-dir"]
            session.run("python", "-m", *wheel, str(out_dir), str(package))
    return sorted(out_dir.glob("*.whl"))


def install_packages(session: nox.Session, *packages: Path) -> list[Path]:
    """Build `packages` as wheels and install those wheels (never editable).

    Our own distributions are reinstalled every time, so a reused environment never keeps
    a stale build of the same version.
    """
    out_dir = Path(session.virtualenv.location) / "wheels"
    wheels = build_wheels(session, out_dir, *packages)
    if session.venv_backend == "uv":
        names = [distribution_name(p) for p in packages]
        session.install(*(f"--reinstall-package={name}" for name in names), *map(str, wheels))
    else:
        session.install("--force-reinstall", *map(str, wheels))
    return wheels


@nox.session
def tests(session: nox.Session) -> None:
    """The whole suite, on the asyncio backend and again on trio."""
    session.install(*group("test"))
    wheels = install_packages(session, *PACKAGES, *DOC_EXAMPLES)
    args = session.posargs or ["-n", "2", "--dist", "loadgroup"]
    for backend in BACKENDS:
        session.log(f"--- anyio backend: {backend}")
        env = {
            "PLAIT_TEST_BACKEND": backend,
            "PLAIT_STRICT_PLUGINS": "1",
            "PLAIT_WHEELS_DIR": str(wheels[0].parent),
        }
        session.run("pytest", *args, env=env)


def workspace_requirements(plugin: Path) -> list[Path]:
    """The other plugins of this workspace that ``plugin`` declares as dependencies."""
    by_name = {nox.project.load_toml(p / "pyproject.toml")["project"]["name"]: p for p in PLUGINS}
    wanted = nox.project.load_toml(plugin / "pyproject.toml")["project"]["dependencies"]
    names = {re.split(r"[\s<>=!~;\[]", req, maxsplit=1)[0] for req in wanted}
    return [path for name, path in by_name.items() if name in names]


@nox.session(name="plugin-isolated")
@nox.parametrize("plugin", [p.name for p in PLUGINS])
def plugin_isolated(session: nox.Session, plugin: str) -> None:
    """One plugin with only the core (with plait-executors, which it depends on) and the
    plugins it declares beside it: catches undeclared dependencies."""
    session.install(*group("test"))
    path = ROOT / "plugins" / plugin
    needed = [ROOT / "core", ROOT / "plugins" / "executors", *workspace_requirements(path), path]
    install_packages(session, *dict.fromkeys(needed))
    tests_dir = ROOT / "tests" / "plugins" / plugin.replace("-", "_")
    session.run("pytest", str(tests_dir), env={"PLAIT_TEST_BACKEND": "asyncio"})


@nox.session
def wheels(session: nox.Session) -> None:
    """Build a wheel of every package into dist/ (then `pip install --find-links dist ...`)."""
    built = build_wheels(session, DIST, *PACKAGES)
    session.log("built " + ", ".join(w.name for w in built))


@nox.session
def lint(session: nox.Session) -> None:
    session.install(*group("lint"))
    session.run("ruff", "check", ".")
    formatted = ["core", "plugins", "docs/hooks", "docs/capture", "noxfile.py"]
    session.run("ruff", "format", "--check", *formatted)


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the core."""
    session.install(*group("typecheck"))
    install_packages(session, *PACKAGES)
    session.run("mypy")


@nox.session
def docs(session: nox.Session) -> None:
    session.install(*group("docs"))
    install_packages(session, *PACKAGES)
    session.run("mkdocs", "build", "--strict", "--site-dir", str(ROOT / "site"))


@nox.session
def demo(session: nox.Session) -> None:
    """The demo pipeline on the default provenance and cache files."""
    install_packages(session, *PACKAGES)
    session.run("plait", "demo", *session.posargs)


#: The peers of `nox -s bench` that get a virtualenv each (their names are the environments
#: of `bench/peer_drivers.py`); exact versions, so the table names what ran.
PEER_REQUIREMENTS: dict[str, tuple[str, ...]] = {
    "dbos": ("dbos==3.4.0",),
    "prefect": ("prefect==3.9.1",),
}


def peer_virtualenv(session: nox.Session, name: str, requirements: tuple[str, ...]) -> str:
    """The Python of a peer's own virtualenv under ``.nox/bench-peers/<name>``, created and
    installed on first use and reused while ``requirements`` stay the same. Raises
    ``RuntimeError`` with the installer's last line when it cannot be made."""
    location = Path(session.virtualenv.location).parent / "bench-peers" / name
    python = location / "bin" / "python"
    stamp = location / "bench-requirements.txt"
    wanted = "\n".join(requirements) + "\n"
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return str(python)
    shutil.rmtree(location, ignore_errors=True)
    base = str(Path(session.virtualenv.bin) / "python")
    uv = uv_binary()
    if uv:
        steps = [[uv, "venv", "--quiet", "--python", base, str(location)]]
        steps.append([uv, "pip", "install", "--quiet", "--python", str(python), *requirements])
    else:
        steps = [[base, "-m", "venv", str(location)]]
        steps.append([str(python), "-m", "pip", "install", "--quiet", *requirements])
    session.log(f"bench: installing {', '.join(requirements)} into {location}")
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode:
            lines = (done.stderr or done.stdout).strip().splitlines() or ["no output"]
            raise RuntimeError(f"{Path(step[0]).name} exited {done.returncode}: {lines[-1]}")
    stamp.write_text(wanted)
    return str(python)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks side by side with peers (`nox -s bench -- --quick` for a smoke run).

    DBOS and Prefect run in virtualenvs of their own (their dependencies are not plait's);
    one that cannot be installed is reported in the table with the reason."""
    session.install(*group("bench"))
    install_packages(session, *PACKAGES)
    peers: list[str] = []
    if "--no-peers" not in session.posargs:
        for name, requirements in PEER_REQUIREMENTS.items():
            try:
                peers.append(f"--peer-python={name}={peer_virtualenv(session, name, requirements)}")
            except (OSError, RuntimeError) as exc:
                session.warn(f"bench: {name} not installed: {exc}")
                peers.append(f"--peer-error={name}={exc}")
    session.run("python", str(ROOT / "bench" / "run.py"), *peers, *session.posargs)
