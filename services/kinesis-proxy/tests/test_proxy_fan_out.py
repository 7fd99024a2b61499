"""The proxy's enhanced fan-out, as a boto3 client sees it (against the session's LocalStack)."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from kinesis_proxy import Behaviours, KinesisProxy
from kinesis_proxy.fan_out import error_message, event_message

from testkit.clients import localstack_kinesis
from testkit.waiting import wait_until

pytestmark = pytest.mark.unit

SHARD_0 = "shardId-000000000000"
FAN_OUT = Behaviours(fan_out=True)


def client_of(proxy: KinesisProxy) -> Any:
    return localstack_kinesis(proxy.url, config=Config(retries={"total_max_attempts": 1}))


def registered(client: Any, stream: str, name: str = "reader") -> tuple[str, str]:
    """(stream ARN, consumer ARN) of a new consumer, once ACTIVE."""
    summary = client.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]
    arn = summary["StreamARN"]
    consumer = client.register_stream_consumer(StreamARN=arn, ConsumerName=name)["Consumer"]
    wait_until(
        lambda: (
            client.describe_stream_consumer(ConsumerARN=consumer["ConsumerARN"])[
                "ConsumerDescription"
            ]["ConsumerStatus"]
            == "ACTIVE"
        ),
        "the consumer to be ACTIVE",
    )
    return arn, consumer["ConsumerARN"]


def subscribe(client: Any, consumer: str, shard: str = SHARD_0) -> Any:
    return client.subscribe_to_shard(
        ConsumerARN=consumer, ShardId=shard, StartingPosition={"Type": "TRIM_HORIZON"}
    )["EventStream"]


def code_of(call: Any) -> str:
    with pytest.raises(ClientError) as caught:
        call()
    return str(caught.value.response["Error"]["Code"])


def test_a_consumer_is_creating_then_active_and_listed(kinesis_proxy, stream_factory):
    kinesis_proxy.behaviours = Behaviours(fan_out=True, consumer_creating_s=1.0)
    client, stream = client_of(kinesis_proxy), stream_factory(1)
    arn = client.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamARN"]
    consumer = client.register_stream_consumer(StreamARN=arn, ConsumerName="reader")["Consumer"]
    assert consumer["ConsumerStatus"] == "CREATING"
    # Subscribing before it is ACTIVE is refused.
    assert code_of(lambda: subscribe(client, consumer["ConsumerARN"])) == "ResourceInUseException"
    assert code_of(
        lambda: client.register_stream_consumer(StreamARN=arn, ConsumerName="reader")
    ) == ("ResourceInUseException")
    wait_until(
        lambda: (
            client.describe_stream_consumer(StreamARN=arn, ConsumerName="reader")[
                "ConsumerDescription"
            ]["ConsumerStatus"]
            == "ACTIVE"
        ),
        "ACTIVE",
    )
    listed = client.list_stream_consumers(StreamARN=arn)["Consumers"]
    assert [(c["ConsumerName"], c["ConsumerStatus"]) for c in listed] == [("reader", "ACTIVE")]
    client.deregister_stream_consumer(ConsumerARN=consumer["ConsumerARN"])
    assert client.list_stream_consumers(StreamARN=arn)["Consumers"] == []
    assert (
        code_of(lambda: client.describe_stream_consumer(StreamARN=arn, ConsumerName="reader"))
        == "ResourceNotFoundException"
    )


def test_records_are_pushed_as_they_arrive(kinesis_proxy, stream_factory):
    kinesis_proxy.behaviours = FAN_OUT
    client, stream = client_of(kinesis_proxy), stream_factory(1)
    _, consumer = registered(client, stream)
    events = iter(subscribe(client, consumer))
    first = next(events)["SubscribeToShardEvent"]  # the shard is empty
    assert first["Records"] == [] and first["MillisBehindLatest"] == 0
    assert first["ContinuationSequenceNumber"]
    client.put_record(StreamName=stream, Data=b"hello", PartitionKey="k")
    put_at = time.monotonic()
    event = next(events)["SubscribeToShardEvent"]
    assert [record["Data"] for record in event["Records"]] == [b"hello"]
    # Polled every 50 ms (LocalStack's own fan-out waits 3 s after an empty poll); the
    # margin is for a loaded machine, where one LocalStack call takes up to a second.
    assert time.monotonic() - put_at < 2.0
    assert event["ContinuationSequenceNumber"] == event["Records"][0]["SequenceNumber"]


def test_a_second_subscription_within_five_seconds_is_in_use_then_takes_over(
    kinesis_proxy, stream_factory
):
    kinesis_proxy.behaviours = Behaviours(fan_out=True, subscribe_in_use_s=1.0)
    client, stream = client_of(kinesis_proxy), stream_factory(1)
    _, consumer = registered(client, stream)
    events = iter(subscribe(client, consumer))
    next(events)
    assert code_of(lambda: subscribe(client, consumer)) == "ResourceInUseException"
    time.sleep(1.0)  # the rule's own period, not a synchronisation
    later = iter(subscribe(client, consumer))
    next(later)
    with pytest.raises(ClientError) as caught:
        for _ in range(1000):
            next(events)
    assert caught.value.response["Error"]["Code"] == "ResourceInUseException"


def test_a_subscription_ends_after_its_lifetime(kinesis_proxy, stream_factory):
    kinesis_proxy.behaviours = Behaviours(fan_out=True, subscription_lifetime_s=2.0)
    client, stream = client_of(kinesis_proxy), stream_factory(1)
    _, consumer = registered(client, stream)
    started = time.monotonic()
    assert sum(1 for _ in subscribe(client, consumer)) >= 1  # the stream ends by itself
    assert 2.0 <= time.monotonic() - started < 10.0
    assert kinesis_proxy.events["subscriptions_expired"] == 1


def test_a_consumer_gets_at_most_two_megabytes_a_second_per_shard(kinesis_proxy, stream_factory):
    kinesis_proxy.behaviours = dataclasses.replace(
        FAN_OUT, fan_out_read_limits=True, read_bytes_per_s=100_000
    )
    client, stream = client_of(kinesis_proxy), stream_factory(1)
    for _ in range(6):
        client.put_records(
            StreamName=stream,
            Records=[{"Data": b"x" * 10_000, "PartitionKey": "k"} for _ in range(10)],
        )
    _, consumer = registered(client, stream)
    started, received = time.monotonic(), 0
    for event in subscribe(client, consumer):
        received += sum(len(r["Data"]) for r in event["SubscribeToShardEvent"]["Records"])
        if received >= 600_000:
            break
    # 600 kB at 100 kB/s, the first 100 kB at once: about 5 s.
    assert time.monotonic() - started >= 4.0


def test_a_closed_shard_ends_with_its_children(kinesis_proxy, stream_factory):
    kinesis_proxy.behaviours = FAN_OUT
    client, stream = client_of(kinesis_proxy), stream_factory(1)
    client.put_record(StreamName=stream, Data=b"before", PartitionKey="k")
    client.split_shard(StreamName=stream, ShardToSplit=SHARD_0, NewStartingHashKey=str(2**127))
    client.get_waiter("stream_exists").wait(
        StreamName=stream, WaiterConfig={"Delay": 0.2, "MaxAttempts": 300}
    )
    _, consumer = registered(client, stream)
    events = [event["SubscribeToShardEvent"] for event in subscribe(client, consumer)]
    assert [r["Data"] for event in events for r in event["Records"]] == [b"before"]
    last = events[-1]
    assert last.get("ContinuationSequenceNumber") is None
    assert sorted(child["ParentShards"][0] for child in last["ChildShards"]) == [SHARD_0] * 2


def test_a_deregistered_consumer_s_subscription_ends_with_resource_not_found(
    kinesis_proxy, stream_factory
):
    kinesis_proxy.behaviours = FAN_OUT
    client, stream = client_of(kinesis_proxy), stream_factory(1)
    _, consumer = registered(client, stream)
    events = iter(subscribe(client, consumer))
    next(events)
    client.deregister_stream_consumer(ConsumerARN=consumer)
    with pytest.raises(ClientError) as caught:
        for _ in range(1000):
            next(events)
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_messages_are_framed_with_lengths_and_checksums() -> None:
    message = event_message("SubscribeToShardEvent", b'{"Records": []}')
    total, headers = int.from_bytes(message[:4], "big"), int.from_bytes(message[4:8], "big")
    assert total == len(message)
    assert b":event-type" in message[12 : 12 + headers]
    assert b":exception-type" in error_message("ResourceInUseException", "in use")


def test_a_subscription_is_cut_once_it_pushed_its_share(kinesis_proxy, stream_factory):
    kinesis_proxy.behaviours = Behaviours(fan_out=True, subscription_cut_after_records=3)
    client, stream = client_of(kinesis_proxy), stream_factory(1)
    _, consumer = registered(client, stream)
    events = iter(subscribe(client, consumer))
    for n in range(2):
        client.put_record(StreamName=stream, Data=str(n).encode(), PartitionKey="k")
    received: list[bytes] = []
    while len(received) < 2:
        received += [r["Data"] for r in next(events)["SubscribeToShardEvent"]["Records"]]
    # Put at once: the third record is pushed, then the connection is cut.
    client.put_records(
        StreamName=stream,
        Records=[{"Data": b"2", "PartitionKey": "k"}, {"Data": b"3", "PartitionKey": "k"}],
    )
    with pytest.raises(Exception, match="ended prematurely"):  # urllib3's, as a real cut gives
        for event in events:
            received += [r["Data"] for r in event["SubscribeToShardEvent"]["Records"]]
    assert received == [b"0", b"1", b"2"]
    assert kinesis_proxy.events["subscriptions_cut"] == 1


def trimmed_stream(kinesis_proxy: KinesisProxy, stream_factory: Any) -> tuple[Any, str, list[str]]:
    """A 1-shard stream of records b"0".."9" whose first 4 the proxy has trimmed, read through
    the proxy: (client, stream, the records' sequence numbers)."""
    client, stream = client_of(kinesis_proxy), stream_factory(1)
    entries = [{"Data": str(n).encode(), "PartitionKey": "k"} for n in range(10)]
    answer = client.put_records(StreamName=stream, Records=entries)
    numbers = [str(result["SequenceNumber"]) for result in answer["Records"]]
    kinesis_proxy.behaviours = Behaviours(fan_out=True, trimmed_records=4)
    return client, stream, numbers


def iterator_at(client: Any, stream: str, kind: str, number: str | None = None) -> str:
    at = {"StartingSequenceNumber": number} if number else {}
    answer = client.get_shard_iterator(
        StreamName=stream, ShardId=SHARD_0, ShardIteratorType=kind, **at
    )
    return str(answer["ShardIterator"])


def test_trimmed_records_are_never_read_and_a_start_at_one_is_refused(
    kinesis_proxy, stream_factory
):
    client, stream, numbers = trimmed_stream(kinesis_proxy, stream_factory)
    page = client.get_records(ShardIterator=iterator_at(client, stream, "TRIM_HORIZON"))
    assert [record["Data"] for record in page["Records"]] == [str(n).encode() for n in range(4, 10)]
    for kind, number in [("AT_SEQUENCE_NUMBER", numbers[2]), ("AFTER_SEQUENCE_NUMBER", numbers[3])]:
        with pytest.raises(ClientError) as caught:
            iterator_at(client, stream, kind, number)
        assert caught.value.response["Error"]["Code"] == "InvalidArgumentException"
        assert "StartingSequenceNumber" in str(caught.value)
    page = client.get_records(
        ShardIterator=iterator_at(client, stream, "AT_SEQUENCE_NUMBER", numbers[4])
    )
    assert page["Records"][0]["Data"] == b"4"


def test_a_subscription_at_a_trimmed_record_is_refused_and_one_at_trim_horizon_skips_them(
    kinesis_proxy, stream_factory
):
    client, stream, numbers = trimmed_stream(kinesis_proxy, stream_factory)
    _, consumer = registered(client, stream)
    start = {"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": numbers[1]}
    assert (
        code_of(
            lambda: client.subscribe_to_shard(
                ConsumerARN=consumer, ShardId=SHARD_0, StartingPosition=start
            )
        )
        == "InvalidArgumentException"
    )
    received: list[bytes] = []
    for event in subscribe(client, consumer):
        received += [r["Data"] for r in event["SubscribeToShardEvent"]["Records"]]
        if len(received) >= 6:
            break
    assert received == [str(n).encode() for n in range(4, 10)]
    assert kinesis_proxy.events["trimmed_starts_refused"] == 1
