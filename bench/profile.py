"""`python -m bench.profile`: where a steady consumer batch's time goes (not in `make bench`).

It runs figure 3's set-up (the consumer's own query at 200 events/s, the
stack's default trigger) and prints, for each batch, the phases Spark times
(`durationMs`: planning the batch's offsets, planning the query, the batch's
one job and the sink, the offset and commit logs), then the last jobs' stages
and tasks from Spark's REST API: the job's read stage (a task per `shardsPerTask` shards:
GetRecords, parsing, the shuffle write) and its state stage (deduplication in
RocksDB, the sink's Parquet writes).
"""

from __future__ import annotations

import os
import statistics
from datetime import datetime
from typing import Any

import requests
from consumer.app import build_session
from consumer.settings import ConsumerSettings
from pyspark.sql import SparkSession

from bench import latency

RATE = 200
SECONDS = 15.0
JOBS_SHOWN = 6


def _rest(spark: SparkSession, path: str) -> Any:
    base = f"{spark.sparkContext.uiWebUrl}/api/v1/applications/{spark.sparkContext.applicationId}"
    return requests.get(f"{base}/{path}", timeout=10).json()


def _seconds(moment: str) -> float:
    return datetime.strptime(moment.replace("GMT", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


def batch_phases(query: Any) -> None:
    names = ("triggerExecution", *latency.PHASES)
    print("rows " + " ".join(f"{name:>16}" for name in names))
    for progress in query.recentProgress:
        if progress["numInputRows"]:
            durations = progress["durationMs"]
            cells = " ".join(f"{durations.get(name, 0):>16}" for name in names)
            print(f"{progress['numInputRows']:>4} {cells}")


def last_jobs(spark: SparkSession, count: int) -> None:
    jobs = sorted(_rest(spark, "jobs"), key=lambda job: job["jobId"])[-count:]
    for job in jobs:
        submitted = _seconds(job["submissionTime"])
        took = _seconds(job["completionTime"]) - submitted
        print(f"job {job['jobId']}: {took * 1000:.0f} ms")
        for stage_id in job["stageIds"]:
            for task in _rest(spark, f"stages/{stage_id}/0/taskList?length=50"):
                metrics = task["taskMetrics"]
                print(
                    f"  stage {stage_id} task {task['index']}: launched at "
                    f"+{(_seconds(task['launchTime']) - submitted) * 1000:.0f} ms, ran "
                    f"{metrics['executorRunTime']} ms ({metrics['executorCpuTime'] // 10**6} ms "
                    "of it on the JVM's CPU)"
                )


def stage_ms_medians(spark: SparkSession, query: Any) -> list[float]:
    """Per stage of the query's batches, in the order each batch's job runs them (the read
    stage first, then the state stage), the median over its jobs of a task's run time
    (the stage's executorRunTime over its tasks), from the REST API."""
    by_order: list[list[float]] = []
    for job_id in spark.sparkContext.statusTracker().getJobIdsForGroup(str(query.runId)):
        ran = [
            _rest(spark, f"stages/{stage}")[0]
            for stage in sorted(_rest(spark, f"jobs/{job_id}")["stageIds"])
        ]
        ran = [stage for stage in ran if stage["numCompleteTasks"]]
        for order, stage in enumerate(ran):
            if order == len(by_order):
                by_order.append([])
            by_order[order].append(stage["executorRunTime"] / stage["numCompleteTasks"])
    return [statistics.median(times) for times in by_order]


def main() -> None:
    os.environ.setdefault(
        "PYSPARK_SUBMIT_ARGS", "--conf spark.ui.showConsoleProgress=false pyspark-shell"
    )
    spark = build_session(ConsumerSettings(consumer_console=False))
    spark.conf.set("spark.sql.streaming.numRecentProgressUpdates", "10000")
    try:

        def inspect(query: Any) -> None:
            batch_phases(query)
            last_jobs(spark, JOBS_SHOWN)

        figure = latency.measure_rate(spark, RATE, SECONDS, inspect)
        print({key: figure[key] for key in ("p50_s", "p99_s", "batch_ms_median", "jobs_per_batch")})
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
