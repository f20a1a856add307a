"""Developer sessions. `nox -s tests` is what CI runs (see README and .ci/run)."""

from __future__ import annotations

import re
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
BACKENDS = ("asyncio", "trio")


def group(name: str) -> list[str]:
    return list(nox.project.dependency_groups(PYPROJECT, name))


def install_packages(session: nox.Session, *paths: Path) -> None:
    """Install packages as real (non-editable) distributions: entry points come from metadata."""
    session.install(*(str(p) for p in paths))


@nox.session
def tests(session: nox.Session) -> None:
    """The whole suite, on the asyncio backend and again on trio."""
    session.install(*group("test"))
    install_packages(session, *PACKAGES, *DOC_EXAMPLES)
    args = session.posargs or ["-n", "2", "--dist", "loadgroup"]
    for backend in BACKENDS:
        session.log(f"--- anyio backend: {backend}")
        session.run(
            "pytest", *args,
            env={"PLAIT_TEST_BACKEND": backend, "PLAIT_STRICT_PLUGINS": "1"},
        )


def workspace_requirements(plugin: Path) -> list[Path]:
    """The other plugins of this workspace that ``plugin`` declares as dependencies."""
    by_name = {nox.project.load_toml(p / "pyproject.toml")["project"]["name"]: p for p in PLUGINS}
    wanted = nox.project.load_toml(plugin / "pyproject.toml")["project"]["dependencies"]
    names = {re.split(r"[\s<>=!~;\[]", req, maxsplit=1)[0] for req in wanted}
    return [path for name, path in by_name.items() if name in names]


@nox.session(name="plugin-isolated")
@nox.parametrize("plugin", [p.name for p in PLUGINS])
def plugin_isolated(session: nox.Session, plugin: str) -> None:
    """One plugin with only the core (and the plugins it declares) beside it: catches
    undeclared dependencies."""
    session.install(*group("test"))
    path = ROOT / "plugins" / plugin
    install_packages(session, ROOT / "core", *workspace_requirements(path), path)
    tests_dir = ROOT / "tests" / "plugins" / plugin.replace("-", "_")
    session.run("pytest", str(tests_dir), env={"PLAIT_TEST_BACKEND": "asyncio"})


@nox.session
def lint(session: nox.Session) -> None:
    session.install(*group("lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", "core", "plugins")


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
    """The main job: the demo pipeline on the default provenance and cache files."""
    install_packages(session, *PACKAGES)
    session.run("plait", "demo", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks side by side with peers (`nox -s bench -- --quick` for a smoke run)."""
    session.install(*group("bench"))
    install_packages(session, *PACKAGES)
    session.run("python", str(ROOT / "bench" / "run.py"), *session.posargs)
