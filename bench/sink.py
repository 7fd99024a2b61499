"""Figures 7 and 8: the Kinesis sink's throughput, and a bounded `spark.read` of a stream.

Sink: `writeStream.format("kinesis")` of one `rate-micro-batch` batch of
`count` rows (payloads as long as the producer's events, one partition key
per row) into a fresh 2-shard stream, beside the emulator's ceiling (raw
PutRecords of 500 from 4 threads) and the qubole-style loop of one PutRecord
per record, all three writing the same records, each into its own fresh
stream of the same emulator. The sink is judged on its batch's own time
(`triggerExecution`); the time from `start()` is kept beside it. The same sink
with `aggregate=true` (the peers' default) is measured beside them, in rows
per second, for comparison only: it puts KPL aggregates, so the emulator's
ceiling in records does not bound it.

Batch read: `spark.read.format("kinesis")` of a 4-shard stream holding
`count` records into the `noop` sink, timed from `load()` to the action's end,
beside the plain boto3 reader (a thread per shard) on the same stream.
"""

from __future__ import annotations

import logging
import statistics
import tempfile
import time
from typing import Any

from producer.events import Record
from pyspark.sql import SparkSession

from bench.drain import plain_reader
from bench.emulator import create_stream, event_records, put_concurrently
from bench.ingest import put_one_by_one
from testkit.clients import REGION

log = logging.getLogger(__name__)

SINK_SHARDS = 2
READ_SHARDS = 4
RUNS = 2
WARM_UP_ROWS = 100


def sink_rows(count: int) -> list[Record]:
    """The records the sink's query writes, built in Python for the raw sides.

    Row `value` (0 .. count-1 of the single `rate-micro-batch` batch) becomes
    data `value` padded with dots to the producer's mean event length, keyed by
    `value` itself: one key per record, like the producer's event ids, so the
    records spread evenly over the shards. (Sixteen keys put 13 of them on one
    of two shards, and kinesis-mock's ingest slows with a shard's size, so the
    skewed side was measured against a longer shard than the others.)
    """
    length = _event_length()
    return [Record(str(value).ljust(length, ".").encode(), str(value)) for value in range(count)]


def _event_length() -> int:
    return round(statistics.mean(len(record.data) for record in event_records(200)))


def spark_sink(
    spark: SparkSession, url: str, count: int, aggregate: bool = False
) -> tuple[float, float]:
    """(seconds from `start()` to the query's end, seconds of its one batch) for `count` rows,
    written as KPL aggregates with `aggregate`."""
    stream = create_stream(url, SINK_SHARDS)
    rows = (
        spark.readStream.format("rate-micro-batch")
        .option("rowsPerBatch", count)
        .option("numPartitions", SINK_SHARDS)
        .load()
        .selectExpr(
            f"RPAD(CAST(value AS STRING), {_event_length()}, '.') AS data",
            "CAST(value AS STRING) AS partitionKey",
        )
    )
    with tempfile.TemporaryDirectory() as checkpoint:
        started = time.perf_counter()
        query = (
            rows.writeStream.format("kinesis")
            .options(streamName=stream, endpointUrl=url, region=REGION)
            .option("aggregate", aggregate)
            .option("checkpointLocation", checkpoint)
            .trigger(once=True)
            .start()
        )
        query.awaitTermination()
        elapsed = time.perf_counter() - started
        batches = [p for p in query.recentProgress if p["numInputRows"]]
    written = sum(p["numInputRows"] for p in batches)
    if written != count:
        raise RuntimeError(f"the sink wrote {written} of {count} rows")
    batch_s = sum(p["durationMs"]["triggerExecution"] for p in batches) / 1000
    log.info(
        "sink: %d rows in %.2f s from start(), batch %.2f s (%s)",
        count,
        elapsed,
        batch_s,
        ", ".join(f"{k} {v}" for k, v in batches[0]["durationMs"].items()),
    )
    return elapsed, batch_s


def measure_sink(spark: SparkSession, url: str, count: int) -> dict[str, Any]:
    """The sink, raw PutRecords and the per-record loop, each `count` identical records.

    After one small warm-up write, interleaved, each side into its own fresh
    stream of the same emulator, best of RUNS for the sink and the ceiling; the
    loop writes every record too (no extrapolation from a shorter run: the
    emulator slows as a shard grows, so a short run would flatter the loop).
    """
    records = sink_rows(count)
    # The session's first write starts the Python workers and builds their Kinesis
    # client (seconds, once per worker); a streaming query pays it once, not per batch.
    spark_sink(spark, url, WARM_UP_ROWS)
    sink_runs, ceiling_runs, aggregated_runs = [], [], []
    for _ in range(RUNS):
        sink_runs.append(spark_sink(spark, url, count))
        ceiling_runs.append(put_concurrently(url, create_stream(url, SINK_SHARDS), records))
        aggregated_runs.append(spark_sink(spark, url, count, aggregate=True))
    loop_s = put_one_by_one(url, create_stream(url, SINK_SHARDS), records)
    wall_s = min(wall for wall, _ in sink_runs)
    batch_s = min(batch for _, batch in sink_runs)
    aggregated_s = min(batch for _, batch in aggregated_runs)
    ceiling_s = min(ceiling_runs)
    return {
        "records": count,
        "shards": SINK_SHARDS,
        "records_per_s": {
            "sink": count / batch_s,
            "sink_from_start": count / wall_s,
            "emulator_ceiling": count / ceiling_s,
            "one_request_per_record": count / loop_s,
            "sink_aggregated": count / aggregated_s,
        },
        "sink_vs_ceiling": ceiling_s / batch_s,
        "sink_from_start_vs_ceiling": ceiling_s / wall_s,
        "sink_vs_per_record": loop_s / batch_s,
        "sink_aggregated_vs_per_record": loop_s / aggregated_s,
        "seconds": {
            "sink_runs": sink_runs,
            "sink_aggregated_runs": aggregated_runs,
            "ceiling_runs": ceiling_runs,
            "per_record_loop": loop_s,
        },
    }


def spark_batch_read(spark: SparkSession, url: str, stream: str, count: int) -> float:
    """Seconds from `load()` to the end of a `noop` write of the whole stream."""
    started = time.perf_counter()
    frame = (
        spark.read.format("kinesis")
        .options(streamName=stream, endpointUrl=url, region=REGION)
        .load()
    )
    frame.write.format("noop").mode("overwrite").save()
    elapsed = time.perf_counter() - started
    return elapsed


def measure_batch_read(spark: SparkSession, url: str, count: int) -> dict[str, Any]:
    stream = create_stream(url, READ_SHARDS)
    put_concurrently(url, stream, event_records(count))
    log.info("%d records in a %d-shard stream; reading", count, READ_SHARDS)
    rows = (
        spark.read.format("kinesis")
        .options(streamName=stream, endpointUrl=url, region=REGION)
        .load()
        .count()
    )
    if rows != count:
        raise RuntimeError(f"spark.read found {rows} of {count} records")
    spark_s = min(spark_batch_read(spark, url, stream, count) for _ in range(RUNS))
    plain_s = min(plain_reader(url, stream, count) for _ in range(RUNS))
    return {
        "records": count,
        "shards": READ_SHARDS,
        "records_per_s": {"spark_read": count / spark_s, "plain": count / plain_s},
        "spark_vs_plain": plain_s / spark_s,
    }
