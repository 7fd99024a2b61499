"""The AWS-faithful proxy: each behaviour, as a boto3 client sees it."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError
from kinesis_proxy import (
    Behaviours,
    ByteBucket,
    KinesisProxy,
    SlidingWindow,
    parse_settings,
    running_proxy,
)

from testkit.clients import localstack_kinesis
from testkit.waiting import wait_until

pytestmark = pytest.mark.unit

SHARD_0 = "shardId-000000000000"
DEADLINE_S = 30.0
# Far more calls than any limit allows in the seconds they take.
MANY_CALLS = 400


def client_of(proxy: KinesisProxy) -> Any:
    """A client that never retries, so the proxy's every answer reaches the test."""
    return localstack_kinesis(proxy.url, config=Config(retries={"total_max_attempts": 1}))


def error_of(call: Callable[[], Any]) -> str:
    with pytest.raises(ClientError) as caught:
        call()
    return str(caught.value.response["Error"]["Code"])


def first_refusal(call: Callable[[], Any]) -> tuple[int, str]:
    """How many calls succeeded before the first refusal, and its error code."""
    for succeeded in range(MANY_CALLS):
        try:
            call()
        except ClientError as error:
            return succeeded, str(error.response["Error"]["Code"])
    raise AssertionError(f"{MANY_CALLS} calls, none refused")


def iterator(client: Any, stream: str) -> str:
    return str(
        client.get_shard_iterator(
            StreamName=stream, ShardId=SHARD_0, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
    )


def put(client: Any, stream: str, count: int, size: int = 10) -> None:
    for n in range(count):
        client.put_record(StreamName=stream, Data=bytes([n % 256]) * size, PartitionKey="k")


def poll(condition: Callable[[], Any], what: str) -> Any:
    return wait_until(condition, what, DEADLINE_S, poll_s=0.05)


def test_with_every_behaviour_off_it_is_a_pass_through(kinesis_proxy, stream_factory):
    stream = stream_factory(1)
    client = client_of(kinesis_proxy)
    put(client, stream, 3)
    answer = client.get_records(ShardIterator=iterator(client, stream))
    assert [record["Data"] for record in answer["Records"]] == [b"\0" * 10, b"\1" * 10, b"\2" * 10]
    assert client.get_records(ShardIterator=answer["NextShardIterator"])["Records"] == []


def test_reads_beyond_five_per_second_per_shard_are_throttled(kinesis_proxy, stream_factory):
    stream = stream_factory(1)
    client = client_of(kinesis_proxy)
    shard_iterator = iterator(client, stream)
    kinesis_proxy.behaviours = Behaviours.aws()
    succeeded, code = first_refusal(lambda: client.get_records(ShardIterator=shard_iterator))
    assert code == "ProvisionedThroughputExceededException"
    assert succeeded >= 5
    assert kinesis_proxy.events["throttled_reads"] == 1


def test_reading_more_than_the_byte_rate_shuts_the_shard_for_a_while(kinesis_proxy, stream_factory):
    stream = stream_factory(1)
    client = client_of(kinesis_proxy)
    put(client, stream, 3, size=100 * 1024)
    # A lower rate than AWS's, so the debt outlasts a loaded machine's next call.
    kinesis_proxy.behaviours = Behaviours.aws(read_bytes_per_s=10 * 1024)
    answer = client.get_records(ShardIterator=iterator(client, stream))
    assert len(answer["Records"]) == 3  # 300 KB: the shard owes 290 KB, 29 s of its rate
    code = error_of(lambda: client.get_records(ShardIterator=answer["NextShardIterator"]))
    assert code == "ProvisionedThroughputExceededException"


def test_shard_iterators_beyond_five_per_second_per_shard_are_throttled(
    kinesis_proxy, stream_factory
):
    stream = stream_factory(1)
    client = client_of(kinesis_proxy)
    kinesis_proxy.behaviours = Behaviours.aws()
    succeeded, code = first_refusal(lambda: iterator(client, stream))
    assert (code, kinesis_proxy.events["throttled_iterators"]) == (
        "ProvisionedThroughputExceededException",
        1,
    )
    assert succeeded >= 5


def test_writes_beyond_a_megabyte_per_second_per_shard_fail_per_entry(
    kinesis_proxy, stream_factory
):
    stream = stream_factory(1)
    client = client_of(kinesis_proxy)
    kinesis_proxy.behaviours = Behaviours.aws()
    entries = [{"Data": b"x" * 600 * 1024, "PartitionKey": "k"} for _ in range(2)]
    answer = client.put_records(StreamName=stream, Records=entries)
    assert answer["FailedRecordCount"] == 1
    assert "SequenceNumber" in answer["Records"][0]
    assert answer["Records"][1]["ErrorCode"] == "ProvisionedThroughputExceededException"
    records = client.get_records(ShardIterator=iterator(client, stream))["Records"]
    assert len(records) == 1  # only the admitted entry reached the stream


def test_a_single_write_beyond_the_rate_is_refused(kinesis_proxy, stream_factory):
    stream = stream_factory(1)
    client = client_of(kinesis_proxy)
    kinesis_proxy.behaviours = Behaviours.aws(write_bytes_per_s=1024)
    code = error_of(
        lambda: client.put_record(StreamName=stream, Data=b"y" * 2048, PartitionKey="k")
    )
    assert code == "ProvisionedThroughputExceededException"


def test_writes_to_another_shard_are_not_held_back(kinesis_proxy, stream_factory):
    stream = stream_factory(2)
    client = client_of(kinesis_proxy)
    kinesis_proxy.behaviours = Behaviours.aws()
    shards = client.list_shards(StreamName=stream)["Shards"]
    explicit = [shard["HashKeyRange"]["StartingHashKey"] for shard in shards]
    entries = [
        {"Data": b"x" * 600 * 1024, "PartitionKey": "k", "ExplicitHashKey": key} for key in explicit
    ]
    answer = client.put_records(StreamName=stream, Records=entries)
    assert answer["FailedRecordCount"] == 0
    assert {record["ShardId"] for record in answer["Records"]} == {
        shard["ShardId"] for shard in shards
    }


def test_control_plane_calls_beyond_their_rate_are_limited(kinesis_proxy, stream_factory):
    stream = stream_factory(1)
    client = client_of(kinesis_proxy)
    # Lower rates than AWS's (20/s, 100/s), which one client calling in turn may not reach.
    kinesis_proxy.behaviours = Behaviours.aws(describe_stream_summary_per_s=1, list_shards_per_s=1)
    described, code = first_refusal(lambda: client.describe_stream_summary(StreamName=stream))
    assert (code, described >= 1) == ("LimitExceededException", True)
    listed, code = first_refusal(lambda: client.list_shards(StreamName=stream))
    assert (code, listed >= 1) == ("LimitExceededException", True)


def test_empty_pages_say_records_wait_and_lose_none(kinesis_proxy, stream_factory):
    stream = stream_factory(1)
    client = client_of(kinesis_proxy)
    put(client, stream, 3)
    kinesis_proxy.behaviours = Behaviours(empty_pages_first=2)
    pages = []
    shard_iterator = iterator(client, stream)
    for _ in range(3):
        answer = client.get_records(ShardIterator=shard_iterator)
        pages.append((len(answer["Records"]), answer["MillisBehindLatest"] > 0))
        shard_iterator = answer["NextShardIterator"]
    assert pages == [(0, True), (0, True), (3, False)]


def test_iterators_expire(kinesis_proxy, stream_factory):
    stream = stream_factory(1)
    client = client_of(kinesis_proxy)
    kinesis_proxy.behaviours = Behaviours(iterator_lifetime_s=0.5)
    shard_iterator = iterator(client, stream)
    assert client.get_records(ShardIterator=shard_iterator)["Records"] == []

    def expired() -> bool:
        try:
            client.get_records(ShardIterator=shard_iterator)
        except ClientError as error:
            return error.response["Error"]["Code"] == "ExpiredIteratorException"
        return False

    poll(expired, "the iterator to expire")


def test_records_become_visible_only_after_their_arrival(kinesis_proxy, stream_factory):
    stream = stream_factory(1)
    client = client_of(kinesis_proxy)
    delay_s = 2.0
    kinesis_proxy.behaviours = Behaviours(visibility_delay_s=delay_s)
    client.put_record(StreamName=stream, Data=b"late", PartitionKey="k")
    shard_iterator = iterator(client, stream)

    def read() -> list[dict[str, Any]]:
        nonlocal shard_iterator
        answer = client.get_records(ShardIterator=shard_iterator)
        shard_iterator = answer["NextShardIterator"]
        return list(answer["Records"])

    assert read() == []
    (record,) = poll(read, "the record to become visible")
    assert time.time() >= record["ApproximateArrivalTimestamp"].timestamp() + delay_s


@pytest.mark.parametrize(
    ("behaviour", "code"),
    [
        ("kms_throttling_probability", "KMSThrottlingException"),
        ("server_error_probability", "InternalFailure"),
        ("unavailable_probability", "ServiceUnavailable"),
    ],
)
def test_faults_answer_as_aws_does(kinesis_proxy, stream_factory, behaviour, code):
    stream = stream_factory(1)
    client = client_of(kinesis_proxy)
    shard_iterator = iterator(client, stream)
    kinesis_proxy.behaviours = Behaviours(**{behaviour: 1.0})
    assert error_of(lambda: client.get_records(ShardIterator=shard_iterator)) == code


def test_a_dropped_connection_gets_no_answer(kinesis_proxy, stream_factory):
    stream = stream_factory(1)
    client = client_of(kinesis_proxy)
    kinesis_proxy.behaviours = Behaviours(dropped_connection_probability=1.0)
    with pytest.raises(ConnectionClosedError):
        client.list_shards(StreamName=stream)


def test_a_sliding_window_admits_its_limit_per_period() -> None:
    window = SlidingWindow(limit=3, period_s=1.0)
    assert [window.admit(10.0 + n * 0.1) for n in range(4)] == [True, True, True, False]
    assert window.admit(11.05)  # the first call left the window


def test_a_byte_bucket_lets_one_call_overdraw_then_waits_it_out() -> None:
    bucket = ByteBucket(rate=100)
    start = time.monotonic()
    assert bucket.allows(start)
    bucket.spend(500)
    assert not bucket.allows(start + 3.9)
    assert bucket.allows(start + 4.1)


def test_settings_come_from_flags_over_kinesis_proxy_variables() -> None:
    environ = {
        "KINESIS_PROXY_UPSTREAM": "http://localstack:4566",
        "KINESIS_PROXY_AWS": "true",
        "KINESIS_PROXY_ITERATOR_LIFETIME_S": "45",
        "KINESIS_PROXY_EMPTY_PAGE_PROBABILITY": "0.1",
        "KINESIS_PROXY_FAULTY_OPERATIONS": "GetRecords, PutRecords",
    }
    settings = parse_settings(
        ["--listen", "127.0.0.1:4600", "--iterator-lifetime-s", "30", "--read-limits", "false"],
        environ,
    )
    assert (settings.upstream, settings.host, settings.port) == (
        "http://localstack:4566",
        "127.0.0.1",
        4600,
    )
    assert settings.behaviours == Behaviours.aws(
        iterator_lifetime_s=30.0,
        read_limits=False,
        empty_page_probability=0.1,
        faulty_operations=frozenset({"GetRecords", "PutRecords"}),
    )


def test_without_aws_every_behaviour_starts_off() -> None:
    settings = parse_settings(["--upstream", "http://u/"], {})
    assert (settings.upstream, settings.behaviours) == ("http://u", Behaviours())


@pytest.mark.parametrize(
    "argv",
    [[], ["--upstream", "http://u", "--read-limits", "maybe"], ["--upstream", "u", "--seed", "x"]],
)
def test_missing_or_mistyped_settings_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        parse_settings(argv, {})


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _get(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return json.loads(answer.read())
    except OSError:
        return None


def test_run_alone_it_forwards_and_counts_what_it_injected(kinesis_endpoint, stream_factory):
    stream = stream_factory(1)
    port = _free_port()
    root = Path(__file__).resolve().parents[1]
    command = [sys.executable, "-m", "kinesis_proxy", "--upstream", kinesis_endpoint]
    environ = {"KINESIS_PROXY_LISTEN": f"127.0.0.1:{port}", "KINESIS_PROXY_EMPTY_PAGES_FIRST": "1"}
    process = subprocess.Popen(
        command, cwd=root, env={"PATH": "/usr/bin:/bin", **environ}, stderr=subprocess.PIPE
    )
    try:
        url = f"http://127.0.0.1:{port}"
        assert poll(lambda: _get(f"{url}/_proxy/health"), "the proxy to serve")["status"]
        client = localstack_kinesis(url, config=Config(retries={"total_max_attempts": 1}))
        client.put_record(StreamName=stream, Data=b"x", PartitionKey="k")
        answer = client.get_records(
            ShardIterator=client.get_shard_iterator(
                StreamName=stream, ShardId=SHARD_0, ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
        )
        assert answer["Records"] == [] and answer["MillisBehindLatest"] > 0
        counters = _get(f"{url}/_proxy/events")
        assert counters["empty_pages"] == 1
        assert counters["calls:GetRecords"] == 1
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=DEADLINE_S)
    assert process.returncode == 0
    assert b"'empty_pages': 1" in stderr


def test_an_upstream_that_does_not_answer_is_a_503() -> None:
    with running_proxy(f"http://127.0.0.1:{_free_port()}") as proxy:
        assert error_of(lambda: client_of(proxy).list_shards(StreamName="s")) == (
            "ServiceUnavailable"
        )
        assert proxy.counters()["upstream_unreachable"] == 1
