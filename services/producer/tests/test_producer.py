"""The producer as users run it, `python -m producer`, against a real LocalStack Kinesis."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from producer.events import SAMPLE_MESSAGES, EventFactory

pytestmark = pytest.mark.unit

DEADLINE_S = 60.0


def read_stream(kinesis_client, stream: str) -> list[dict[str, Any]]:
    """Every record in the stream, each as {'data', 'key'}, shard by shard."""
    records = []
    for shard in kinesis_client.list_shards(StreamName=stream)["Shards"]:
        iterator = kinesis_client.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            answer = kinesis_client.get_records(ShardIterator=iterator, Limit=10_000)
            records += [{"data": r["Data"], "key": r["PartitionKey"]} for r in answer["Records"]]
            if not answer["Records"] and answer.get("MillisBehindLatest", 0) == 0:
                break
            iterator = answer.get("NextShardIterator")
    return records


@pytest.fixture
def producer_env(kinesis_endpoint: str, stream_factory, tmp_path: Path) -> dict[str, str]:
    return {
        "KINESIS_ENDPOINT_URL": kinesis_endpoint,
        "KINESIS_STREAM_NAME": stream_factory(2),
        "AWS_REGION": "us-east-1",
        "PRODUCER_RATE": "0",
        "PRODUCER_UNSENT_PATH": str(tmp_path / "unsent.jsonl"),
    }


def producer(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "producer", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_seeded_events_all_arrive_and_can_be_regenerated(producer_env, kinesis_client):
    run = producer({**producer_env, "PRODUCER_COUNT": "1200", "PRODUCER_SEED": "42"})
    assert run.returncode == 0, run.stderr
    assert "sent=1200 unsent=0" in run.stderr

    records = read_stream(kinesis_client, producer_env["KINESIS_STREAM_NAME"])
    events = [json.loads(record["data"]) for record in records]
    expected = [event["event_id"] for event in EventFactory(42).random_events(1200)]
    assert sorted(event["event_id"] for event in events) == sorted(expected)
    assert all(record["key"] == json.loads(record["data"])["event_id"] for record in records)
    assert {event["message_type"] for event in events} <= {f"message{n}" for n in range(1, 6)}


def test_samples_sends_the_tutorials_five_messages(producer_env, kinesis_client):
    run = producer(producer_env, "samples")
    assert run.returncode == 0, run.stderr
    events = [
        json.loads(r["data"])
        for r in read_stream(kinesis_client, producer_env["KINESIS_STREAM_NAME"])
    ]
    sent = sorted((e["message_type"], e["count"]) for e in events)
    assert sent == sorted((m["message_type"], m["count"]) for m in SAMPLE_MESSAGES)
    assert all(len(e["event_id"]) == 32 and e["event_time"].endswith("Z") for e in events)


def test_send_raw_keeps_bytes_and_send_refuses_bad_json(producer_env, kinesis_client, tmp_path):
    lines = tmp_path / "lines.jsonl"
    lines.write_bytes(b'{"message_type": "message1", "count": 2}\n{not json\n')
    refused = producer(producer_env, "send", str(lines))
    assert refused.returncode == 2
    assert f"{lines}:2 is not JSON" in refused.stderr

    sent = producer(producer_env, "send", "--raw", str(lines))
    assert sent.returncode == 0, sent.stderr
    data = sorted(
        r["data"] for r in read_stream(kinesis_client, producer_env["KINESIS_STREAM_NAME"])
    )
    assert data == sorted([b'{"message_type": "message1", "count": 2}', b"{not json"])


def test_sigterm_flushes_everything_it_produced(producer_env, kinesis_client):
    env = {**os.environ, **producer_env, "PRODUCER_RATE": "200", "PRODUCER_BATCH_SIZE": "500"}
    process = subprocess.Popen(
        [sys.executable, "-m", "producer"], env=env, stderr=subprocess.PIPE, text=True
    )
    stream = producer_env["KINESIS_STREAM_NAME"]
    deadline = time.monotonic() + DEADLINE_S
    # Wait until the first batch has gone out, then stop it mid-batch.
    while not read_stream(kinesis_client, stream):
        assert time.monotonic() < deadline, "the producer sent nothing"
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=DEADLINE_S)
    assert process.returncode == 0, stderr
    sent = int(re.search(r" sent=(\d+) unsent=0", stderr).group(1))
    assert len(read_stream(kinesis_client, stream)) == sent > 0


def test_a_missing_stream_is_one_clear_line_and_exit_2(producer_env):
    run = producer({**producer_env, "KINESIS_STREAM_NAME": "no-such-stream", "PRODUCER_COUNT": "1"})
    assert run.returncode == 2
    assert "stream 'no-such-stream' does not exist in region 'us-east-1'" in run.stderr
    assert "Traceback" not in run.stderr


def test_create_stream_is_explicit(producer_env, kinesis_client):
    env = {**producer_env, "KINESIS_STREAM_NAME": "created-on-request", "PRODUCER_COUNT": "3"}
    run = producer({**env, "PRODUCER_CREATE_STREAM": "true", "KINESIS_SHARD_COUNT": "3"})
    assert run.returncode == 0, run.stderr
    assert len(kinesis_client.list_shards(StreamName="created-on-request")["Shards"]) == 3
    kinesis_client.delete_stream(StreamName="created-on-request")


def test_an_oversized_record_is_kept_in_the_unsent_file_not_dropped(producer_env, tmp_path):
    lines = tmp_path / "big.jsonl"
    lines.write_bytes(b"x" * (1024 * 1024 + 1) + b"\nsmall\n")
    run = producer(producer_env, "send", "--raw", str(lines))
    assert run.returncode == 0, run.stderr
    assert "sent=1 unsent=1" in run.stderr
    assert (
        Path(producer_env["PRODUCER_UNSENT_PATH"]).read_bytes() == b"x" * (1024 * 1024 + 1) + b"\n"
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PRODUCER_BATCH_SIZE", "900"),
        ("PRODUCER_RATE", "-1"),
        ("AWS_REGION", "mars"),
        ("PRODUCER_COUNT", "many"),
    ],
)
def test_an_invalid_setting_names_the_variable(producer_env, variable, value):
    run = producer({**producer_env, variable: value})
    assert run.returncode == 2
    assert f"configuration error: {variable}=" in run.stderr
    assert "Traceback" not in run.stderr
