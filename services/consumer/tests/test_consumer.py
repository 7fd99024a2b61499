"""The consumer as users run it: `python -m consumer`, against a real LocalStack Kinesis."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from consumer.app import check_stream
from consumer.settings import ConsumerSettings

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
