"""The built-in demo pipeline behind ``plait demo``: a day of orders, scored and reported.

Nothing here touches the network: the "APIs" are deterministic generators that sleep a
little to feel like one. The shape is a typical batch job::

    fetch_orders -> normalise -> enrich -+-> score_orders (map: score -> decide) -+-> report
                                         +-> revenue ---------------------------+

``enrich`` looks customers and exchange rates up through two ``@cached`` callables, so a
second run is served from the cache. ``score_orders`` is a map node: a two-node sub-DAG
runs once per order, concurrently.

Build the DAG with :func:`build_pipeline`; ``plait run plait.demo:build_pipeline --input
fetch_orders.day=2024-05-01`` runs it like any other DAG.
"""

from __future__ import annotations

import random
from datetime import date
from decimal import Decimal

import anyio
import attrs

from plait.cache import cached
from plait.dag import Dag
from plait.markers import inline
from plait.records import CacheStats

__all__ = [
    "DEFAULT_DAY",
    "Customer",
    "Decision",
    "EnrichedOrder",
    "Order",
    "RawOrder",
    "Report",
    "Revenue",
    "Scored",
    "build_pipeline",
    "cache_counters",
    "demo_inputs",
]

DEFAULT_DAY = date(2024, 5, 1)
#: How many customer look-ups the fake CRM serves at once.
CRM_CONCURRENCY = 4
REVIEW_THRESHOLD = 0.75

_FIRST = ("Ada", "Grace", "Linus", "Guido", "Barbara", "Ken", "Margaret", "Dennis")
_LAST = ("Lovelace", "Hopper", "Torvalds", "Liskov", "Thompson", "Hamilton", "Ritchie")
_COUNTRIES = ("DE", "FR", "GB", "US", "NL")
_SEGMENTS = ("retail", "retail", "business", "vip")
_RATES_TO_EUR = {"EUR": 1.0, "USD": 0.92, "GBP": 1.17}


# ---------------------------------------------------------------------- records
@attrs.frozen(kw_only=True)
class RawOrder:
    """An order as the shop's export has it: strings everywhere."""

    order_id: str
    customer_id: str
    amount: str
    currency: str
    status: str


@attrs.frozen(kw_only=True)
class Order:
    order_id: str
    customer_id: str
    amount_cents: int
    currency: str


@attrs.frozen(kw_only=True)
class Customer:
    customer_id: str
    name: str
    country: str
    segment: str
    since: int


@attrs.frozen(kw_only=True)
class EnrichedOrder:
    order: Order
    customer: Customer
    amount_eur: float


@attrs.frozen(kw_only=True)
class Scored:
    order_id: str
    customer: str
    segment: str
    amount_eur: float
    risk: float


@attrs.frozen(kw_only=True)
class Decision:
    order_id: str
    customer: str
    amount_eur: float
    risk: float
    verdict: str


@attrs.frozen(kw_only=True)
class Revenue:
    total_eur: float
    by_segment: dict[str, float]
    by_country: dict[str, float]


@attrs.frozen(kw_only=True)
class Report:
    orders: int
    accepted: int
    to_review: list[str]
    revenue: Revenue
    top_customers: list[tuple[str, float]]


# ---------------------------------------------------------------------- the fake services
@cached(min_ttl=1, max_ttl=7)
async def lookup_customer(customer_id: str) -> Customer:
    """The CRM look-up: slow, so it is cached for a day (recomputed within a week)."""
    await anyio.sleep(0.08)
    rng = random.Random(f"customer:{customer_id}")
    return Customer(
        customer_id=customer_id,
        name=f"{rng.choice(_FIRST)} {rng.choice(_LAST)}",
        country=rng.choice(_COUNTRIES),
        segment=rng.choice(_SEGMENTS),
        since=rng.randint(2012, 2024),
    )


@cached(min_ttl=1, max_ttl=7)
async def exchange_rate(currency: str) -> float:
    """The rates service: how many euros one unit of ``currency`` buys."""
    await anyio.sleep(0.1)
    return _RATES_TO_EUR[currency]


def cache_counters() -> dict[str, CacheStats]:
    """Counters of the demo's cached callables, by callable id."""
    return {fn.callable_id: fn.cache_info() for fn in (lookup_customer, exchange_rate)}


# ---------------------------------------------------------------------- the nodes
async def fetch_orders(day: date, count: int = 40) -> list[RawOrder]:
    """Download the day's orders (here: generate them, deterministically)."""
    await anyio.sleep(0.15)
    rng = random.Random(f"orders:{day.isoformat()}")
    orders = []
    for i in range(count):
        cents = rng.randint(500, 60000)
        orders.append(
            RawOrder(
                order_id=f"o-{day:%m%d}-{i:03d}",
                customer_id=f"c-{rng.randint(1, 15):02d}",
                amount=f"{cents // 100}.{cents % 100:02d}",
                currency=rng.choice(("eur", "eur", "usd", "gbp")),
                status=rng.choice(("paid",) * 9 + ("cancelled",)),
            )
        )
    return orders


@inline
def normalise(raw: list[RawOrder]) -> list[Order]:
    """Drop cancelled orders, parse amounts into cents, upper-case currencies."""
    return [
        Order(
            order_id=r.order_id,
            customer_id=r.customer_id,
            amount_cents=int(Decimal(r.amount) * 100),
            currency=r.currency.upper(),
        )
        for r in raw
        if r.status == "paid"
    ]


async def enrich(orders: list[Order]) -> list[EnrichedOrder]:
    """Attach each order's customer and its amount in euros (cached look-ups)."""
    customers: dict[str, Customer] = {}
    rates: dict[str, float] = {}
    limiter = anyio.CapacityLimiter(CRM_CONCURRENCY)

    async def customer(cid: str) -> None:
        async with limiter:
            customers[cid] = await lookup_customer(cid)

    async def rate(currency: str) -> None:
        rates[currency] = await exchange_rate(currency)

    async with anyio.create_task_group() as tg:
        for cid in sorted({o.customer_id for o in orders}):
            tg.start_soon(customer, cid)
        for currency in sorted({o.currency for o in orders}):
            tg.start_soon(rate, currency)
    return [
        EnrichedOrder(
            order=o,
            customer=customers[o.customer_id],
            amount_eur=round(o.amount_cents / 100 * rates[o.currency], 2),
        )
        for o in orders
    ]


async def score(order: EnrichedOrder) -> Scored:
    """A fraud model's opinion of one order (a short, deterministic pause stands in)."""
    rng = random.Random(f"score:{order.order.order_id}")
    await anyio.sleep(rng.uniform(0.01, 0.05))
    size = min(order.amount_eur / 500.0, 1.0)
    loyalty = min((2025 - order.customer.since) / 10.0, 1.0)
    vip = 0.2 if order.customer.segment == "vip" else 0.0
    risk = max(0.0, min(1.0, 0.5 * size + 0.4 * (1 - loyalty) + 0.3 * rng.random() - vip))
    return Scored(
        order_id=order.order.order_id,
        customer=order.customer.name,
        segment=order.customer.segment,
        amount_eur=order.amount_eur,
        risk=round(risk, 3),
    )


@inline
def decide(scored: Scored) -> Decision:
    verdict = "review" if scored.risk >= REVIEW_THRESHOLD else "accept"
    return Decision(
        order_id=scored.order_id,
        customer=scored.customer,
        amount_eur=scored.amount_eur,
        risk=scored.risk,
        verdict=verdict,
    )


@inline
def revenue(orders: list[EnrichedOrder]) -> Revenue:
    by_segment: dict[str, float] = {}
    by_country: dict[str, float] = {}
    for o in orders:
        seg, country = o.customer.segment, o.customer.country
        by_segment[seg] = round(by_segment.get(seg, 0.0) + o.amount_eur, 2)
        by_country[country] = round(by_country.get(country, 0.0) + o.amount_eur, 2)
    total = round(sum(o.amount_eur for o in orders), 2)
    return Revenue(total_eur=total, by_segment=by_segment, by_country=by_country)


@inline
def report(decisions: list[Decision], revenue: Revenue) -> Report:
    """Fan-in: the scored orders and the revenue figures, in one report."""
    per_customer: dict[str, float] = {}
    for d in decisions:
        per_customer[d.customer] = round(per_customer.get(d.customer, 0.0) + d.amount_eur, 2)
    top = sorted(per_customer.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    return Report(
        orders=len(decisions),
        accepted=sum(d.verdict == "accept" for d in decisions),
        to_review=[d.order_id for d in decisions if d.verdict == "review"],
        revenue=revenue,
        top_customers=top,
    )


# ---------------------------------------------------------------------- the DAG
def build_pipeline() -> Dag:
    """The demo DAG, ``plait.demo``: six nodes, one of them a map over the orders."""
    with Dag("score_order") as per_order:
        per_order.node(score) >> per_order.node(decide)
    with Dag("plait.demo") as dag:
        enriched = dag.node(fetch_orders) >> dag.node(normalise) >> dag.node(enrich)
        scored = enriched >> dag.map(per_order, label="score_orders", max_concurrency=8)
        summed = enriched >> dag.node(revenue)
        final = dag.node(report)
        scored >> final
        summed >> final
    return dag


def demo_inputs(day: date = DEFAULT_DAY, orders: int = 40) -> dict[str, dict[str, object]]:
    """The run inputs for :func:`build_pipeline`."""
    return {"fetch_orders": {"day": day, "count": orders}}
