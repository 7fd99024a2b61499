"""`python -m bench soak`: does a batch cost the same after thousands of batches?

The consumer's own query (`start_query`, `BatchSink`, the stack's default
trigger) runs in this process against a fresh 2-shard stream fed at a steady
50 events/s, until it has run SOAK_BATCHES batches with data. A streaming
listener records every batch's duration; every SAMPLE_EVERY batches the
driver JVM's resident memory and its heap in use after a full collection are
sampled. The figure: the median batch time of the last 500 batches against the
first 500 (target: at most 1.2x), and memory once the deduplication window has
filled against the end.

The deduplication window is DEDUP_WINDOW, not the stack's hour: the state
holds a window of keys, so it grows for a whole window before it can stay
flat, and an hour's window would still be filling when the soak ends. With 10
minutes, it is full after about 1,200 of the 5,000 batches. Results go to
bench/soak.json and bench/soak.md; it is not part of the default `make bench`
(it takes about 45 minutes).

Every RENEW_EVERY_S seconds one open shard, in turn, is split and its two
children merged back: the stream keeps its 2 open shards and their hash
ranges, but the renewed one starts empty. kinesis-mock's PutRecords and
GetRecords cost grows with the length of the shard they touch (PutRecords
groups the new records by the shard's whole record vector, GetRecords scans it
for the iterator's position), so without renewal the emulator, not the
consumer, slowed the soak's batches after about 1,000 of them. Renewal also
soaks the source across reshards, as a long-lived stream on AWS sees them.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from consumer.app import build_session, start_query
from consumer.settings import ConsumerSettings
from producer.events import EventFactory, to_record
from producer.renewal import open_shards, renew
from producer.sending import Pacer, pump
from producer.settings import ProducerSettings
from producer.stream import make_client
from producer.writer import KinesisWriter, UnsentFile
from pyspark.sql import SparkSession
from pyspark.sql.streaming import StreamingQueryListener

from bench.emulator import client, consumer_settings, create_stream, fresh_localstack

SOAK_BATCHES = 5_000
RATE = 50
WINDOW = 500  # batches compared at each end
SAMPLE_EVERY = 250
# At 25 events/s a shard, a shard holds at most 3,000 records before it is renewed; the
# earlier soaks kept the trigger's pace until their shards held about 12,500.
RENEW_EVERY_S = 60
DEDUP_WINDOW = "10 minutes"
DEADLINE_S = 4 * 3600

log = logging.getLogger("bench.soak")


class BatchTimes(StreamingQueryListener):
    """Every batch with data: its id, duration and when it ended."""

    def __init__(self) -> None:
        self.batches: list[dict[str, Any]] = []

    def onQueryStarted(self, event: Any) -> None:
        pass

    def onQueryProgress(self, event: Any) -> None:
        progress = event.progress
        if progress.numInputRows:
            dedup = progress.stateOperators[0]
            self.batches.append(
                {
                    "batch": progress.batchId,
                    "ms": progress.durationMs["triggerExecution"],
                    # Where the batch's time went (latestOffset, addBatch, walCommit, ...).
                    "phases_ms": dict(progress.durationMs),
                    "rows": progress.numInputRows,
                    # The deduplication state: how many keys it holds, and how long the
                    # batch spent evicting the expired ones (Spark scans the whole state).
                    "state_rows": dedup.numRowsTotal,
                    "eviction_ms": dedup.allRemovalsTimeMs,
                }
            )

    def onQueryIdle(self, event: Any) -> None:
        pass

    def onQueryTerminated(self, event: Any) -> None:
        pass


def memory(spark: SparkSession) -> dict[str, float]:
    """The driver JVM's resident memory and live heap, MiB (the Python side is small)."""
    jvm = spark.sparkContext._jvm  # type: ignore[attr-defined]
    runtime = jvm.java.lang.Runtime.getRuntime()
    # Heap in use right after a collection is what is alive; without it the figure
    # is wherever the collector happened to be.
    jvm.java.lang.System.gc()
    pid = jvm.java.lang.ProcessHandle.current().pid()
    rss_kib = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss_kib = int(line.split()[1])
    return {
        "load_1min": os.getloadavg()[0],
        "jvm_rss_mib": rss_kib / 1024,
        "jvm_heap_live_mib": (runtime.totalMemory() - runtime.freeMemory()) / 2**20,
    }


def measure(batches: int = SOAK_BATCHES, deadline_s: float = DEADLINE_S) -> dict[str, Any]:
    spark = build_session(ConsumerSettings(consumer_console=False))
    times = BatchTimes()
    spark.streams.addListener(times)
    samples: list[dict[str, float]] = []
    started = time.monotonic()
    try:
        # kinesis-mock counts closed shards against the account's shard limit (100 by
        # default; AWS counts open ones), and every renewal closes three.
        with (
            fresh_localstack(KINESIS_SHARD_LIMIT="100000") as url,
            tempfile.TemporaryDirectory() as work,
        ):
            stream = create_stream(url, 2)
            settings = consumer_settings(stream, url, work, consumer_dedup_window=DEDUP_WINDOW)
            query = start_query(spark, settings)
            producer = ProducerSettings(kinesis_stream_name=stream, kinesis_endpoint_url=url)
            writer = KinesisWriter(
                make_client(producer), stream, UnsentFile(Path(work) / "unsent.jsonl")
            )
            stopping = threading.Event()
            records = (to_record(e) for e in EventFactory(11).random_events(10**9))
            feeder = threading.Thread(
                target=pump, args=(writer, records, stopping, Pacer(RATE)), daemon=True
            )
            feeder.start()
            kinesis = client(url)
            renewals = 0
            while len(times.batches) < batches and time.monotonic() - started < deadline_s:
                if len(times.batches) >= len(samples) * SAMPLE_EVERY:
                    samples.append({"batches": len(times.batches), **memory(spark)})
                    log.info("soak: %d batches, %s", len(times.batches), samples[-1])
                if time.monotonic() - started >= (renewals + 1) * RENEW_EVERY_S:
                    renew(kinesis, stream, open_shards(kinesis, stream)[renewals % 2])
                    renewals += 1
                time.sleep(1)
            samples.append({"batches": len(times.batches), **memory(spark)})
            stopping.set()
            feeder.join()
            query.stop()
    finally:
        spark.stop()
    window_batches = settings.dedup_window_seconds / settings.trigger_interval_seconds
    return summarize(times.batches, samples, time.monotonic() - started, window_batches) | {
        "shards_renewed": renewals,
        "dedup_window": DEDUP_WINDOW,
    }


def summarize(
    batches: list[dict[str, Any]],
    samples: list[dict[str, float]],
    seconds: float,
    window_batches: float,
) -> dict[str, Any]:
    """The figure from every batch's time and the memory samples; memory is compared from
    the first sample after `window_batches` (the deduplication state is full) to the end."""
    full = [sample for sample in samples if sample["batches"] >= window_batches]
    first = statistics.median(b["ms"] for b in batches[:WINDOW])
    last = statistics.median(b["ms"] for b in batches[-WINDOW:])
    return {
        "batches": len(batches),
        "rate": RATE,
        "seconds": round(seconds),
        "first_500_median_ms": first,
        "last_500_median_ms": last,
        "last_vs_first": last / first,
        # Where a batch's time went at each end (latestOffset, addBatch, walCommit, ...):
        # what places a change between them.
        "first_500_phases_ms": _phase_medians(batches[:WINDOW]),
        "last_500_phases_ms": _phase_medians(batches[-WINDOW:]),
        "first_500_eviction_ms": statistics.median(b["eviction_ms"] for b in batches[:WINDOW]),
        "last_500_eviction_ms": statistics.median(b["eviction_ms"] for b in batches[-WINDOW:]),
        "state_rows_end": batches[-1]["state_rows"],
        "memory_first": full[0] if full else samples[-1],
        "memory_last": samples[-1],
        "memory_samples": samples,
        "batch_ms": [b["ms"] for b in batches],
        "load_1min_end": os.getloadavg()[0],
    }


def _phase_medians(batches: list[dict[str, Any]]) -> dict[str, float]:
    phases = sorted({phase for b in batches for phase in b["phases_ms"]})
    return {
        phase: statistics.median(b["phases_ms"].get(phase, 0) for b in batches) for phase in phases
    }


def _phases(medians: dict[str, float]) -> str:
    """The phases that took time, longest first ("addBatch 220, walCommit 27 ms")."""
    spent = sorted(
        ((ms, phase) for phase, ms in medians.items() if phase != "triggerExecution" and ms),
        reverse=True,
    )
    return ", ".join(f"{phase} {ms:.0f}" for ms, phase in spent) + " ms"


def write(result: dict[str, Any], folder: Path) -> str:
    (folder / "soak.json").write_text(json.dumps(result, indent=2) + "\n")
    first, last = result["memory_first"], result["memory_last"]
    verdict = "pass" if result["last_vs_first"] <= 1.2 else "FAIL"
    markdown = (
        "| figure | measured | reference | ratio | target | result |\n"
        "| --- | --- | --- | --- | --- | --- |\n"
        f"| Soak: {result['batches']:,} batches at {result['rate']} events/s (deduplication "
        f"window {result['dedup_window']}, {result['shards_renewed']} shards renewed), median "
        f"batch of the last 500 | {result['last_500_median_ms']:.0f} ms | first 500: "
        f"{result['first_500_median_ms']:.0f} ms | {result['last_vs_first']:.2f}x | ≤ 1.2x | "
        f"{verdict} |\n"
        f"| Soak: where a batch's time went, median per phase of the last 500 | "
        f"{_phases(result['last_500_phases_ms'])} | first 500: "
        f"{_phases(result['first_500_phases_ms'])} |  |  |  |\n"
        f"| Soak: the deduplication state's eviction, median per batch of the last 500 "
        f"({result['state_rows_end']:,} keys at the end) | {result['last_500_eviction_ms']:.0f} ms "
        f"| first 500: {result['first_500_eviction_ms']:.0f} ms |  |  |  |\n"
        f"| Soak: driver JVM memory, after {first['batches']:,} and {last['batches']:,} batches "
        f"| {last['jvm_rss_mib']:,.0f} MiB resident, {last['jvm_heap_live_mib']:,.0f} MiB live "
        f"heap | {first['jvm_rss_mib']:,.0f} MiB resident, {first['jvm_heap_live_mib']:,.0f} MiB "
        f"live heap (the window full) | {last['jvm_rss_mib'] / first['jvm_rss_mib']:.2f}x "
        f"resident, {last['jvm_heap_live_mib'] / first['jvm_heap_live_mib']:.2f}x live heap "
        "|  |  |\n"
    )
    (folder / "soak.md").write_text(markdown)
    return markdown
