"""An importable module of entries, factories and plain functions for the namespace,
configuration and factory tests (grefs like ``"_fragments:fetch"``)."""

from __future__ import annotations

from collections.abc import Callable

from _elsewhere import imported_elsewhere  # noqa: F401 - an entry of another module

from plait import Dag, dag_factory, entry
from plait.entries import CachePolicy
from plait.factory import DagFactory


@entry(tags=["etl", "io"])
def fetch(url: str) -> str:
    return f"<{url}>"


@entry(name="clean_text", tags=["etl"], cache={"min_ttl": 1, "max_ttl": 2})
def clean(raw: str) -> str:
    return raw.strip("<>")


@entry
def untagged(n: int) -> int:
    return n + 1


def not_an_entry(n: int) -> int:
    return n


@entry(tags=["etl", "dag"])
@dag_factory
def pipeline(suffix: str = "!") -> Dag:
    dag = Dag("pipeline")

    def shout(text: str) -> str:
        return text.upper() + suffix

    dag.node(fetch) >> dag.node(clean) >> dag.node(shout)
    return dag


@dag_factory
def repeat(times: int) -> Dag:
    """Needs an argument: usable as an entry only with args."""
    dag = Dag("repeat")

    def rep(text: str) -> str:
        return text * times

    dag.node(rep)
    return dag


@dag_factory
def not_a_dag() -> Dag:
    return "oops"  # type: ignore[return-value]


def make_multiplier(factor: int = 2) -> Callable[[int], int]:
    """A plain factory: builds a callable on load (``factory = true``)."""

    def multiply(n: int) -> int:
        return n * factor

    return multiply


def one(x: int) -> int:
    return x


def two(x: int) -> int:
    return 2 * x


async def three(x: int) -> int:
    return 3 * x


POOL = [one, two, three, fetch, untagged]
FACTORIES: list[DagFactory[...]] = [pipeline]
SLOW = CachePolicy(min_ttl=1, max_ttl=7)
NUMBER = 7
