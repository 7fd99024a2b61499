"""`python -m bench`: every figure, then results.json, results.md and results.png here.

`python -m bench soak` runs the long soak figure alone (bench/soak.py);
`python -m bench workday [calls|stack|calls:chosen ...]` the working day's figure alone
(bench/workday.py);
`python -m bench --skip edit_to_running ...` leaves the named figures out;
`python -m bench --only two_readers fan_out_latency` measures figures 15 and 16
(bench/fan_out.py), which only run when named;
`python -m bench --only sink ...` (or `cold_start`, `edit_to_running`, ...) measures
the named figures alone and prints them as JSON with the 1-minute load average around
each, leaving results.* as they are (a partial run is not the bench's record).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from consumer.app import build_session
from consumer.settings import ConsumerSettings
from pyspark.sql import SparkSession

from bench import (
    coldstart,
    connect,
    drain,
    edit_to_running,
    fan_out,
    ingest,
    latency,
    report,
    shards,
    sink,
    soak,
    workday,
)
from bench.emulator import fresh_localstack

HERE = Path(__file__).resolve().parent
INGEST_RECORDS = 1_000  # the tutorial's loop runs ~30-65 records/s
# Large enough that draining, not starting the query, is what is measured.
DRAIN_RECORDS = 20_000
# kinesis-mock's ingest slows per record as a shard grows (~3,000 rec/s on an
# empty 2-shard stream, ~300 at 10,000 per shard): by 20,000 rows the emulator's
# per-record cost set all three sides alike. 5,000 keeps it in its faster range,
# lets the per-record loop write every row (1.5 to 3 min), and makes the sink's
# write last several times Spark's fixed cost of a batch (~0.3-0.6 s here).
SINK_RECORDS = 5_000
BATCH_READ_RECORDS = 20_000
LATENCY_RATES = (200, 1000)
LATENCY_SECONDS = 10.0

log = logging.getLogger("bench")
loads: dict[str, dict[str, float]] = {}


def machine() -> dict[str, Any]:
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "nproc": os.cpu_count(),
        "memory_gib": round(memory / 1024**3, 1),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


# Figures left out with `python -m bench --skip NAME ...` (one this machine cannot take).
skipped: set[str] = set()
# With `python -m bench --only NAME ...`, the figures measured; empty: all.
only: set[str] = set()


def attempt(name: str, figure: Callable[[], Any]) -> Any:
    if name in skipped or (only and name not in only):
        log.info("skipping %s", name)
        return {"error": "skipped (python -m bench --skip)"}
    log.info("measuring %s", name)
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    try:
        result = figure()
    except Exception as error:  # a figure that fails is reported, the others still run
        traceback.print_exc()
        result = {"error": f"{type(error).__name__}: {error}"}
    seconds = time.perf_counter() - started
    log.info("%s took %.0f s", name, seconds)
    # The machine may be shared: the load says how much the figure had to itself.
    loads[name] = {
        "seconds": round(seconds, 1),
        "load_1min_before": load_before,
        "load_1min_after": os.getloadavg()[0],
    }
    return result


def spark_figures(results: dict[str, Any]) -> None:
    spark_names = {"drain", "drain under limits", "sink", "batch read", "latency"}
    spark_names |= {"many shards latency", "many shards handful", "many shards planning"}
    spark_names |= set(OPT_IN)
    if only and not only & spark_names:
        return
    # The JVM starts only now, after the figures that want both cores to themselves.
    spark = build_session(ConsumerSettings(consumer_console=False))
    try:

        def drain_figures() -> dict[str, Any]:
            with fresh_localstack() as url:
                return drain.measure(spark, url, DRAIN_RECORDS)

        results["drain"] = attempt("drain", drain_figures)

        def sink_figures() -> dict[str, Any]:
            with fresh_localstack() as url:
                return sink.measure_sink(spark, url, SINK_RECORDS)

        def batch_read_figures() -> dict[str, Any]:
            with fresh_localstack() as url:
                return sink.measure_batch_read(spark, url, BATCH_READ_RECORDS)

        def limited_drain_figures() -> dict[str, Any]:
            with fresh_localstack() as url:
                return drain.measure_under_limits(spark, url)

        results["drain_under_limits"] = attempt("drain under limits", limited_drain_figures)
        results["sink"] = attempt("sink", sink_figures)
        results["batch_read"] = attempt("batch read", batch_read_figures)
        results["latency"] = attempt(
            "latency", lambda: latency.measure(spark, LATENCY_RATES, LATENCY_SECONDS)
        )
        results.update(shards.figures(attempt, spark))
        for name, figure in OPT_IN.items():
            if name in only:
                results[name.replace(" ", "_")] = attempt(name, partial(figure, spark))
    finally:
        spark.stop()


def two_readers(spark: SparkSession) -> dict[str, Any]:
    with fresh_localstack() as url:
        return fan_out.measure_two_readers(spark, url)


# Figures taken only when named with --only (each is several minutes, and a default run
# stays as long as it was): figures 15 and 16, fan-out against polling.
OPT_IN: dict[str, Callable[[SparkSession], Any]] = {
    "two readers": two_readers,
    "fan out latency": fan_out.measure_latency,
}


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for chatty in ("botocore", "testcontainers", "py4j"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    # Spark's progress bars would bury the bench's own log.
    os.environ.setdefault(
        "PYSPARK_SUBMIT_ARGS", "--conf spark.ui.showConsoleProgress=false pyspark-shell"
    )
    if sys.argv[1:] == ["soak"]:
        print(soak.write(soak.measure(), HERE))
        return 0
    if sys.argv[1:2] == ["workday"]:
        print(workday.write(workday.measure(sys.argv[2:] or ["calls", "stack"]), HERE))
        return 0
    if sys.argv[1:2] == ["--skip"]:
        skipped.update(name.replace("_", " ") for name in sys.argv[2:])
    if sys.argv[1:2] == ["--only"]:
        only.update(name.replace("_", " ") for name in sys.argv[2:])
    started = time.perf_counter()
    results: dict[str, Any] = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
    }
    results["ingest"] = attempt("ingest", lambda: ingest.measure(INGEST_RECORDS))
    results["cold_start"] = attempt("cold start", coldstart.measure)
    results["edit_to_running"] = attempt("edit to running", edit_to_running.measure)
    results["connect"] = attempt("connect", connect.measure)
    spark_figures(results)
    results["wall_s"] = round(time.perf_counter() - started, 1)
    results["figures"] = loads
    if only:
        measured = {name: results[name] for name in results if name.replace("_", " ") in only}
        print(json.dumps({**measured, "figures": loads}, indent=2))
        return 1 if any("error" in value for value in measured.values()) else 0
    markdown = report.write(results, HERE)
    print(markdown)
    print(f"make bench: {results['wall_s']:.0f} s; results in {HERE}")
    failed = [
        name for name, value in results.items() if isinstance(value, dict) and "error" in value
    ]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
