"""Figure 3: put-to-visible latency through the consumer's own pipeline at a steady rate.

The consumer's query (`consumer.app.start_query`, its `BatchSink`, the
stack's default trigger) runs in this process's Spark session and writes to a
temporary directory. The producer's pump, paced at the rate, writes to a fresh
stream. A poller notes when each published part file first appears (the
sink publishes a batch's files only once all of them are written); an event's
latency is that moment minus its `event_time` (set by the producer when the
event is taken for sending). The same run counts the Spark jobs each batch ran, and
splits each event's latency where the time goes: to Kinesis (its arrival time), waiting
for the batch that took it (that batch's trigger), and that batch to the sink.

Given `behaviours`, the consumer reads through the AWS-faithful proxy (`kinesis_proxy`)
acting so, while the producer writes to LocalStack itself: the figure is about reading.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from consumer.app import start_query
from consumer.layout import EVENTS
from kinesis_proxy import Behaviours, KinesisProxy, running_proxy
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


@dataclass(frozen=True)
class Sighting:
    """One event in the sink: when it was taken for sending, when Kinesis took it
    (its arrival time), the batch that wrote it, and when that batch's file appeared."""

    event_s: float
    arrival_s: float
    batch: int
    seen_s: float

    @property
    def latency_s(self) -> float:
        return self.seen_s - self.event_s


class SinkWatcher:
    """Polls the sink's events folder; keeps each finished batch's first-seen time."""

    def __init__(self, events_path: Path) -> None:
        self.events_path = events_path
        self.sightings: list[Sighting] = []
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
            table = pq.read_table(part, columns=["event_time", "arrival_time", "batch_id"])
            for row in table.to_pylist():
                self.sightings.append(
                    Sighting(
                        row["event_time"].timestamp(),
                        row["arrival_time"].timestamp(),
                        row["batch_id"],
                        seen,
                    )
                )


# The phases of a batch that Spark times (`durationMs`), in the order they run.
PHASES = ("latestOffset", "queryPlanning", "addBatch", "walCommit", "commitOffsets")


@contextmanager
def _read_at(url: str, behaviours: Behaviours | None) -> Iterator[KinesisProxy | None]:
    """A proxy in front of LocalStack at `url` acting as `behaviours`; none without them."""
    if behaviours is None:
        yield None
        return
    with running_proxy(url, behaviours) as proxy:
        yield proxy


def measure_rate(
    spark: SparkSession,
    rate: int,
    seconds: float,
    inspect: Callable[[Any], None] = lambda _query: None,
    *,
    shards: int = SHARDS,
    behaviours: Behaviours | None = None,
    **consumer: Any,
) -> dict[str, Any]:
    """The figure at `rate` on a stream of `shards`; `inspect` sees the query once the run
    is over, before it stops. With `behaviours` the consumer reads through a proxy acting
    so; `consumer` overrides the consumer's settings (`consumer_read_mode`, ...)."""
    with (
        fresh_localstack() as url,
        tempfile.TemporaryDirectory() as work,
        _read_at(url, behaviours) as proxy,
    ):
        stream = create_stream(url, shards)
        read_url = url if proxy is None else proxy.url
        settings = consumer_settings(stream, read_url, work, **consumer)
        query = start_query(spark, settings)
        _wait_for_first_trigger(query)
        writer = producer_writer(url, stream, work)
        with SinkWatcher(Path(settings.consumer_output_path) / EVENTS) as watcher:
            # Warm-up: the first batch with data pays the Python workers' start and the
            # sink's first write; a running consumer has paid them long ago.
            writer.put_all(to_record(event) for event in EventFactory(1).random_events(WARM_UP))
            _wait_until(lambda: len(watcher.sightings) >= WARM_UP, DRAIN_DEADLINE_S)
            _wait_until(lambda: not query.status["isTriggerActive"], DRAIN_DEADLINE_S)
            watcher.sightings.clear()
            sent, sent_in = send_at_rate(writer, rate, seconds)
            _wait_until(lambda: len(watcher.sightings) >= sent, DRAIN_DEADLINE_S)
        # Stopping in the middle of a batch's writes only adds noise to the log.
        _wait_until(lambda: not query.status["isTriggerActive"], DRAIN_DEADLINE_S)
        batches = [p for p in query.recentProgress if p["numInputRows"]][1:]
        starts = batch_starts(query.recentProgress)
        jobs = jobs_per_batch(spark, query)
        inspect(query)
        query.stop()
        proxy_counters = {} if proxy is None else proxy.counters()
    latencies = sorted(sighting.latency_s for sighting in watcher.sightings)
    return {
        "rate": rate,
        "shards": shards,
        "read_mode": settings.consumer_read_mode,
        "through_proxy": proxy is not None,
        "seconds": seconds,
        "sent": sent,
        "achieved_rate": sent / sent_in,
        # Events not in the sink by the deadline have no latency: then p99 is a lower bound.
        "seen": len(latencies),
        "mean_s": sum(latencies) / len(latencies) if latencies else None,
        "p50_s": percentile(latencies, 50),
        "p95_s": percentile(latencies, 95),
        "p99_s": percentile(latencies, 99),
        "batches": len(batches),
        "batch_ms_median": _median([p["durationMs"]["triggerExecution"] for p in batches]),
        "phase_ms_median": {
            phase: _median([p["durationMs"].get(phase, 0) for p in batches]) for phase in PHASES
        },
        "trigger": settings.consumer_trigger_interval,
        "trigger_s": settings.trigger_interval_seconds,
        "jobs_per_batch": jobs,
        "stretch_s_median": stretches(watcher.sightings, starts),
        "proxy_counters": proxy_counters,
    }


def batch_starts(progress: list[dict[str, Any]]) -> dict[int, float]:
    """Each batch's trigger start (epoch seconds), from Spark's progress reports of the
    triggers that read rows (an idle trigger reports the id of the batch still to come)."""
    return {
        int(report["batchId"]): datetime.fromisoformat(report["timestamp"]).timestamp()
        for report in progress
        if report["numInputRows"]
    }


def stretches(sightings: list[Sighting], starts: dict[int, float]) -> dict[str, float | None]:
    """Where events' latency went, the median of each stretch: `to_kinesis` (taken for
    sending to Kinesis' arrival time), `to_batch` (arrival to the trigger of the batch that
    wrote it: the wait for a trigger, and any later trigger than the first after arrival),
    `batch_to_sink` (that trigger to its file appearing). An event of a batch with no
    progress report is left out of the last two."""
    placed = [sighting for sighting in sightings if sighting.batch in starts]
    return {
        "to_kinesis": _median([s.arrival_s - s.event_s for s in sightings]),
        "to_batch": _median([starts[s.batch] - s.arrival_s for s in placed]),
        "batch_to_sink": _median([s.seen_s - starts[s.batch] for s in placed]),
    }


def producer_writer(url: str, stream: str, work: str) -> KinesisWriter:
    """The producer's writer of `stream` at `url`, keeping what it cannot send under `work`."""
    settings = ProducerSettings(kinesis_stream_name=stream, kinesis_endpoint_url=url)
    return KinesisWriter(make_client(settings), stream, UnsentFile(Path(work) / "unsent.jsonl"))


def send_at_rate(writer: KinesisWriter, rate: int, seconds: float) -> tuple[int, float]:
    """The producer's pump of events paced at `rate` for `seconds`: events sent, and the
    seconds sending took."""
    records = (to_record(event) for event in EventFactory(3).random_events(int(rate * seconds)))
    # Time-bound: on a busy machine the emulator may not take `rate` records/s.
    stopping = threading.Event()
    threading.Timer(seconds, stopping.set).start()
    sent_before, started = writer.stats.sent, time.perf_counter()
    pump(writer, records, stopping, Pacer(rate))
    return writer.stats.sent - sent_before, time.perf_counter() - started


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


def percentile(values: list[float], percent: float) -> float | None:
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
