"""The producer as users and the container run it, `python -m producer`, against real LocalStack."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest
from producer.events import SAMPLE_MESSAGES, EventFactory
from producer_testkit import DEADLINE_S, producer_command, read_stream, run_producer

from testkit.clients import localstack_kinesis
from testkit.streams import wait_active
from testkit.waiting import wait_until

pytestmark = pytest.mark.unit

SUMMARY = re.compile(r"sent=(\d+) failed=(\d+) unsent=(\d+) refused=(\d+) elapsed=\S+s rate=\S+/s")


def summary(stderr: str) -> tuple[int, int, int, int]:
    found = SUMMARY.search(stderr)
    assert found, stderr
    sent, failed, unsent, refused = map(int, found.groups())
    return sent, failed, unsent, refused


@pytest.fixture
def producer_env(kinesis_endpoint: str, stream_factory, tmp_path: Path) -> dict[str, str]:
    return {
        "KINESIS_ENDPOINT_URL": kinesis_endpoint,
        "KINESIS_STREAM_NAME": stream_factory(2),
        "AWS_REGION": "us-east-1",
        "PRODUCER_RATE": "0",
        "PRODUCER_UNSENT_PATH": str(tmp_path / "unsent.jsonl"),
    }


@pytest.fixture
def throttled_env(
    throttled_kinesis_endpoint: str, tmp_path: Path, request, localstack_kinesis_client
) -> dict[str, str]:
    """A stream on the LocalStack that refuses 30% of PutRecords calls."""
    stream = f"throttled-{request.node.name[-20:].strip('_[]')}".replace("[", "-").replace("]", "")
    client = localstack_kinesis_client(throttled_kinesis_endpoint)
    client.create_stream(StreamName=stream, ShardCount=2)
    wait_active(client, stream)
    return {
        "KINESIS_ENDPOINT_URL": throttled_kinesis_endpoint,
        "KINESIS_STREAM_NAME": stream,
        "PRODUCER_RATE": "0",
        "PRODUCER_BATCH_SIZE": "20",
        "PRODUCER_UNSENT_PATH": str(tmp_path / "unsent.jsonl"),
    }


def stream_of(env, client=None):
    client = client or localstack_kinesis(env["KINESIS_ENDPOINT_URL"])
    return read_stream(client, env["KINESIS_STREAM_NAME"])


def test_seeded_run_sends_exactly_the_events_the_seed_regenerates(producer_env):
    run = run_producer({**producer_env, "PRODUCER_COUNT": "1200", "PRODUCER_SEED": "42"})
    assert run.returncode == 0, run.stderr
    assert "sent=1200 failed=0 unsent=0" in run.stderr

    records = stream_of(producer_env)
    expected = sorted(event["event_id"] for event in EventFactory(42).random_events(1200))
    assert sorted(json.loads(r["data"])["event_id"] for r in records) == expected
    assert all(r["key"] == json.loads(r["data"])["event_id"] for r in records)


def test_rate_paces_the_run(producer_env):
    run = run_producer({**producer_env, "PRODUCER_COUNT": "20", "PRODUCER_RATE": "20"})
    assert run.returncode == 0, run.stderr
    elapsed = float(re.search(r"elapsed=([\d.]+)s", run.stderr).group(1))
    # 20 records at 20/s: the last one is due after 0.95 s.
    assert 0.9 <= elapsed < 5
    assert len(stream_of(producer_env)) == 20


def test_samples_sends_the_tutorials_five_messages(producer_env):
    run = run_producer(producer_env, "samples")
    assert run.returncode == 0, run.stderr
    events = [json.loads(r["data"]) for r in stream_of(producer_env)]
    assert sorted((e["message_type"], e["count"]) for e in events) == sorted(
        (m["message_type"], m["count"]) for m in SAMPLE_MESSAGES
    )
    assert all(len(e["event_id"]) == 32 and e["event_time"].endswith("Z") for e in events)


def test_send_refuses_a_file_with_a_bad_line_and_names_it(producer_env, tmp_path):
    lines = tmp_path / "lines.jsonl"
    lines.write_bytes(b'{"message_type": "message1", "count": 2}\n{not json\n')
    run = run_producer(producer_env, "send", str(lines))
    assert run.returncode == 2
    assert f"{lines}:2 is not valid JSON" in run.stderr and "--raw" in run.stderr
    assert stream_of(producer_env) == []


def test_send_sends_json_lines_as_they_are_keyed_by_event_id(producer_env, tmp_path):
    lines = [b'{"event_id": "e1",   "count": 2}', b'{"message_type": "message3"}']
    (tmp_path / "lines.jsonl").write_bytes(b"\n".join(lines) + b"\n\n")
    run = run_producer(producer_env, "send", str(tmp_path / "lines.jsonl"))
    assert run.returncode == 0, run.stderr
    records = stream_of(producer_env)
    assert sorted(r["data"] for r in records) == sorted(lines)
    assert {r["key"] for r in records if r["data"] == lines[0]} == {"e1"}


def test_send_raw_sends_bytes_unchanged(producer_env, tmp_path):
    lines = [
        b'{"message_type": "message1", "count": 2}',
        b"{not json",
        b"",
        b"\xff\xfe latin",
        b"  ",
    ]
    (tmp_path / "raw.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    run = run_producer(producer_env, "send", "--raw", str(tmp_path / "raw.jsonl"))
    assert run.returncode == 0, run.stderr
    assert sorted(r["data"] for r in stream_of(producer_env)) == sorted(lines)


def test_an_oversized_record_is_kept_in_the_unsent_file_and_exit_3(producer_env, tmp_path):
    big = b"x" * (1024 * 1024 + 1)
    (tmp_path / "big.jsonl").write_bytes(big + b"\nsmall\n")
    run = run_producer(producer_env, "send", "--raw", str(tmp_path / "big.jsonl"))
    assert run.returncode == 3, run.stderr
    assert summary(run.stderr)[:3] == (1, 1, 1)
    assert f"1 are in {producer_env['PRODUCER_UNSENT_PATH']}" in run.stderr
    assert Path(producer_env["PRODUCER_UNSENT_PATH"]).read_bytes() == big + b"\n"
    assert [r["data"] for r in stream_of(producer_env)] == [b"small"]


def test_sigterm_flushes_what_it_produced_and_exits_0(producer_env):
    env = {**os.environ, **producer_env, "PRODUCER_RATE": "300", "PRODUCER_SEED": "9"}
    process = subprocess.Popen(producer_command(), env=env, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: stream_of(producer_env), "the first batch", deadline_s=DEADLINE_S)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=DEADLINE_S)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    sent, failed, unsent, _ = summary(stderr)
    ids = [json.loads(r["data"])["event_id"] for r in stream_of(producer_env)]
    assert (failed, unsent) == (0, 0)
    assert len(ids) == len(set(ids)) == sent > 0
    # The stream holds exactly the first `sent` events of the seeded sequence.
    assert set(ids) == {e["event_id"] for e in EventFactory(9).random_events(sent)}


def test_a_missing_stream_is_one_clear_line_and_exit_2(producer_env):
    run = run_producer({**producer_env, "KINESIS_STREAM_NAME": "no-such-stream"})
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1, run.stderr
    assert "stream 'no-such-stream' does not exist in region 'us-east-1'" in run.stderr
    assert "PRODUCER_CREATE_STREAM=true" in run.stderr


def test_an_unreachable_endpoint_is_one_clear_line(producer_env):
    run = run_producer({**producer_env, "KINESIS_ENDPOINT_URL": "http://127.0.0.1:9"})
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1, run.stderr
    assert "cannot reach Kinesis at http://127.0.0.1:9" in run.stderr


def test_the_stream_is_created_only_when_asked(producer_env, kinesis_client):
    env = {**producer_env, "KINESIS_STREAM_NAME": "created-on-request", "PRODUCER_COUNT": "3"}
    run = run_producer({**env, "KINESIS_SHARD_COUNT": "3"}, "--create-stream")
    try:
        assert run.returncode == 0, run.stderr
        assert len(kinesis_client.list_shards(StreamName="created-on-request")["Shards"]) == 3
        assert len(read_stream(kinesis_client, "created-on-request")) == 3
    finally:
        kinesis_client.delete_stream(StreamName="created-on-request")


@pytest.mark.parametrize(
    ("env", "args", "named"),
    [
        ({"PRODUCER_BATCH_SIZE": "900"}, [], "PRODUCER_BATCH_SIZE='900'"),
        ({"AWS_REGION": "mars"}, [], "AWS_REGION='mars'"),
        ({}, ["--count", "many"], "PRODUCER_COUNT (--count)='many'"),
    ],
)
def test_an_invalid_setting_is_one_line_naming_it_and_exit_2(producer_env, env, args, named):
    run = run_producer({**producer_env, **env}, *args)
    assert run.returncode == 2
    assert run.stderr == run.stderr.splitlines()[0] + "\n"
    assert run.stderr.startswith(f"configuration error: {named} is invalid")


def test_a_throttled_run_resends_until_everything_is_in(throttled_env):
    run = run_producer({**throttled_env, "PRODUCER_COUNT": "600", "PRODUCER_SEED": "4"})
    assert run.returncode == 0, run.stderr
    sent, failed, unsent, refused = summary(run.stderr)
    assert (sent, failed, unsent) == (600, 0, 0) and refused > 0
    ids = sorted(json.loads(r["data"])["event_id"] for r in stream_of(throttled_env))
    assert ids == sorted(e["event_id"] for e in EventFactory(4).random_events(600))


def test_past_the_retry_deadline_the_rest_goes_to_the_unsent_file(throttled_env, tmp_path):
    lines = [json.dumps({"event_id": f"id-{n}", "count": 1}).encode() for n in range(1000)]
    (tmp_path / "in.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    env = {**throttled_env, "PRODUCER_MAX_RETRY_SECONDS": "0.001"}
    run = run_producer(env, "send", str(tmp_path / "in.jsonl"))

    assert run.returncode == 3, run.stderr
    sent, failed, unsent, _ = summary(run.stderr)
    kept = Path(env["PRODUCER_UNSENT_PATH"]).read_bytes().splitlines()
    in_stream = [r["data"] for r in stream_of(throttled_env)]
    assert (len(in_stream), len(kept)) == (sent, unsent) and failed == unsent > 0
    assert f"{unsent} are in {env['PRODUCER_UNSENT_PATH']}" in run.stderr
    # Every line is in the stream or in the unsent file, exactly once.
    assert sorted(in_stream + kept) == sorted(lines)

    # Replaying the unsent file (moved aside) completes the stream.
    replay = tmp_path / "replay.jsonl"
    Path(env["PRODUCER_UNSENT_PATH"]).rename(replay)
    again = run_producer({**throttled_env, "PRODUCER_MAX_RETRY_SECONDS": "60"}, "send", str(replay))
    assert again.returncode == 0, again.stderr
    assert sorted(r["data"] for r in stream_of(throttled_env)) == sorted(lines)


def test_from_the_host_localstack_client_finds_the_stack(
    kinesis_endpoint, stream_factory, tmp_path
):
    """`--localstack`: no endpoint and no keys to set, only LOCALSTACK_HOST off the default port."""
    stream = stream_factory(1)
    env = {
        "LOCALSTACK_HOST": kinesis_endpoint.removeprefix("http://"),
        "KINESIS_ENDPOINT_URL": "",  # empty means unset: the endpoint comes from localstack-client
        "KINESIS_STREAM_NAME": stream,
        "PRODUCER_UNSENT_PATH": str(tmp_path / "unsent.jsonl"),
    }
    run = run_producer(env, "--localstack", "samples")
    assert run.returncode == 0, run.stderr
    assert len(stream_of({**env, "KINESIS_ENDPOINT_URL": kinesis_endpoint})) == 5
