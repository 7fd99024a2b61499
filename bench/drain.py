"""Figures 2, 5, 6 and 10: draining a preloaded stream through Spark, beside a plain boto3
reader; figure 10 through the AWS-faithful proxy with AWS's read limits on.

The Spark figure is taken twice on the same stream with fresh checkpoints:
first as the session's first query (it pays the Python workers' cold start),
then warm. Each query's wall time includes starting it (Spark launches a
Python process to plan the source, about 1.7 s here), which a running stream
pays once; the batches' own time is reported beside it. The empty
micro-batch cost comes from a query left idle on a drained stream, with Spark
told to report progress for every idle trigger.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from typing import Any

from kinesis_proxy import Behaviours, running_proxy
from kinesis_proxy.limits import READ_BYTES_PER_SHARD_PER_S
from producer.events import Record
from pyspark.sql import DataFrame, SparkSession

from bench.emulator import client, create_stream, event_records, put_concurrently, timed_threads
from testkit.clients import REGION

SHARD_COUNTS = (1, 2, 4)
RUNS = 2
IDLE_TRIGGER = "500 milliseconds"
IDLE_SECONDS = 8.0
# Figure 10: records large enough that the bytes per shard, not the 5 reads/s, are the limit
# met. This emulator behind the proxy serves about 2 MB/s in all (48 MB read by the plain
# reader in 24.6 s, nothing refused, 2026-12-06), under 4 shards x 2 MB/s. So bytes are
# scaled down 8 times, time is not: 256 KiB/s per shard at the proxy, maxFetchRate 0.25 MB/s
# at the source, and at most 1.25 MB per GetRecords (AWS: 10 MB, then the shard is shut for
# about 5 s) for both readers. 26 MB: about 25 s of reading at the limit.
LIMITED_SHARDS = 4
LIMITED_RECORD_BYTES = 40_000
LIMITED_RECORDS = 650
LIMIT_SCALE = 8
LIMITED_RECORDS_PER_CALL = 10 * 1_000_000 // LIMIT_SCALE // LIMITED_RECORD_BYTES
# The proxy's byte rate per shard, and one reader's limit: every shard at that rate.
SCALED_SHARD_BYTES_PER_S = READ_BYTES_PER_SHARD_PER_S // LIMIT_SCALE
LIMIT_BYTES_PER_S = LIMITED_SHARDS * SCALED_SHARD_BYTES_PER_S


def plain_reader(url: str, stream: str, expected: int, per_call: int = 10_000) -> float:
    """GetRecords of up to `per_call` records with a thread per shard until every record
    is read (botocore's standard retries wait out refusals); seconds."""
    kinesis = client(url)
    shard_ids = [s["ShardId"] for s in kinesis.list_shards(StreamName=stream)["Shards"]]
    counts: dict[str, int] = {}

    def drain(shard_id: str) -> None:
        reader = client(url)
        iterator = reader.get_shard_iterator(
            StreamName=stream, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        read = 0
        while iterator:
            answer = reader.get_records(ShardIterator=iterator, Limit=per_call)
            read += len(answer["Records"])
            if not answer["Records"] and answer.get("MillisBehindLatest", 0) == 0:
                break
            iterator = answer.get("NextShardIterator")
        counts[shard_id] = read

    elapsed = timed_threads(drain, shard_ids)
    if sum(counts.values()) != expected:
        raise RuntimeError(f"plain reader read {sum(counts.values())} of {expected}")
    return elapsed


def _kinesis(
    spark: SparkSession, url: str, stream: str, starting_position: str, **options: str
) -> DataFrame:
    return (
        spark.readStream.format("kinesis")
        .option("streamName", stream)
        .option("endpointUrl", url)
        .option("region", REGION)
        .option("startingPosition", starting_position)
        .options(**options)
        .load()
    )


def spark_drain(
    spark: SparkSession,
    url: str,
    stream: str,
    expected: int,
    *,
    deadline_s: int | None = None,
    **options: str,
) -> dict[str, Any]:
    """availableNow into the noop sink; wall seconds and Spark's own split of the time.
    A drain not over `deadline_s` after its start is stopped and raises TimeoutError."""
    with tempfile.TemporaryDirectory() as checkpoint:
        frame = _kinesis(spark, url, stream, "TRIM_HORIZON", **options)
        started = time.perf_counter()
        query = (
            frame.writeStream.format("noop")
            .option("checkpointLocation", checkpoint)
            .trigger(availableNow=True)
            .start()
        )
        if query.awaitTermination(deadline_s) is False:
            query.stop()
            raise TimeoutError(f"the drain of {stream} was not over after {deadline_s} s")
        elapsed = time.perf_counter() - started
        progress = query.recentProgress
    rows = sum(p["numInputRows"] for p in progress)
    if rows != expected:
        raise RuntimeError(f"Spark read {rows} of {expected}")
    durations = [p["durationMs"] for p in progress if p["numInputRows"]]
    return {
        "seconds": elapsed,
        # The batches alone: planning, reading and writing, without starting the query.
        "batch_seconds": sum(d.get("triggerExecution", 0) for d in durations) / 1000,
        "batches": len(durations),
        "latest_offset_ms": sum(d.get("latestOffset", 0) for d in durations),
        "add_batch_ms": sum(d.get("addBatch", 0) for d in durations),
        "first_batch_ms": durations[0].get("triggerExecution", 0) if durations else 0,
    }


def empty_batch(spark: SparkSession, url: str, stream: str) -> dict[str, Any]:
    """Trigger durations of a query on an idle stream (starting at LATEST)."""
    spark.conf.set("spark.sql.streaming.noDataProgressEventInterval", "0")
    with tempfile.TemporaryDirectory() as checkpoint:
        query = (
            _kinesis(spark, url, stream, "LATEST")
            .writeStream.format("noop")
            .option("checkpointLocation", checkpoint)
            .trigger(processingTime=IDLE_TRIGGER)
            .start()
        )
        time.sleep(IDLE_SECONDS)
        progress = query.recentProgress
        query.stop()
    # The first trigger plans the initial offset and starts the source's Python runner.
    idle = [p["durationMs"] for p in progress[1:] if p["numInputRows"] == 0]
    if not idle:
        raise RuntimeError("no idle trigger was reported")
    triggers = [d.get("triggerExecution", 0) for d in idle]
    latest = [d.get("latestOffset", 0) for d in idle]
    return {
        "triggers": len(idle),
        "trigger_ms_median": statistics.median(triggers),
        "trigger_ms_max": max(triggers),
        "latest_offset_ms_median": statistics.median(latest),
    }


def measure(spark: SparkSession, url: str, records: int) -> dict[str, Any]:
    """Preloads one stream per shard count, then drains each both ways."""
    streams = {shards: create_stream(url, shards) for shards in SHARD_COUNTS}
    payload = event_records(records)
    for stream in streams.values():
        put_concurrently(url, stream, payload)
    four = streams[4]
    cold = spark_drain(spark, url, four, records)  # the session's first query
    scaling: dict[str, dict[str, Any]] = {}
    for shards in sorted(SHARD_COUNTS, reverse=True):
        # Best of several: kinesis-mock's answer times vary run to run by up to 2x.
        warm = min(
            (spark_drain(spark, url, streams[shards], records) for _ in range(RUNS)),
            key=lambda run: run["seconds"],
        )
        plain_s = min(plain_reader(url, streams[shards], records) for _ in range(RUNS))
        scaling[str(shards)] = {
            "spark_records_per_s": records / warm["seconds"],
            "plain_records_per_s": records / plain_s,
            "spark_vs_plain": plain_s / warm["seconds"],
            "batches_records_per_s": records / warm["batch_seconds"],
            "batches_vs_plain": plain_s / warm["batch_seconds"],
            "spark": warm,
        }
    return {
        "records": records,
        "spark_cold": cold,
        "spark_cold_records_per_s": records / cold["seconds"],
        "cold_start_s": cold["seconds"] - scaling["4"]["spark"]["seconds"],
        "scaling": scaling,
        "empty_batch": empty_batch(spark, url, four),
    }


# The source's read rate and call size, scaled as the proxy's limits are.
SCALED = {
    "maxFetchRate": str(2.0 / LIMIT_SCALE),  # MB/s; the default is AWS's 2
    "maxRecordsPerFetch": str(LIMITED_RECORDS_PER_CALL),
}


def limited_stream(url: str) -> tuple[str, int]:
    """Figure 10's stream: LIMITED_RECORDS records of LIMITED_RECORD_BYTES on LIMITED_SHARDS
    shards, put straight into LocalStack; its name and its bytes."""
    stream = create_stream(url, LIMITED_SHARDS)
    records = [
        Record(data=bytes([65 + n % 26]) * LIMITED_RECORD_BYTES, partition_key=f"key-{n}")
        for n in range(LIMITED_RECORDS)
    ]
    # Loaded around the proxy: its write limits would make the loading, not the read, slow.
    # 1 MB requests: a 4 MB one timed out (60 s) on an emulator starved by a shared machine.
    put_concurrently(url, stream, records, per_request=25)
    return stream, sum(record.size for record in records)


def scaled_limits() -> Behaviours:
    """AWS's behaviours at the proxy, its read bytes per shard (polling's and each fan-out
    consumer's alike) scaled down LIMIT_SCALE times."""
    return Behaviours.aws(read_bytes_per_s=SCALED_SHARD_BYTES_PER_S)


def share_of_limit(total_bytes: int, seconds: float) -> float:
    """A read of `total_bytes` in `seconds` as a share of one reader's limit."""
    return total_bytes / seconds / LIMIT_BYTES_PER_S


def limited_figure(spark: SparkSession, url: str) -> tuple[str, int, dict[str, Any]]:
    """Figure 10's stream, loaded, with the session's Python workers warmed on it (a drain
    around the proxy): its name, its bytes, and what every figure read under the scaled
    limits reports first."""
    stream, total_bytes = limited_stream(url)
    spark_drain(spark, url, stream, LIMITED_RECORDS, **SCALED)
    return (
        stream,
        total_bytes,
        {
            "records": LIMITED_RECORDS,
            "shards": LIMITED_SHARDS,
            "task_slots": spark.sparkContext.defaultParallelism,
            "megabytes": total_bytes / 1e6,
            "limit_megabytes_per_s": LIMIT_BYTES_PER_S / 1e6,
            "limit_scale": LIMIT_SCALE,
        },
    )


def measure_under_limits(spark: SparkSession, url: str) -> dict[str, Any]:
    """Figure 10: Spark's drain and the plain reader's, each through a fresh proxy enforcing
    AWS's read limits (bytes scaled, see LIMIT_SCALE), as a share of the limit itself
    (shards x the byte rate). Fresh, because a drain leaves the shards' byte budgets spent."""
    stream, total_bytes, figure = limited_figure(spark, url)
    limits = scaled_limits()
    with running_proxy(url, limits) as proxy:
        spark_run = spark_drain(spark, proxy.url, stream, LIMITED_RECORDS, **SCALED)
        spark_refused = proxy.counters().get("throttled_reads", 0)
    # The same drain with a task per shard (as before shardsPerTask), for a same-run ratio.
    with running_proxy(url, limits) as proxy:
        one_per_task = spark_drain(
            spark, proxy.url, stream, LIMITED_RECORDS, shardsPerTask="1", **SCALED
        )
    with running_proxy(url, limits) as proxy:
        plain_s = plain_reader(proxy.url, stream, LIMITED_RECORDS, LIMITED_RECORDS_PER_CALL)
        plain_refused = proxy.counters().get("throttled_reads", 0)
    return {
        # One task reads the 4 shards at once (shardsPerTask, default 8).
        **figure,
        "records_per_call": LIMITED_RECORDS_PER_CALL,
        "spark": spark_run,
        "spark_vs_limit": share_of_limit(total_bytes, spark_run["seconds"]),
        "spark_batches_vs_limit": share_of_limit(total_bytes, spark_run["batch_seconds"]),
        "one_shard_per_task": one_per_task,
        "one_shard_per_task_vs_limit": share_of_limit(total_bytes, one_per_task["batch_seconds"]),
        "spark_refused_reads": spark_refused,
        "plain_seconds": plain_s,
        "plain_vs_limit": share_of_limit(total_bytes, plain_s),
        "plain_refused_reads": plain_refused,
    }
