"""Enhanced fan-out in real streaming queries: a local Spark session reading with SubscribeToShard.

Against LocalStack itself (whose fan-out polls its own GetRecords, about 3 s
between empty polls) and through the AWS-faithful proxy (`fan_out_endpoint`).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_kinesis_agg.aggregator import RecordAggregator
from botocore.exceptions import ClientError
from kinesis_proxy import Behaviours, KinesisProxy
from pyspark.errors import StreamingQueryException
from pyspark_kinesis import deregister_consumers
from test_query_stop import planner_processes
from test_streaming import (
    DEADLINE_S,
    BatchLog,
    drain,
    messages,
    put,
    replay_the_last_batch,
    run,
    source,
    split_and_merge_under_a_running_query,
)

from testkit.clients import localstack_kinesis
from testkit.waiting import wait_until

pytestmark = pytest.mark.unit

AWS_DIALECT = {"kinesis.consumerType": "SubscribeToShard", "kinesis.consumerName": "reader"}
DATABRICKS_DIALECT = {"consumerMode": "efo", "consumerName": "reader"}


def reading_through(proxy: KinesisProxy, **behaviours: Any) -> str:
    """The proxy's URL, with AWS's behaviours (fan-out's among them) and `behaviours` on."""
    proxy.behaviours = Behaviours.aws(**behaviours)
    return proxy.url


def consumers_of(kinesis_client, stream: str) -> dict[str, str]:
    arn = kinesis_client.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"][
        "StreamARN"
    ]
    listed = kinesis_client.list_stream_consumers(StreamARN=arn)["Consumers"]
    return {consumer["ConsumerName"]: consumer["ConsumerStatus"] for consumer in listed}


@pytest.mark.parametrize("dialect", [AWS_DIALECT, DATABRICKS_DIALECT], ids=["aws", "databricks"])
def test_either_peers_options_read_every_record_once_with_fan_out(
    spark, fan_out_endpoint, kinesis_client, stream_factory, tmp_path, dialect
):
    stream = stream_factory(2)
    put(kinesis_client, stream, messages(0, 100))
    frame = source(spark, fan_out_endpoint, stream, startingPosition="TRIM_HORIZON", **dialect)
    assert drain(frame, tmp_path).numbers == list(range(100))
    # Registered at the query's start, left registered (requireConsumerDeregistration: false).
    assert consumers_of(localstack_kinesis(fan_out_endpoint), stream) == {"reader": "ACTIVE"}


def test_a_running_query_with_the_default_trigger_reads_every_record_once(
    spark, fan_out_endpoint, kinesis_client, stream_factory, tmp_path
):
    stream = stream_factory(2)
    log = BatchLog()
    frame = source(spark, fan_out_endpoint, stream, startingPosition="LATEST", **DATABRICKS_DIALECT)
    query = run(frame, log, tmp_path, processingTime="500 milliseconds")
    try:
        wait_until(lambda: bool(query.recentProgress), "the first trigger", deadline_s=DEADLINE_S)
        for first in range(0, 60, 10):
            put(kinesis_client, stream, messages(first, 10))
            wait_until(
                lambda first=first: len(log.numbers) >= first + 10,
                f"records up to {first + 10}",
                deadline_s=DEADLINE_S,
            )
    finally:
        query.stop()
    assert log.numbers == list(range(60))
    assert len(log.batches) >= 6


def test_a_replayed_batch_returns_the_very_same_records(
    spark, fan_out_endpoint, kinesis_client, stream_factory, tmp_path
):
    stream = stream_factory(2)
    put(kinesis_client, stream, messages(0, 40))
    frame = source(
        spark,
        fan_out_endpoint,
        stream,
        startingPosition="TRIM_HORIZON",
        maxRecordsPerTrigger="10",
        metadataPath=str(tmp_path / "ends"),
        **AWS_DIALECT,
    )
    replay_the_last_batch(frame, tmp_path / "checkpoint", kinesis_client, stream)


def test_the_consumer_is_deregistered_by_deregister_consumers_after_the_query(
    spark, kinesis_endpoint, kinesis_client, stream_factory, tmp_path
):
    stream = stream_factory(1)
    put(kinesis_client, stream, messages(0, 5))
    options = {"streamName": stream, "endpointUrl": kinesis_endpoint, "region": "us-east-1"}
    options |= DATABRICKS_DIALECT
    frame = source(spark, kinesis_endpoint, stream, startingPosition="TRIM_HORIZON", **options)
    assert drain(frame, tmp_path).numbers == list(range(5))
    assert consumers_of(kinesis_client, stream) == {"reader": "ACTIVE"}
    deregister_consumers(options)
    assert consumers_of(kinesis_client, stream).get("reader") in (None, "DELETING")
    deregister_consumers(options)  # gone already: no error


def consumers_after_a_query(
    spark, endpoint: str, kinesis_client, stream_factory, tmp_path, **options: str
) -> dict[str, str]:
    """Runs a fan-out query until it read 5 records, stops it, and once its planner process
    is gone, says the stream's consumers."""
    stream = stream_factory(1)
    put(kinesis_client, stream, messages(0, 5))
    log = BatchLog()
    frame = source(
        spark, endpoint, stream, startingPosition="TRIM_HORIZON", **DATABRICKS_DIALECT, **options
    )
    query = run(frame, log, tmp_path, processingTime="500 milliseconds")
    try:
        wait_until(lambda: len(log.numbers) >= 5, "the records", deadline_s=DEADLINE_S)
        assert consumers_of(kinesis_client, stream) == {"reader": "ACTIVE"}
    finally:
        query.stop()
    wait_until(lambda: not planner_processes(), "the planner process to end")
    return consumers_of(kinesis_client, stream)


def test_require_consumer_deregistration_deregisters_the_consumer_when_the_query_stops(
    spark, kinesis_endpoint, kinesis_client, stream_factory, tmp_path
):
    consumers = consumers_after_a_query(
        spark,
        kinesis_endpoint,
        kinesis_client,
        stream_factory,
        tmp_path,
        requireConsumerDeregistration="true",
    )
    assert consumers.get("reader") in (None, "DELETING")


def test_by_default_the_consumer_stays_registered_when_the_query_stops(
    spark, kinesis_endpoint, kinesis_client, stream_factory, tmp_path
):
    consumers = consumers_after_a_query(
        spark, kinesis_endpoint, kinesis_client, stream_factory, tmp_path
    )
    assert consumers == {"reader": "ACTIVE"}


def test_split_and_merge_under_a_running_query_keep_every_record_in_key_order(
    spark, fan_out_endpoint, kinesis_client, stream_factory, tmp_path
):
    split_and_merge_under_a_running_query(
        spark, fan_out_endpoint, kinesis_client, stream_factory(1), tmp_path, **AWS_DIALECT
    )


def test_a_batch_may_end_inside_an_aggregate_and_the_next_goes_on_after_it(
    spark, kinesis_endpoint, kinesis_client, stream_factory, tmp_path
):
    stream = stream_factory(1)
    aggregator = RecordAggregator()
    for n in range(5):
        aggregator.add_user_record(f"user-key-{n}", json.dumps({"n": n}).encode())
    partition_key, _, data = aggregator.clear_and_get().get_contents()
    kinesis_client.put_record(StreamName=stream, Data=data, PartitionKey=partition_key)
    put(kinesis_client, stream, [{"n": 5}])
    frame = source(
        spark,
        kinesis_endpoint,
        stream,
        startingPosition="TRIM_HORIZON",
        maxRecordsPerShard="2",
        **DATABRICKS_DIALECT,
    )
    log = drain(frame, tmp_path)
    assert log.numbers == list(range(6))
    assert max(len(rows) for rows in log.batches.values()) == 2
    rows = [row for batch in sorted(log.batches) for row in log.batches[batch]]
    assert [row["subSequenceNumber"] for row in rows] == [0, 1, 2, 3, 4, 0]


# Faults: each through the proxy, AWS's behaviours on --------------------------------------


def read_in_rounds(query: Any, log: BatchLog, kinesis_client, stream: str, between: Any) -> None:
    """Puts three rounds of 10 records while `query` runs, `between(round)` after each is read."""
    wait_until(lambda: bool(query.recentProgress), "the first trigger", deadline_s=DEADLINE_S)
    for round_ in range(3):
        put(kinesis_client, stream, messages(round_ * 10, 10))
        wait_until(
            lambda round_=round_: len(log.numbers) >= (round_ + 1) * 10,
            f"round {round_}",
            deadline_s=DEADLINE_S,
        )
        between(round_)


def running_query(
    spark, endpoint: str, stream: str, tmp_path, **options: str
) -> tuple[Any, BatchLog]:
    log = BatchLog()
    frame = source(
        spark, endpoint, stream, startingPosition="LATEST", **DATABRICKS_DIALECT, **options
    )
    return run(frame, log, tmp_path, processingTime="500 milliseconds"), log


def test_a_shards_tasks_in_any_python_worker_read_from_one_subscription(
    spark, kinesis_proxy, kinesis_client, stream_factory, tmp_path
):
    # A task per shard and two task slots: Spark runs a shard's next task in whichever
    # Python worker is free, and the subscription outlives both (the host's hub).
    endpoint = reading_through(kinesis_proxy)
    stream = stream_factory(4)
    query, log = running_query(spark, endpoint, stream, tmp_path, shardsPerTask="1")
    try:
        read_in_rounds(query, log, kinesis_client, stream, lambda round_: None)
    finally:
        query.stop()
    assert log.numbers == list(range(30))
    # Once per shard, never refused under AWS's 5-second rule.
    assert kinesis_proxy.events["subscriptions"] == 4
    assert kinesis_proxy.events["subscriptions_in_use"] == 0


def test_a_subscription_cut_mid_batch_is_renewed_and_the_batch_stays_exact(
    spark, kinesis_proxy, kinesis_client, stream_factory, tmp_path
):
    endpoint = reading_through(kinesis_proxy, subscription_cut_after_records=15)
    stream = stream_factory(2)
    put(kinesis_client, stream, messages(0, 100))
    frame = source(spark, endpoint, stream, startingPosition="TRIM_HORIZON", **AWS_DIALECT)
    log = drain(frame, tmp_path)
    assert log.numbers == list(range(100))
    assert len(log.batches) == 1  # every cut was inside the one batch
    assert kinesis_proxy.events["subscriptions_cut"] >= 2


def test_a_consumer_deregistered_under_a_running_query_is_registered_again(
    spark, kinesis_proxy, kinesis_client, stream_factory, tmp_path
):
    endpoint = reading_through(kinesis_proxy)
    stream = stream_factory(2)
    query, log = running_query(spark, endpoint, stream, tmp_path)
    arn = kinesis_client.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"][
        "StreamARN"
    ]
    proxy_client = localstack_kinesis(endpoint)

    def deregister(round_: int) -> None:
        if round_ == 0:
            proxy_client.deregister_stream_consumer(StreamARN=arn, ConsumerName="reader")

    try:
        read_in_rounds(query, log, kinesis_client, stream, deregister)
    finally:
        query.stop()
    assert log.numbers == list(range(30))
    assert kinesis_proxy.events["consumers_registered"] == 2
    assert kinesis_proxy.events["consumers_deregistered"] == 1


def test_resource_in_use_is_waited_out_when_another_subscriber_took_the_shard(
    spark, kinesis_proxy, kinesis_client, stream_factory, tmp_path
):
    endpoint = reading_through(kinesis_proxy)
    stream = stream_factory(1)
    query, log = running_query(spark, endpoint, stream, tmp_path)
    proxy_client = localstack_kinesis(endpoint)
    taken, refused_to_the_test = [], []

    def subscribed() -> bool:
        try:
            taken.append(
                proxy_client.subscribe_to_shard(
                    ConsumerARN=consumers_arn(proxy_client, stream),
                    ShardId="shardId-000000000000",
                    StartingPosition={"Type": "LATEST"},
                )["EventStream"]
            )
        except ClientError as error:  # the query subscribed less than 5 s ago
            assert error.response["Error"]["Code"] == "ResourceInUseException"
            refused_to_the_test.append(error)
            return False
        return True

    def take_the_shard(round_: int) -> None:
        if round_ == 0:  # as a restarted query elsewhere would: the query's subscription ends
            wait_until(subscribed, "the shard taken from the query")

    try:
        read_in_rounds(query, log, kinesis_client, stream, take_the_shard)
    finally:
        query.stop()
    assert log.numbers == list(range(30))
    # The query's own subscription came back within 5 s of the test's, and waited.
    assert kinesis_proxy.events["subscriptions_in_use"] > len(refused_to_the_test)


def test_expired_subscriptions_are_renewed_with_nothing_lost_or_doubled(
    spark, kinesis_proxy, kinesis_client, stream_factory, tmp_path
):
    endpoint = reading_through(kinesis_proxy, subscription_lifetime_s=1.0, subscribe_in_use_s=0.5)
    stream = stream_factory(2)
    query, log = running_query(spark, endpoint, stream, tmp_path)

    def let_a_subscription_expire(round_: int) -> None:
        # A subscription outlives its task, so after each round one lapses before the next
        # round's records come; which Python worker holds it is Spark's choice, so wait.
        wait_until(
            lambda: kinesis_proxy.events["subscriptions_expired"] > round_,
            f"a subscription expired after round {round_}",
        )

    try:
        read_in_rounds(query, log, kinesis_client, stream, let_a_subscription_expire)
    finally:
        query.stop()
    assert log.numbers == list(range(30))


def consumers_arn(client: Any, stream: str) -> str:
    arn = client.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamARN"]
    consumer = client.describe_stream_consumer(StreamARN=arn, ConsumerName="reader")
    return str(consumer["ConsumerDescription"]["ConsumerARN"])


def restart_after_a_trim(
    spark, kinesis_proxy, kinesis_client, stream_factory, tmp_path, fail_on_data_loss: str
) -> tuple[Any, BatchLog]:
    """A query reads records 0-4 of 20 and stops; the proxy then trims records 0-9, and the
    query restarts after record 4 with `failOnDataLoss`: (the restarted query, its log).

    Its last batch saw record 5 follow, so the restarted driver plans from the note without
    a look at the shard: the task's SubscribeToShard is the first call to meet the trim.
    """
    kinesis_proxy.behaviours = Behaviours(fan_out=True)
    stream = stream_factory(1)
    put(kinesis_client, stream, messages(0, 20))
    options = {"startingPosition": "TRIM_HORIZON", "maxRecordsPerTrigger": "5"}
    options["metadataPath"] = str(tmp_path / "ends")
    checkpoint = tmp_path / "checkpoint"
    first = BatchLog()
    frame = source(spark, kinesis_proxy.url, stream, **options, **DATABRICKS_DIALECT)
    # One batch (Trigger.Once would ignore maxRecordsPerTrigger), stopped once committed.
    query = run(frame, first, checkpoint, processingTime="1 hour")
    try:
        wait_until(
            lambda: any(progress["batchId"] == 0 for progress in query.recentProgress),
            "the first batch committed",
            deadline_s=DEADLINE_S,
        )
    finally:
        query.stop()
    assert first.numbers == list(range(5))
    kinesis_proxy.behaviours = Behaviours(fan_out=True, trimmed_records=10)
    # Another consumer, so that no Python worker's buffer still holds what was pushed before.
    restarted = {"consumerMode": "efo", "consumerName": "after-the-trim"}
    frame = source(
        spark,
        kinesis_proxy.url,
        stream,
        **options,
        **restarted,
        failOnDataLoss=fail_on_data_loss,
    )
    log = BatchLog()
    return run(frame, log, checkpoint), log


def test_a_start_trimmed_away_fails_the_query_as_data_loss(
    spark, kinesis_proxy, kinesis_client, stream_factory, tmp_path
):
    query, log = restart_after_a_trim(
        spark, kinesis_proxy, kinesis_client, stream_factory, tmp_path, "true"
    )
    with pytest.raises(StreamingQueryException, match="failOnDataLoss=false") as failed:
        query.awaitTermination(DEADLINE_S)
    assert "past the stream's retention" in str(failed.value)
    assert log.numbers == []
    assert kinesis_proxy.events["trimmed_starts_refused"] >= 1


def test_with_fail_on_data_loss_false_a_trimmed_start_goes_on_from_the_oldest_record(
    spark, kinesis_proxy, kinesis_client, stream_factory, tmp_path
):
    query, log = restart_after_a_trim(
        spark, kinesis_proxy, kinesis_client, stream_factory, tmp_path, "false"
    )
    assert query.awaitTermination(DEADLINE_S)
    assert query.exception() is None
    assert log.numbers == list(range(10, 20))
    assert kinesis_proxy.events["trimmed_starts_refused"] >= 1
