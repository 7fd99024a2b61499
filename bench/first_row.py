"""`python -m bench.first_row SPARK ENDPOINT STREAM RECORDS ROUNDS`: the tutorial's read, timed.

Run by bench/connect.py in a process of its own, once with SPARK `local` (Spark in this
process: a JVM on the host) and once with SPARK a Connect URL (`sc://...`: Spark on the
server, this process a client). Each round starts the tutorial's read of STREAM from
TRIM_HORIZON into a memory table (availableNow), and times, from `start()`, the first row
seen in the table and the query's end. Prints one JSON line.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from pyspark.sql import SparkSession

POLL_S = 0.05


def session(spark: str) -> SparkSession:
    if spark == "local":
        builder = SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false")
        return builder.getOrCreate()
    return SparkSession.builder.remote(spark).getOrCreate()


def read_round(spark: SparkSession, endpoint: str, stream: str, table: str) -> dict[str, Any]:
    kinesis = (
        spark.readStream.format("kinesis")
        .option("streamName", stream)
        .option("endpointUrl", endpoint)
        .option("region", "us-east-1")
        .option("awsAccessKeyId", "test")
        .option("awsSecretKey", "test")
        .option("startingposition", "TRIM_HORIZON")
        .load()
    )
    started = time.perf_counter()
    query = (
        kinesis.selectExpr("CAST(data AS STRING) AS json")
        .writeStream.format("memory")
        .queryName(table)
        .trigger(availableNow=True)
        .start()
    )
    first_row_s = None
    while query.isActive and first_row_s is None:
        if spark.table(table).limit(1).collect():
            first_row_s = time.perf_counter() - started
        else:
            time.sleep(POLL_S)
    query.awaitTermination()
    all_rows_s = time.perf_counter() - started
    rows = spark.table(table).count()
    # A query of one batch may end between two polls: its first row came with its last.
    return {
        "first_row_s": round(first_row_s if first_row_s is not None else all_rows_s, 3),
        "all_rows_s": round(all_rows_s, 3),
        "rows": rows,
    }


def main(spark_url: str, endpoint: str, stream: str, records: int, rounds: int) -> None:
    started = time.perf_counter()
    spark = session(spark_url)
    spark.range(1).collect()  # the session is up, on either side, before the clock starts
    session_s = time.perf_counter() - started
    results = [
        read_round(spark, endpoint, stream, f"first_row_{round_number}")
        for round_number in range(rounds)
    ]
    spark.stop()
    if any(result["rows"] != records for result in results):
        raise SystemExit(f"expected {records} rows in each round: {results}")
    print(json.dumps({"session_s": round(session_s, 3), "rounds": results}))


if __name__ == "__main__":
    spark_arg, endpoint_arg, stream_arg, records_arg, rounds_arg = sys.argv[1:6]
    main(spark_arg, endpoint_arg, stream_arg, int(records_arg), int(rounds_arg))
