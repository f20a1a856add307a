"""The pipeline of the logging how-to: nodes that log the ordinary way."""

import logging
import time

from plait import Dag

# what users do at import of their module: plait keeps these lines and shows them
logging.basicConfig(level=logging.INFO, format="%(levelname)-7s %(name)s: %(message)s")
log = logging.getLogger("weather")
log.setLevel(logging.INFO)  # INFO even where logging was configured before (a test runner)


def stations(region: str) -> list[str]:
    log.info("looking up the stations of %s", region)
    time.sleep(0.2)
    return [f"{region}-{i}" for i in range(1, 4)]


def readings(stations: list[str]) -> list[float]:
    values = []
    for i, station in enumerate(stations):
        log.info("fetched %s", station)
        time.sleep(0.15)
        values.append(10.0 + 2.5 * i)
    return values


def mean(values: list[float]) -> float:
    if not values:
        log.warning("no readings: the mean is 0")
        return 0.0
    log.info("averaging %d readings", len(values))
    time.sleep(0.2)
    return sum(values) / len(values)


def report(mean: float) -> str:
    print(f"mean temperature: {mean:.1f}")  # prints go above the bars too
    return f"{mean:.1f} C"


with Dag("weather") as dag:
    dag.node(stations) >> dag.node(readings) >> dag.node(mean) >> dag.node(report)
