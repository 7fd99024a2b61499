"""Every starting-position syntax the peers document, with their own examples."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pyspark_kinesis.positions import TRIM_HORIZON, Position, after, at_timestamp
from pyspark_kinesis.starting_positions import (
    StartingPositionError,
    StartingPositions,
    databricks_default_time,
    java_pattern_time,
    parse_starting_positions,
)

pytestmark = pytest.mark.unit

LATEST = Position("LATEST")
AUG_30_2023_19_00_05 = datetime(2023, 8, 30, 19, 0, 5, tzinfo=UTC).timestamp()
EIGHT_HOURS_S = 8 * 3600


def starting(text: str, timestamp: str | None = None) -> StartingPositions:
    return parse_starting_positions(text, timestamp)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # qubole's README: "latest", "trim_horizon", "earliest" (alias for trim_horizon)
        ("latest", LATEST),
        ("trim_horizon", TRIM_HORIZON),
        ("earliest", TRIM_HORIZON),
        # the AWS connector's README
        ("LATEST", LATEST),
        ("TRIM_HORIZON", TRIM_HORIZON),
        ("EARLIEST", TRIM_HORIZON),
        ("AT_TIMESTAMP 2023-08-30T19:00:05Z", at_timestamp(AUG_30_2023_19_00_05)),
        (
            "AT_TIMESTAMP 2023-08-30T19:00:05-08:00",
            at_timestamp(AUG_30_2023_19_00_05 + EIGHT_HOURS_S),
        ),
    ],
)
def test_peers_plain_positions(text: str, expected: Position) -> None:
    assert starting(text) == StartingPositions(expected, {})


def test_databricks_at_timestamp_with_a_java_format() -> None:
    text = json.dumps(
        {"at_timestamp": "06/25/2020 10:23:45 PDT", "format": "MM/dd/yyyy HH:mm:ss ZZZ"}
    )
    expected = datetime(2020, 6, 25, 17, 23, 45, tzinfo=UTC).timestamp()
    assert starting(text) == StartingPositions(at_timestamp(expected), {})


def test_databricks_at_timestamp_without_a_format_reads_their_default_pattern() -> None:
    # Databricks' own example, as their page writes it.
    text = json.dumps({"at_timestamp": "06/25/2020 10:23:45 PDT"})
    expected = datetime(2020, 6, 25, 17, 23, 45, tzinfo=UTC).timestamp()
    assert starting(text) == StartingPositions(at_timestamp(expected), {})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("06/25/2020 10:23:45 PDT", datetime(2020, 6, 25, 17, 23, 45, tzinfo=UTC)),
        ("12/31/2020 23:59:59 UTC", datetime(2020, 12, 31, 23, 59, 59, tzinfo=UTC)),
        ("01/02/2021 03:04:05 -0500", datetime(2021, 1, 2, 8, 4, 5, tzinfo=UTC)),
        # Before Databricks' default was known: ISO-8601 and epoch seconds, still accepted.
        ("2020-06-25T17:23:45Z", datetime(2020, 6, 25, 17, 23, 45, tzinfo=UTC)),
        ("1593105825", datetime(2020, 6, 25, 17, 23, 45, tzinfo=UTC)),
    ],
)
def test_databricks_default_time(text: str, expected: datetime) -> None:
    assert databricks_default_time(text) == expected.timestamp()


def test_databricks_default_time_names_the_pattern_it_tried() -> None:
    with pytest.raises(StartingPositionError, match=r"MM/dd/yyyy HH:mm:ss ZZZ.*format"):
        databricks_default_time("25 June 2020")


@pytest.mark.parametrize(
    ("text", "pattern", "expected"),
    [
        ("2020-06-25 10:23:45.250 -0700", "yyyy-MM-dd HH:mm:ss.SSS Z", (17, 23, 45, 250_000)),
        ("25.06.20 10:23 PM UTC", "dd.MM.yy hh:mm a z", (22, 23, 0, 0)),
        ("2020-06-25T10:23:45+02:00", "yyyy-MM-dd'T'HH:mm:ssXXX", (8, 23, 45, 0)),
        ("2020-06-25 10:23:45", "yyyy-MM-dd HH:mm:ss", (10, 23, 45, 0)),
    ],
)
def test_java_patterns(text: str, pattern: str, expected: tuple[int, int, int, int]) -> None:
    hour, minute, second, micros = expected
    assert java_pattern_time(text, pattern) == datetime(
        2020, 6, 25, hour, minute, second, micros, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("text", "pattern", "words"),
    [
        ("06/25/2020", "MM/dd/yyyy G", "'G'"),
        ("06/25/2020 10:00 XYZ", "MM/dd/yyyy HH:mm z", "unknown zone 'XYZ'"),
        ("2020-06-25", "MM/dd/yyyy", "does not match"),
    ],
)
def test_java_pattern_errors_say_what_is_wrong(text: str, pattern: str, words: str) -> None:
    with pytest.raises(StartingPositionError, match=words):
        java_pattern_time(text, pattern)


def test_qubole_offset_json() -> None:
    # As qubole's KinesisSourceOffset writes it (its README: "JSON serialized map
    # shardId->KinesisPosition").
    text = json.dumps(
        {
            "metadata": {"streamName": "my.stream", "batchId": "5"},
            "shardId-00": {"iteratorType": "AFTER_SEQUENCE_NUMBER", "iteratorPosition": "111"},
            "shardId-01": {"iteratorType": "TRIM_HORIZON", "iteratorPosition": ""},
            "shardId-02": {"iteratorType": "AT_TIMESTAMP", "iteratorPosition": "1693422005000"},
        }
    )
    assert starting(text) == StartingPositions(
        LATEST,
        {
            "shardId-00": after("111"),
            "shardId-01": TRIM_HORIZON,
            "shardId-02": at_timestamp(AUG_30_2023_19_00_05),
        },
    )


def test_aws_connector_offset_json() -> None:
    # The example in the AWS connector's InitialKinesisPosition.fromCheckpointJson.
    text = """{
      "shardId-000000000001":{
        "iteratorType":"AFTER_SEQUENCE_NUMBER",
        "iteratorPosition":"49605240428222307037115827613554798409561082419642105874",
        "subSequenceNumber": "-1"
      },
      "metadata":{
        "streamName":"my.cool.stream2",
        "batchId":"7"
      },
      "shardId-000000000000":{
        "iteratorType":"AFTER_SEQUENCE_NUMBER",
        "iteratorPosition":"49605240428200006291917297020490128157480794051565322242",
        "subSequenceNumber": "1"
      }
    }"""
    positions = starting(text)
    assert positions.default == LATEST
    assert positions.per_shard["shardId-000000000001"] == after(
        "49605240428222307037115827613554798409561082419642105874"
    )
    assert positions.per_shard["shardId-000000000000"] == after(
        "49605240428200006291917297020490128157480794051565322242", sub_sequence_number=1
    )


def test_aws_connector_offset_json_after_the_last_user_record_is_after_the_record() -> None:
    entry = {"iteratorType": "AFTER_SEQUENCE_NUMBER", "iteratorPosition": "42"}
    text = json.dumps({"shardId-0": {**entry, "subSequenceNumber": "3", "isLast": "true"}})
    assert starting(text).per_shard == {"shardId-0": after("42")}


def test_offset_json_entry_that_is_not_an_object_names_the_shard() -> None:
    text = json.dumps({"shardId-0": {"iteratorType": "LATEST"}, "shardId-1": "LATEST"})
    with pytest.raises(StartingPositionError, match=r"startingPosition\[shardId-1\]"):
        starting(text)


def test_offset_json_at_timestamp_must_be_milliseconds() -> None:
    text = json.dumps({"shardId-0": {"iteratorType": "AT_TIMESTAMP", "iteratorPosition": "x"}})
    with pytest.raises(StartingPositionError, match="epoch milliseconds"):
        starting(text)
