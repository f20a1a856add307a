"""The steps of the weather report example (docs/how-to/configuration.md)."""

from __future__ import annotations

from plait import Dag, dag_factory, entry


@entry(tags=["io", "slow"], cache={"min_ttl": 0.5, "max_ttl": 2})
def fetch_readings(city: str) -> list[float]:
    """Hourly temperatures in Celsius (a stand-in for a slow, rate-limited web API)."""
    base = sum(map(ord, city)) % 10
    return [base + step * 0.5 for step in range(6)]


@entry(tags=["transform"])
def summarise(readings: list[float]) -> dict[str, float]:
    return {"low": min(readings), "high": max(readings)}


@dag_factory
def report(unit: str = "C") -> Dag:
    """fetch -> summarise -> a line of text, in Celsius or Fahrenheit."""

    def format_line(summary: dict[str, float]) -> str:
        def convert(celsius: float) -> float:
            return celsius * 9 / 5 + 32 if unit == "F" else celsius

        return (
            f"low {convert(summary['low']):.1f}°{unit}, high {convert(summary['high']):.1f}°{unit}"
        )

    dag = Dag("report")
    dag.node(fetch_readings) >> dag.node(summarise) >> dag.node(format_line)
    return dag
