"""The consumer as users run it: `python -m consumer`, against a real LocalStack Kinesis."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas
import pyarrow.dataset
import pytest
from consumer.app import build_session, check_stream
from consumer.events import classify, first_copies, sink_rows
from consumer.settings import ConsumerSettings
from consumer.sink import BatchSink
from pyspark.sql import functions as F

from testkit.waiting import wait_until

pytestmark = pytest.mark.unit

RUN_TIMEOUT_S = 240


def _event(message_type: str, count: int) -> dict[str, object]:
    return {
        "event_id": uuid.uuid4().hex,
        "event_time": "2026-11-25T07:00:00.000Z",
        "message_type": message_type,
        "count": count,
    }


def _consumer(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "consumer", *command],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )


@pytest.fixture
def consumer_env(kinesis_endpoint: str, tmp_path: Path, stream_factory) -> dict[str, str]:
    return {
        "KINESIS_ENDPOINT_URL": kinesis_endpoint,
        "KINESIS_STREAM_NAME": stream_factory(2),
        "AWS_REGION": "us-east-1",
        "SPARK_MASTER": "local[2]",
        "CONSUMER_TRIGGER": "availableNow",
        "CONSUMER_OUTPUT_PATH": str(tmp_path / "output"),
        "CONSUMER_CHECKPOINT_PATH": str(tmp_path / "checkpoints"),
        "CONSUMER_CONSOLE": "false",
        "CONSUMER_MAX_EVENT_BYTES": "1000",
    }


def _put(kinesis_client, stream: str, payloads: list[bytes]) -> None:
    entries = [
        {"Data": data, "PartitionKey": f"key-{index}"} for index, data in enumerate(payloads)
    ]
    answer = kinesis_client.put_records(StreamName=stream, Records=entries)
    assert answer["FailedRecordCount"] == 0


def _drain(env: dict[str, str]) -> dict[str, object]:
    run = _consumer([], env)
    assert run.returncode == 0, run.stderr[-3000:]
    report = _consumer(["report", "--rows"], env)
    assert report.returncode == 0, report.stderr
    return json.loads(report.stdout)


def test_good_events_and_dead_letters_are_separated_exactly(consumer_env, kinesis_client):
    events = [_event("message1", 2), _event("message2", 1), _event("message1", 3)]
    malformed = [
        b"{not json",
        b'{"message_type": "message1", "count": "two"}',
        b"\xff\xfe\xfd",
        b"x" * 1001,
    ]
    payloads = [json.dumps(event).encode() for event in events] + malformed
    _put(kinesis_client, consumer_env["KINESIS_STREAM_NAME"], payloads)

    report = _drain(consumer_env)

    assert report["event_ids"] == sorted(event["event_id"] for event in events)
    assert report["duplicate_event_ids"] == 0
    assert report["counts"] == {
        "message1": {"events": 2, "count_sum": 5},
        "message2": {"events": 1, "count_sum": 1},
    }
    assert report["dead_letters"] == 4
    assert report["dead_letter_errors"] == {
        "not a JSON object with the event's fields and types": 2,
        "payload is not valid UTF-8": 1,
        "payload of 1001 bytes is over CONSUMER_MAX_EVENT_BYTES=1000": 1,
    }
    # Each event's place in the stream; `_put` keys the i-th payload `key-i`.
    assert {row["event_id"]: row["partition_key"] for row in report["rows"]} == {
        event["event_id"]: f"key-{index}" for index, event in enumerate(events)
    }
    for row in report["rows"]:
        assert row["shard_id"].startswith("shardId-")
        assert row["sequence_number"].isdigit()
        assert row["sub_sequence_number"] == 0
        assert isinstance(row["batch_id"], int)


def test_writing_the_checkpoint_starts_no_readlink_process(consumer_env, kinesis_client, tmp_path):
    """Hadoop's local file system, without its native library, runs `chmod` for each file it
    creates and Spark's default checkpoint manager adds two `readlink`s per rename: the
    consumer's manager leaves only the `chmod`s (docs/performance.md). Shims first on PATH
    log what the JVM starts."""
    shims, started = tmp_path / "shims", tmp_path / "started.log"
    shims.mkdir()
    for command in ("readlink", "chmod"):
        shim = shims / command
        shim.write_text(
            f'#!/bin/sh\necho "{command} $*" >> {started}\nexec {shutil.which(command)} "$@"\n'
        )
        shim.chmod(0o755)
    _put(
        kinesis_client,
        consumer_env["KINESIS_STREAM_NAME"],
        [json.dumps(_event("message1", 1)).encode() for _ in range(3)],
    )

    _drain({**consumer_env, "PATH": f"{shims}:{os.environ['PATH']}"})

    checkpoint = consumer_env["CONSUMER_CHECKPOINT_PATH"]
    on_checkpoint = [line for line in started.read_text().splitlines() if checkpoint in line]
    # The shims do see the JVM's processes: a created file's `chmod` is still there.
    assert any(line.startswith("chmod") for line in on_checkpoint), on_checkpoint
    assert not [line for line in on_checkpoint if line.startswith("readlink")]


def test_the_sink_reads_the_same_in_spark_pandas_and_pyarrow(consumer_env, kinesis_client):
    events = [_event("message1", 1) for _ in range(6)]
    _put(
        kinesis_client,
        consumer_env["KINESIS_STREAM_NAME"],
        [b"{bad"] + [json.dumps(event).encode() for event in events],
    )
    report = _drain(consumer_env)
    output = Path(consumer_env["CONSUMER_OUTPUT_PATH"])
    spark_read = (
        "import json, sys; from pyspark.sql import SparkSession; "
        "spark = SparkSession.builder.master('local[1]').getOrCreate(); "
        "rows = spark.read.parquet(sys.argv[1]).select('event_id', 'hour').collect(); "
        "print(json.dumps(sorted([r.event_id, r.hour] for r in rows)))"
    )
    by_spark = subprocess.run(
        [sys.executable, "-c", spark_read, str(output / "events")],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=True,
    )

    by_pandas = pandas.read_parquet(output / "events")
    by_pyarrow = pyarrow.dataset.dataset(output / "dead_letters", partitioning="hive").to_table()
    assert [event_id for event_id, _ in json.loads(by_spark.stdout)] == report["event_ids"]
    assert sorted(by_pandas["event_id"]) == report["event_ids"]
    assert set(by_pandas["hour"]) == {hour for _, hour in json.loads(by_spark.stdout)}
    assert by_pyarrow.column("raw").to_pylist() == [b"{bad"]


def test_a_restart_resumes_without_loss_or_duplicates(consumer_env, kinesis_client):
    stream = consumer_env["KINESIS_STREAM_NAME"]
    first = [_event("message1", 1) for _ in range(20)]
    _put(kinesis_client, stream, [json.dumps(event).encode() for event in first])
    first_report = _drain(consumer_env)
    assert first_report["events"] == 20
    first_batches = {row["batch_id"] for row in first_report["rows"]}

    second = [_event("message2", 1) for _ in range(15)]
    resent = first[:5]  # a producer retry: same ids, same event times
    _put(kinesis_client, stream, [json.dumps(event).encode() for event in second + resent])
    report = _drain(consumer_env)

    assert report["event_ids"] == sorted(event["event_id"] for event in first + second)
    assert report["duplicate_event_ids"] == 0
    # The batch id comes from the `batch_id=N` directory: the restart wrote later ones.
    second_ids = {event["event_id"] for event in second}
    second_batches = {row["batch_id"] for row in report["rows"] if row["event_id"] in second_ids}
    assert min(second_batches) > max(first_batches)


def test_a_stream_that_never_comes_stops_with_one_clear_line(consumer_env):
    env = {**consumer_env, "KINESIS_STREAM_NAME": "no-such-stream"}
    run = _consumer([], {**env, "CONSUMER_STREAM_WAIT_SECONDS": "1"})
    assert run.returncode == 1
    assert "Kinesis stream 'no-such-stream' not found in region 'us-east-1'" in run.stderr
    assert "CONSUMER_STREAM_WAIT_SECONDS=1)" in run.stderr
    assert "Traceback" not in run.stderr


def test_missing_credentials_stop_the_consumer_at_once(consumer_env):
    # They never turn up by waiting: no wait for the stream (here up to 120 s), one line.
    env = {
        **consumer_env,
        "AWS_ACCESS_KEY_ID": "",
        "AWS_SECRET_ACCESS_KEY": "",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
        "AWS_CONFIG_FILE": "/nonexistent",
        # The chain's last resort asks EC2's metadata service: not from a test.
        "AWS_EC2_METADATA_DISABLED": "true",
        "CONSUMER_STREAM_WAIT_SECONDS": "120",
    }
    started = time.monotonic()
    run = _consumer([], env)
    assert run.returncode == 1
    assert "cannot start: no AWS credentials found" in run.stderr
    assert "waited" not in run.stderr
    assert time.monotonic() - started < 60
    assert "Traceback" not in run.stderr


def test_an_endpoint_that_never_answers_stops_with_one_clear_line(consumer_env):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        nobody = f"http://127.0.0.1:{unused.getsockname()[1]}"
    env = {**consumer_env, "KINESIS_ENDPOINT_URL": nobody, "CONSUMER_STREAM_WAIT_SECONDS": "1"}
    run = _consumer([], env)
    assert run.returncode == 1
    assert f"cannot start: cannot reach Kinesis at {nobody}" in run.stderr
    assert "Traceback" not in run.stderr


def test_the_consumer_waits_for_a_stream_created_after_it_started(consumer_env, kinesis_client):
    """As in `docker compose up`: the consumer starts beside LocalStack's init hook."""
    later = f"later-{uuid.uuid4().hex[:8]}"
    env = {**consumer_env, "KINESIS_STREAM_NAME": later}
    settings = ConsumerSettings(**{name.lower(): value for name, value in env.items()})
    with ThreadPoolExecutor(1) as background:
        waiting = background.submit(check_stream, settings)
        try:
            kinesis_client.create_stream(StreamName=later, ShardCount=1)
            # Raises what check_stream raised: a StartupError if it did not wait.
            waiting.result(timeout=settings.consumer_stream_wait_seconds)
        finally:
            kinesis_client.delete_stream(StreamName=later)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CONSUMER_TRIGGER", "sometimes"),
        ("CONSUMER_TRIGGER_INTERVAL", "soon"),
        ("CONSUMER_STARTING_POSITION", "MIDDLE"),
        ("CONSUMER_MAX_RECORDS_PER_TRIGGER", "0"),
        ("AWS_REGION", "mars"),
    ],
)
def test_an_invalid_setting_names_the_variable(consumer_env, variable, value):
    run = _consumer([], {**consumer_env, variable: value})
    assert run.returncode == 2
    assert f"configuration error: {variable}=" in run.stderr
    assert "Traceback" not in run.stderr


def _put_events(kinesis_client, stream: str, events: list[dict[str, object]], **entry) -> None:
    entries = [{"Data": json.dumps(e).encode(), "PartitionKey": "k", **entry} for e in events]
    answer = kinesis_client.put_records(StreamName=stream, Records=entries)
    assert answer["FailedRecordCount"] == 0


def test_a_resend_is_dropped_even_when_the_sink_cannot_be_read_back(consumer_env, kinesis_client):
    """Deduplication lives in Spark's state, not in a read of the sink that may fail."""
    stream = consumer_env["KINESIS_STREAM_NAME"]
    first = [_event("message1", 1) for _ in range(5)]
    _put_events(kinesis_client, stream, first)
    assert _drain(consumer_env)["events"] == 5
    # Whatever makes the written events unreadable (here: they are gone) must not
    # switch deduplication off.
    shutil.rmtree(Path(consumer_env["CONSUMER_OUTPUT_PATH"]) / "events")

    later = [_event("message2", 1) for _ in range(3)]
    _put_events(kinesis_client, stream, first[:2] + later)
    report = _drain(consumer_env)

    assert report["event_ids"] == sorted(event["event_id"] for event in later)


def test_a_reset_checkpoint_never_overwrites_earlier_output(consumer_env, kinesis_client):
    stream = consumer_env["KINESIS_STREAM_NAME"]
    first = [_event("message1", 1) for _ in range(4)]
    _put_events(kinesis_client, stream, first)
    before = _drain(consumer_env)
    shutil.rmtree(consumer_env["CONSUMER_CHECKPOINT_PATH"])

    _put_events(kinesis_client, stream, [_event("message2", 1)])
    run = _consumer([], consumer_env)

    assert run.returncode == 1
    assert "CONSUMER_OUTPUT_PATH=" in run.stderr
    assert "is new or was reset" in run.stderr
    assert "Traceback" not in run.stderr
    after = _consumer(["report", "--rows"], consumer_env)
    assert json.loads(after.stdout) == before


def test_a_shard_held_back_longer_than_the_dedup_window_loses_nothing(consumer_env, kinesis_client):
    """No watermark on event or arrival time: old records of a lagging shard are not late."""
    stream = consumer_env["KINESIS_STREAM_NAME"]
    lagging = [_event("message1", 1) for _ in range(6)]
    _put_events(kinesis_client, stream, lagging, ExplicitHashKey="0")
    arrived = time.time()
    wait_until(lambda: time.time() > arrived + 3, "3 s, three dedup windows, to pass")
    recent = [_event("message2", 1)]
    _put_events(kinesis_client, stream, recent, ExplicitHashKey=str(2**127 + 1))

    # 2 records a batch over 2 shards: the recent shard is done in batch 0, the lagging
    # one takes 3 more batches, all long after its records' arrival + the window.
    report = _drain(
        {
            **consumer_env,
            "CONSUMER_DEDUP_WINDOW": "1 second",
            "CONSUMER_MAX_RECORDS_PER_TRIGGER": "2",
        }
    )

    assert report["event_ids"] == sorted(event["event_id"] for event in lagging + recent)
    assert len({row["batch_id"] for row in report["rows"]}) >= 4


def test_sigterm_says_whether_the_batch_in_flight_was_finished_or_abandoned(
    consumer_env, kinesis_client
):
    stream = consumer_env["KINESIS_STREAM_NAME"]
    env = {**consumer_env, "CONSUMER_TRIGGER": "processingTime", "CONSUMER_CONSOLE": "true"}
    log_path = Path(consumer_env["CONSUMER_OUTPUT_PATH"]).parent / "consumer.log"
    with log_path.open("w") as log:
        consumer = subprocess.Popen(
            [sys.executable, "-m", "consumer"],
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        _put_events(kinesis_client, stream, [_event("message1", 1) for _ in range(10)])
        wait_until(lambda: "batch 0:" in log_path.read_text(), "the first batch", RUN_TIMEOUT_S)
        # More records keep batches coming while the signal arrives.
        _put_events(kinesis_client, stream, [_event("message1", 1) for _ in range(10)])
        consumer.send_signal(signal.SIGTERM)
        assert consumer.wait(timeout=RUN_TIMEOUT_S) == 0
    finally:
        consumer.kill()
    log_text = log_path.read_text()
    report = json.loads(_consumer(["report", "--rows"], consumer_env).stdout)
    written = max(row["batch_id"] for row in report["rows"])

    finished = re.search(r"finished batch (\d+), the last one written", log_text)
    abandoned = re.search(r"abandoned batch (\d+)", log_text)
    assert finished or abandoned, log_text[-3000:]
    if finished:
        assert int(finished.group(1)) == written
    if abandoned:
        assert int(abandoned.group(1)) == written + 1
    assert "after the current batch" not in log_text


def test_a_batch_runs_one_spark_job_with_the_console_on(tmp_path, capsys):
    """The whole batch (parse, deduplicate, write both tables, counts, console) is one job."""
    settings = ConsumerSettings(
        consumer_output_path=str(tmp_path / "output"),
        consumer_checkpoint_path=str(tmp_path / "checkpoints"),
        consumer_console=True,
        spark_master="local[2]",
    )
    spark = build_session(settings)
    # Kinesis-shaped rows from Spark's rate source: the sink's side of the query alone.
    raw = (
        spark.readStream.format("rate")
        .option("rowsPerSecond", 50)
        .load()
        .select(
            F.to_json(
                F.struct(
                    F.col("value").cast("string").alias("event_id"),
                    F.lit("message1").alias("message_type"),
                    F.lit(1).alias("count"),
                )
            )
            .cast("binary")
            .alias("data"),
            F.lit("key").alias("partitionKey"),
            F.lit("shardId-000000000000").alias("shardId"),
            F.col("value").cast("string").alias("sequenceNumber"),
            F.lit(0).cast("long").alias("subSequenceNumber"),
            F.col("timestamp").alias("approximateArrivalTimestamp"),
        )
    )
    rows = first_copies(sink_rows(classify(raw, 1000)), settings.dedup_window_seconds)
    query = (
        rows.writeStream.foreachBatch(BatchSink(settings))
        .option("checkpointLocation", settings.query_checkpoint_path)
        .trigger(processingTime="200 milliseconds")
        .start()
    )

    def batches() -> list[dict[str, Any]]:
        return [p for p in query.recentProgress if "addBatch" in p["durationMs"]]

    try:
        wait_until(lambda: len(batches()) >= 4, "four batches", RUN_TIMEOUT_S)
    finally:
        query.stop()
    # The session stays: it may be the one the source's tests share in this process.
    jobs = spark.sparkContext.statusTracker().getJobIdsForGroup(str(query.runId))

    # One job a batch; one more if the stop cut a batch short after its job started.
    assert len(jobs) <= len(batches()) + 1
    assert "Running totals:" in capsys.readouterr().out
