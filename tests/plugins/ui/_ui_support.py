"""DAGs whose real runs fill the stores the UI tests read, and a client on the app."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import httpx

from plait import Dag, DagRunner, inline
from plait.triggers import Trigger, TriggerDefinition
from plait_provenance_sqlite import SqliteProvenance
from plait_provenance_sqlite.triggers import SqliteTriggerStore
from plait_ui import UiConfig, create_app

BASE_URL = "http://127.0.0.1:8765"
BACKEND = os.environ.get("PLAIT_TEST_BACKEND", "asyncio")


@attrs.frozen(kw_only=True)
class Filled:
    """A store filled by :func:`fill`, and the run ids by name."""

    path: Path
    ids: dict[str, str]


#: A value that would run as script if any page forgot to escape it.
SCRIPT = "<script>document.title = 'pwned'; window.pwned = 1</script>"


@inline
def order_ids(n: int) -> list[int]:
    return list(range(n))


@inline
def price(order: int) -> float:
    if order == 3:
        raise ValueError("order 3 has no price <b>bold</b>")
    return order * 2.5


one_price = Dag("price_one")
one_price.node(price)


@inline
def total(prices: list[float]) -> float:
    return sum(prices)


with Dag("shop") as shop:
    shop.node(order_ids) >> shop.map(one_price, label="prices") >> shop.node(total)


@inline
def greeting(name: str) -> str:
    return f"hello {name}"


@inline
def shout(text: str) -> str:
    return text.upper() + "!"


with Dag("greet") as greet:
    greet.node(greeting) >> greet.node(shout)


async def fill(path: Path) -> dict[str, str]:
    """A completed run, a failed map run and a run with ``<script>`` in its output."""
    ids = {}
    for name, dag, inputs in (
        ("shop_ok", shop, {"order_ids": {"n": 3}}),
        ("shop_failed", shop, {"order_ids": {"n": 5}}),
        ("script", greet, {"greeting": {"name": SCRIPT}}),
    ):
        result = await DagRunner(dag, provenance=SqliteProvenance(path)).run(inputs)
        ids[name] = result.run_id
    return ids


@inline
def seed() -> int:
    return 1


@inline
def mix(a: int, b: int) -> int:
    return a + b


def lattice(width: int, depth: int) -> Dag:
    """``width * depth`` nodes in ``depth`` layers, each node fed by two of the layer above."""
    with Dag(f"lattice_{width}x{depth}") as dag:
        above = [dag.node(seed, label=f"seed_{i}") for i in range(width)]
        for layer in range(1, depth):
            row = [
                dag.node(mix, label=f"mix_{layer}_{i}").bind(a=above[i], b=above[(i + 1) % width])
                for i in range(width)
            ]
            above = row
    return dag


@contextlib.asynccontextmanager
async def app_client(config: UiConfig) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on the app serving ``config``, inside the app's lifespan."""
    app = create_app(config)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http,
    ):
        yield http


def definition(trigger: Trigger) -> TriggerDefinition:
    """What an engine declares to the store for ``trigger``."""
    return TriggerDefinition(
        name=trigger.name, kind=trigger.kind, definition=trigger.to_dict(), active=trigger.active
    )


async def define(path: Path, *definitions: TriggerDefinition) -> None:
    """Define triggers in the store at ``path``, as ``plait engine --config`` does."""
    async with SqliteTriggerStore(path) as store:
        await store.define_triggers(list(definitions), datetime.now(UTC))


def trigger_config(path: Path, **options: Any) -> UiConfig:
    """The UI over the provenance and trigger store at ``path``."""
    return UiConfig(provenance=SqliteProvenance(path), triggers=SqliteTriggerStore(path), **options)
