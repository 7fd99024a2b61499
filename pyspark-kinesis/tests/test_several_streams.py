"""Several streams in one query, planned with plain functions (no Spark, no Kinesis)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pyspark_kinesis.options import KinesisOptionError, KinesisOptions
from pyspark_kinesis.planning import behind_by_stream
from pyspark_kinesis.positions import TRIM_HORIZON, after, at_timestamp
from pyspark_kinesis.reading import ShardCursor
from pyspark_kinesis.shards import (
    Shard,
    ShardProgress,
    StreamShard,
    Take,
    by_stream,
    last_served_from_offset,
    of_streams,
    split_budget,
    streams_from_offset,
    streams_to_offset,
    with_new_shards,
)

pytestmark = pytest.mark.unit

GOLDEN = Path(__file__).parent / "golden"
QUERY_START = 1_704_067_200.25
SEQUENCE_2 = "49650000000000000000000000000000000000000000000000000002"
SEQUENCE_17 = "49650000000000000000000000000000000000000000000000000017"
SHARD_0, SHARD_1 = "shardId-000000000000", "shardId-000000000001"
SHARD_2, SHARD_3 = "shardId-000000000002", "shardId-000000000003"
ORDERS_ARN = "arn:aws:kinesis:eu-west-1:123456789012:stream/orders"
PAYMENTS_ARN = "arn:aws:kinesis:eu-west-1:123456789012:stream/payments"


def golden(name: str) -> dict:
    return json.loads((GOLDEN / name).read_text())


# Options: the list of streams.


def test_stream_name_takes_a_comma_separated_list_with_spaces() -> None:
    options = KinesisOptions.parse({"streamName": " orders , payments "})
    assert options.stream_names == ("orders", "payments")


def test_one_stream_is_a_list_of_one() -> None:
    assert KinesisOptions.parse({"streamName": "orders"}).stream_names == ("orders",)


def test_several_stream_arns_name_the_streams_and_give_the_region() -> None:
    options = KinesisOptions.parse({"streamARN": f"{ORDERS_ARN}, {PAYMENTS_ARN}"})
    assert (options.stream_names, options.region) == (("orders", "payments"), "eu-west-1")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"streamName": "orders,orders"}, "'orders' twice"),
        ({"streamName": "orders,,payments"}, "empty stream name"),
        (
            {"streamARN": f"{ORDERS_ARN},arn:aws:kinesis:us-east-1:123456789012:stream/p"},
            "several regions",
        ),
        ({"streamName": "orders,payments", "streamARN": ORDERS_ARN}, "name different streams"),
    ],
)
def test_a_bad_list_of_streams_is_refused_naming_the_problem(
    options: dict[str, str], message: str
) -> None:
    with pytest.raises(KinesisOptionError, match=message):
        KinesisOptions.parse(options)


def test_the_same_streams_given_by_name_and_arn_agree() -> None:
    options = KinesisOptions.parse(
        {"streamName": "orders, payments", "streamARN": f"{ORDERS_ARN},{PAYMENTS_ARN}"}
    )
    assert options.stream_names == ("orders", "payments")


def test_per_shard_positions_say_which_stream_when_several_are_read() -> None:
    position = json.dumps({f"orders/{SHARD_0}": f"AFTER_SEQUENCE_NUMBER:{SEQUENCE_2}"})
    options = KinesisOptions.parse({"streamName": "orders,payments", "startingPosition": position})
    assert options.for_stream("orders").starting_position_for(SHARD_0) == after(SEQUENCE_2)
    assert options.for_stream("payments").starting_position_for(SHARD_0) == TRIM_HORIZON


def test_a_per_shard_position_without_its_stream_is_refused_when_several_are_read() -> None:
    position = json.dumps({SHARD_0: "TRIM_HORIZON"})
    with pytest.raises(KinesisOptionError, match=f"'{SHARD_0}'.*'<stream>/{SHARD_0}'"):
        KinesisOptions.parse({"streamName": "orders,payments", "startingPosition": position})


def test_a_per_shard_position_of_a_stream_not_read_is_refused() -> None:
    position = json.dumps({f"refunds/{SHARD_0}": "TRIM_HORIZON"})
    with pytest.raises(KinesisOptionError, match="'refunds' is not one of the streams read"):
        KinesisOptions.parse({"streamName": "orders,payments", "startingPosition": position})


def test_a_view_of_one_stream_reads_that_stream_only() -> None:
    options = KinesisOptions.parse({"streamName": "orders,payments", "maxRecordsPerShard": "7"})
    payments = options.for_stream("payments")
    assert (payments.stream_name, payments.stream_names) == ("payments", ("payments",))
    assert payments.max_records_per_shard == 7


# The offset: one entry per stream and shard.


def test_an_offset_written_before_several_streams_still_loads() -> None:
    progress = streams_from_offset(golden("offset-one-stream-before-several.json"), ("events",))
    assert progress == {
        StreamShard("events", SHARD_0): ShardProgress(after(SEQUENCE_2), ended=True),
        StreamShard("events", SHARD_1): ShardProgress(
            after(SEQUENCE_17, 3), take=Take(QUERY_START, 5)
        ),
        StreamShard("events", SHARD_2): ShardProgress(at_timestamp(QUERY_START)),
        StreamShard("events", SHARD_3): ShardProgress(TRIM_HORIZON, take=Take(QUERY_START)),
    }


def test_an_offset_written_before_several_streams_cannot_serve_several() -> None:
    with pytest.raises(KinesisOptionError, match=r"one stream.*'orders', 'payments'"):
        streams_from_offset(golden("offset-one-stream-before-several.json"), ("orders", "payments"))


def test_the_offset_of_two_streams_is_written_as_the_golden_file() -> None:
    progress = {
        StreamShard("payments", SHARD_1): ShardProgress(at_timestamp(QUERY_START), ended=True),
        StreamShard("orders", SHARD_0): ShardProgress(after(SEQUENCE_2), take=Take(QUERY_START, 5)),
        StreamShard("payments", SHARD_0): ShardProgress(TRIM_HORIZON),
    }
    expected = golden("offset-two-streams.json")
    assert streams_to_offset(progress) == {"streams": expected["streams"]}
    assert streams_from_offset(expected, ("orders", "payments")) == progress
    assert last_served_from_offset(expected) == StreamShard("payments", SHARD_0)


def test_an_older_offsets_turn_index_restarts_the_rotation() -> None:
    assert last_served_from_offset(golden("offset-one-stream-before-several.json")) is None


def test_a_stream_the_offset_does_not_hold_is_refused_naming_it() -> None:
    with pytest.raises(KinesisOptionError, match="'refunds'"):
        streams_from_offset(golden("offset-two-streams.json"), ("orders", "refunds"))


def test_progress_splits_by_stream_and_joins_back() -> None:
    progress = streams_from_offset(golden("offset-two-streams.json"), ("orders", "payments"))
    split = {name: by_stream(progress, name) for name in ("orders", "payments")}
    assert sorted(split["payments"]) == [SHARD_0, SHARD_1]
    assert of_streams(split) == progress


# Resharding and limits, per stream.


def test_one_stream_split_while_the_other_is_not() -> None:
    parent, still = Shard("P", (), closed=True), Shard("S", (), closed=False)
    children = [Shard("A", ("P",), closed=False), Shard("B", ("P",), closed=False)]
    listings = {"split": [parent, *children], "still": [still]}
    progress = {
        "split": {"P": ShardProgress(after("99"), ended=True)},
        "still": {"S": ShardProgress(after("5"))},
    }
    updated = {name: with_new_shards(progress[name], listings[name]) for name in listings}
    assert sorted(of_streams(updated)) == [
        StreamShard("split", "A"),
        StreamShard("split", "B"),
        StreamShard("still", "S"),
    ]


def test_the_trigger_budget_is_shared_over_every_shard_of_every_stream() -> None:
    shards = [StreamShard("orders", SHARD_0), StreamShard("payments", SHARD_0)]
    shards.append(StreamShard("payments", SHARD_1))
    shares, served = split_budget(7, shards, per_shard_cap=100, last_served=None)
    assert shares == {shards[0]: 3, shards[1]: 2, shards[2]: 2}
    assert served == shards[0]
    shares, served = split_budget(7, shards, per_shard_cap=100, last_served=served)
    assert shares == {shards[0]: 2, shards[1]: 3, shards[2]: 2}
    assert served == shards[1]


def test_the_remainder_goes_round_every_shard_as_the_shards_with_records_change() -> None:
    orders, payments = StreamShard("orders", SHARD_0), StreamShard("payments", SHARD_0)
    # A first batch that saw only one shard served it; the next serves the other first.
    _, served = split_budget(1, [payments], per_shard_cap=100, last_served=None)
    shares, _ = split_budget(1, [orders, payments], per_shard_cap=100, last_served=served)
    assert shares == {orders: 1, payments: 0}


def test_the_per_shard_cap_holds_for_each_shard_of_each_stream() -> None:
    shards = [StreamShard("orders", SHARD_0), StreamShard("payments", SHARD_0)]
    assert split_budget(None, shards, per_shard_cap=4, last_served=None)[0] == dict.fromkeys(
        shards, 4
    )
    assert split_budget(100, shards, per_shard_cap=4, last_served=None)[0] == dict.fromkeys(
        shards, 4
    )


def test_progress_reports_how_far_behind_each_shard_of_each_stream_is() -> None:
    behind = {
        StreamShard("payments", SHARD_1): 20,
        StreamShard("orders", SHARD_0): 0,
        StreamShard("payments", SHARD_0): 10,
    }
    assert behind_by_stream(behind) == {
        "orders": {SHARD_0: 0},
        "payments": {SHARD_0: 10, SHARD_1: 20},
    }


def test_a_shard_is_read_with_its_own_streams_options_only() -> None:
    several = KinesisOptions.parse({"streamName": "orders,payments"})
    with pytest.raises(ValueError, match="one stream"):
        ShardCursor(client=None, options=several, shard_id=SHARD_0, position=TRIM_HORIZON)
    cursor = ShardCursor(None, several.for_stream("payments"), SHARD_0, TRIM_HORIZON)
    assert cursor.options.stream_name == "payments"


def test_a_trigger_with_no_shard_to_take_from_shares_nothing() -> None:
    # A trigger may only see shards end or join: a budget then has no shard to go to.
    assert split_budget(10, [], per_shard_cap=4, last_served=None) == ({}, None)
