"""The fault suite: each case sends a known set of records and checks the sink holds it exactly.

Cases share the session's stack, which runs with LocalStack refusing a share of
PutRecords entries throughout (KINESIS_ERROR_PROBABILITY); after each case the
sink must equal every event sent so far, no loss and no duplicates, and no event
may sit in an earlier batch than one before it under its partition key. Each case
adds a row (sent, in the sink, duplicates, lost, time to recover, order) to the
table printed at the end of the run.
"""

from __future__ import annotations

import subprocess
import time
from typing import Any

import pytest

pytestmark = pytest.mark.integration


def _producer_run(stack, seed: int, count: int, *, detach: bool, rate: int = 100) -> Any:
    settings = {
        "PRODUCER_SEED": str(seed),
        "PRODUCER_COUNT": str(count),
        "PRODUCER_RATE": str(rate),
    }
    options = [item for name, value in settings.items() for item in ("-e", f"{name}={value}")]
    return stack.run("run", "--rm", *(["-d"] if detach else []), "--no-deps", *options, "producer")


def test_consumer_killed_mid_stream_resumes_without_loss_or_duplicates(stack, record_fault):
    sent, started = stack.kill_consumer_mid_stream("message1", "message2")
    record_fault("consumer SIGKILL mid-stream", sent, started)


def test_producer_killed_and_rerun_from_its_seed_creates_no_duplicates(stack, record_fault):
    stack.wait_for_sink()
    stack.expect_seeded(seed=99, count=300)
    # 30 s of sending at 10/s, killed once its first events are in the sink.
    container = _producer_run(stack, seed=99, count=300, detach=True, rate=10).stdout.strip()
    stack.wait_until(lambda: stack.report()["events"] > len(stack.expected) - 300, "a first batch")
    # On a slow machine it may have finished already; the rerun below still resends
    # every event, which is the case under test.
    subprocess.run(
        ["docker", "kill", "--signal", "KILL", container], capture_output=True, check=False
    )
    started = time.monotonic()
    # The rerun sends all 300 again: the same ids, new event times.
    _producer_run(stack, seed=99, count=300, detach=False)
    record_fault("producer SIGKILL, rerun resends all", 300, started)


def test_injected_throttling_loses_nothing(stack, record_fault):
    stack.wait_for_sink()
    before = len(stack.expected)
    stack.expect_seeded(seed=77, count=500)
    started = time.monotonic()
    run = _producer_run(stack, seed=77, count=500, detach=False)
    assert "unsent=0" in run.stderr + run.stdout
    # The producer keys each event by its id; these share seven keys, and each round's
    # refused entries are resent out of order, across several batches.
    for _ in range(3):
        stack.put_events(30, "message3")
        stack.wait_for_sink()
    record_fault(
        "PutRecords throttled (KINESIS_ERROR_PROBABILITY=0.2)",
        len(stack.expected) - before,
        started,
    )


def _open_shards(client) -> list[dict[str, Any]]:
    shards = client.list_shards(StreamName="events")["Shards"]
    return sorted(
        (s for s in shards if "EndingSequenceNumber" not in s["SequenceNumberRange"]),
        key=lambda s: int(s["HashKeyRange"]["StartingHashKey"]),
    )


def test_split_and_merge_while_data_flows(stack, record_fault):
    stack.wait_for_sink()
    client = stack.kinesis()
    before = len(stack.expected)
    stack.put_events(100, "message3")
    first = _open_shards(client)[0]
    low, high = (int(first["HashKeyRange"][key]) for key in ("StartingHashKey", "EndingHashKey"))
    client.split_shard(
        StreamName="events",
        ShardToSplit=first["ShardId"],
        NewStartingHashKey=str((low + high) // 2),
    )
    stack.wait_active()
    stack.put_events(100, "message4")
    left, right = _open_shards(client)[:2]
    client.merge_shards(
        StreamName="events", ShardToMerge=left["ShardId"], AdjacentShardToMerge=right["ShardId"]
    )
    stack.wait_active()
    started = time.monotonic()
    stack.put_events(100, "message5")
    record_fault("split then merge while data flows", len(stack.expected) - before, started)


def test_malformed_records_among_good_ones(stack, record_fault):
    stack.wait_for_sink()
    before = len(stack.expected)
    started = time.monotonic()
    for _ in range(5):
        stack.put_events(8, "message6")
        stack.put([b"{oops", b'{"message_type": 7, "count": "x"}'])
        stack.expected_dead_letters += 2
    record_fault("10 malformed among 40 good", len(stack.expected) - before + 10, started)


def test_localstack_restart_under_a_running_consumer(stack, record_fault):
    stack.wait_for_sink()
    before = len(stack.expected)
    stack.put_events(100, "message1")
    stack.wait_for_sink()
    # Right away, long before kinesis-mock's next periodic save (KINESIS_MOCK_PERSIST_INTERVAL):
    # it saves every record when LocalStack stops (scripts/localstack/shutdown.d).
    started = time.monotonic()
    # The consumer may stop while LocalStack is away; it must say why, and resume when started.
    stack.restart_localstack_then_put(100, "message2")
    record_fault("LocalStack restarted under the consumer", len(stack.expected) - before, started)


@pytest.mark.parametrize(
    ("service", "setting", "message"),
    [
        ("consumer", "KINESIS_STREAM_NAME=missing", "Kinesis stream 'missing' not found"),
        ("consumer", "AWS_REGION=eu-west-1", "not found in region 'eu-west-1'"),
        ("consumer", "AWS_ACCESS_KEY_ID=", "credentials"),
        ("producer", "KINESIS_STREAM_NAME=missing", "stream 'missing' does not exist"),
        ("producer", "AWS_REGION=eu-west-1", "in region 'eu-west-1'"),
        ("producer", "AWS_ACCESS_KEY_ID=", "credentials"),
    ],
)
def test_misconfiguration_is_one_clear_line_and_a_non_zero_exit(stack, service, setting, message):
    # Without keys the credential chain would end at EC2's metadata service: not from a test.
    no_keys = ["-e", "AWS_SECRET_ACCESS_KEY=", "-e", "AWS_EC2_METADATA_DISABLED=true"]
    extra = no_keys if setting.startswith("AWS_ACCESS_KEY_ID") else []
    if service == "consumer":
        # A stream not found may yet appear: the consumer waits for it (300 s by default)
        # before it stops. The test needs the stop, not the wait.
        extra += ["-e", "CONSUMER_STREAM_WAIT_SECONDS=10"]
    run = stack.run("run", "--rm", "--no-deps", "-e", setting, *extra, service, check=False)
    assert run.returncode != 0
    assert message in run.stdout + run.stderr
    assert "Traceback" not in run.stdout + run.stderr


def test_services_never_restart_in_a_loop(stack):
    config = stack.compose.get_config()
    services = ("producer", "consumer", "shard-renewer")
    assert {config["services"][name].get("restart") for name in services} == {"no"}
