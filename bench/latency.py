"""Figure 3: put-to-visible latency through the consumer's own pipeline at a steady rate.

The consumer's query (`consumer.app.start_query`, its `BatchSink`, the
stack's default trigger) runs in this process's Spark session and writes to a
temporary directory. The producer's pump, paced at the rate, writes to a fresh
stream. A poller notes when each published part file first appears (the
sink publishes a batch's files only once all of them are written); an event's
latency is that moment minus its `event_time` (set by the producer when the
event is taken for sending). The same run counts the Spark jobs each batch ran.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from consumer.app import start_query
from consumer.layout import EVENTS
from producer.events import EventFactory, to_record
from producer.sending import Pacer, pump
from producer.settings import ProducerSettings
from producer.stream import make_client
from producer.writer import KinesisWriter, UnsentFile
from pyspark.sql import SparkSession

from bench.emulator import consumer_settings, create_stream, fresh_localstack

SHARDS = 2  # the Compose stack's default
POLL_S = 0.05
DRAIN_DEADLINE_S = 45.0
WARM_UP = 20


class SinkWatcher:
    """Polls the sink's events folder; keeps each finished batch's first-seen time."""

    def __init__(self, events_path: Path) -> None:
        self.events_path = events_path
        self.latencies: list[float] = []
        self._seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> SinkWatcher:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(POLL_S):
            self.poll()

    def poll(self) -> None:
        # Only part files: a compacted file holds rows already seen in their parts.
        for part in self.events_path.glob("hour=*/part-*.parquet"):
            if part.name in self._seen:
                continue
            seen = time.time()
            self._seen.add(part.name)
            for event_time in pq.read_table(part, columns=["event_time"])["event_time"]:
                self.latencies.append(seen - event_time.as_py().timestamp())


# The phases of a batch that Spark times (`durationMs`), in the order they run.
PHASES = ("latestOffset", "queryPlanning", "addBatch", "walCommit", "commitOffsets")


def measure_rate(
    spark: SparkSession,
    rate: int,
    seconds: float,
    inspect: Callable[[Any], None] = lambda _query: None,
    shards: int = SHARDS,
) -> dict[str, Any]:
    """The figure at `rate` on a stream of `shards`; `inspect` sees the query once the run
    is over, before it stops."""
    count = int(rate * seconds)
    with fresh_localstack() as url, tempfile.TemporaryDirectory() as work:
        stream = create_stream(url, shards)
        settings = consumer_settings(stream, url, work)
        query = start_query(spark, settings)
        _wait_for_first_trigger(query)
        producer_settings = ProducerSettings(kinesis_stream_name=stream, kinesis_endpoint_url=url)
        writer = KinesisWriter(
            make_client(producer_settings), stream, UnsentFile(Path(work) / "unsent.jsonl")
        )
        with SinkWatcher(Path(settings.consumer_output_path) / EVENTS) as watcher:
            # Warm-up: the first batch with data pays the Python workers' start and the
            # sink's first write; a running consumer has paid them long ago.
            writer.put_all(to_record(event) for event in EventFactory(1).random_events(WARM_UP))
            _wait_until(lambda: len(watcher.latencies) >= WARM_UP, DRAIN_DEADLINE_S)
            _wait_until(lambda: not query.status["isTriggerActive"], DRAIN_DEADLINE_S)
            watcher.latencies.clear()
            records = (to_record(event) for event in EventFactory(3).random_events(count))
            # Time-bound: on a busy machine the emulator may not take `rate` records/s.
            stopping = threading.Event()
            threading.Timer(seconds, stopping.set).start()
            sent_before, started = writer.stats.sent, time.perf_counter()
            pump(writer, records, stopping, Pacer(rate))
            sent_in = time.perf_counter() - started
            sent = writer.stats.sent - sent_before
            _wait_until(lambda: len(watcher.latencies) >= sent, DRAIN_DEADLINE_S)
        # Stopping in the middle of a batch's writes only adds noise to the log.
        _wait_until(lambda: not query.status["isTriggerActive"], DRAIN_DEADLINE_S)
        batches = [p for p in query.recentProgress if p["numInputRows"]][1:]
        jobs = jobs_per_batch(spark, query)
        inspect(query)
        query.stop()
    latencies = sorted(watcher.latencies)
    return {
        "rate": rate,
        "shards": shards,
        "seconds": seconds,
        "sent": sent,
        "achieved_rate": sent / sent_in,
        # Events not in the sink by the deadline have no latency: then p99 is a lower bound.
        "seen": len(latencies),
        "mean_s": sum(latencies) / len(latencies) if latencies else None,
        "p50_s": _percentile(latencies, 50),
        "p95_s": _percentile(latencies, 95),
        "p99_s": _percentile(latencies, 99),
        "batches": len(batches),
        "batch_ms_median": _median([p["durationMs"]["triggerExecution"] for p in batches]),
        "phase_ms_median": {
            phase: _median([p["durationMs"].get(phase, 0) for p in batches]) for phase in PHASES
        },
        "trigger": settings.consumer_trigger_interval,
        "trigger_s": settings.trigger_interval_seconds,
        "jobs_per_batch": jobs,
    }


def jobs_per_batch(spark: SparkSession, query: Any) -> dict[str, float]:
    """Spark jobs per batch that ran, from the status tracker (fed by Spark's listener bus).

    Structured Streaming runs every job of a query in a job group named by its run id.
    """
    jobs = len(spark.sparkContext.statusTracker().getJobIdsForGroup(str(query.runId)))
    ran = [p for p in query.recentProgress if "addBatch" in p["durationMs"]]
    return {"jobs": jobs, "batches": len(ran), "per_batch": jobs / len(ran) if ran else 0.0}


def _wait_for_first_trigger(query: Any) -> None:
    _wait_until(lambda: bool(query.recentProgress), DRAIN_DEADLINE_S)


def _wait_until(condition: Callable[[], bool], deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)


def _percentile(values: list[float], percent: float) -> float | None:
    if not values:
        return None
    index = min(len(values) - 1, round(percent / 100 * (len(values) - 1)))
    return values[index]


def _median(values: list[float]) -> float | None:
    return sorted(values)[len(values) // 2] if values else None


def keep_every_progress(spark: SparkSession) -> None:
    """Every trigger reports progress, and every batch's is kept, so that jobs are divided
    by every batch that ran them."""
    spark.conf.set("spark.sql.streaming.noDataProgressEventInterval", "0")
    spark.conf.set("spark.sql.streaming.numRecentProgressUpdates", "10000")


def measure(spark: SparkSession, rates: tuple[int, ...], seconds: float) -> list[dict[str, Any]]:
    keep_every_progress(spark)
    return [measure_rate(spark, rate, seconds) for rate in rates]
