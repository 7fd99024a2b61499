"""Figure 15 (opt-in, `python -m bench --only two_readers`): two queries draining one stream
at once through the AWS-faithful proxy, polling against enhanced fan-out.

With GetRecords, every reader of a shard shares its 2 MB/s; with fan-out, each
registered consumer gets 2 MB/s of its own per shard. Both readers start
together on the same preloaded 4-shard stream, through one proxy enforcing
AWS's limits (bytes scaled as figure 10 scales them, `drain.LIMIT_SCALE`, for
GetRecords and for each consumer's pushes alike); each reader's rate is given
as a share of one reader's limit (shards x the scaled byte rate) over its
batches' time. Under polling the two together can reach 1x, so about 0.5x each
is the ceiling.
"""

from __future__ import annotations

import threading
from typing import Any

from kinesis_proxy import Behaviours, running_proxy
from kinesis_proxy.limits import READ_BYTES_PER_SHARD_PER_S
from pyspark.sql import SparkSession

from bench.drain import (
    LIMIT_SCALE,
    LIMITED_RECORDS,
    LIMITED_SHARDS,
    SCALED,
    limited_stream,
    spark_drain,
)

READERS = ("reader-a", "reader-b")


def _readers_at_once(
    spark: SparkSession, url: str, stream: str, options_of: dict[str, dict[str, str]]
) -> dict[str, dict[str, Any]]:
    """Each reader's `spark_drain`, all started together."""
    results: dict[str, dict[str, Any]] = {}

    def drain_as(reader: str) -> None:
        results[reader] = spark_drain(spark, url, stream, LIMITED_RECORDS, **options_of[reader])

    threads = [threading.Thread(target=drain_as, args=(reader,)) for reader in options_of]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if set(results) != set(options_of):
        raise RuntimeError(f"only {sorted(results)} of {sorted(options_of)} finished")
    return results


def measure_two_readers(spark: SparkSession, url: str) -> dict[str, Any]:
    stream, total_bytes = limited_stream(url)
    shard_bytes_per_s = READ_BYTES_PER_SHARD_PER_S // LIMIT_SCALE
    limit_bytes_per_s = LIMITED_SHARDS * shard_bytes_per_s
    spark_drain(spark, url, stream, LIMITED_RECORDS, **SCALED)  # the Python workers warm
    modes = {
        "polling": {reader: SCALED for reader in READERS},
        "fan-out": {
            reader: {**SCALED, "consumerMode": "efo", "consumerName": reader} for reader in READERS
        },
    }
    figure: dict[str, Any] = {
        "records": LIMITED_RECORDS,
        "shards": LIMITED_SHARDS,
        "task_slots": spark.sparkContext.defaultParallelism,
        "megabytes": total_bytes / 1e6,
        "limit_megabytes_per_s": limit_bytes_per_s / 1e6,
        "limit_scale": LIMIT_SCALE,
    }
    for mode, options_of in modes.items():
        # A fresh proxy each: a drain leaves the shards' byte budgets spent.
        with running_proxy(url, Behaviours.aws(read_bytes_per_s=shard_bytes_per_s)) as proxy:
            runs = _readers_at_once(spark, proxy.url, stream, options_of)
            counters = proxy.counters()
        figure[mode] = {
            reader: {
                "vs_limit": total_bytes / run["batch_seconds"] / limit_bytes_per_s,
                "batch_seconds": run["batch_seconds"],
                "seconds": run["seconds"],
            }
            for reader, run in runs.items()
        }
        figure[mode]["refused_reads"] = counters.get("throttled_reads", 0)
    return figure
