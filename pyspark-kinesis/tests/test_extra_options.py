"""The sink's and the batch read's own options, parsed apart from KinesisOptions."""

from __future__ import annotations

import pytest
from pyspark_kinesis.extra_options import (
    BatchReadOptions,
    SinkOptions,
    refuse_options_of_another_use,
    starting_position_given,
)
from pyspark_kinesis.options import KinesisOptionError

pytestmark = pytest.mark.unit

STREAM = {"streamName": "events", "region": "us-east-1"}


def test_defaults_are_kinesis_limits_and_no_aggregation() -> None:
    options = SinkOptions.parse(STREAM)
    assert (options.aggregate, options.max_records_per_request) == (False, 500)
    assert options.max_bytes_per_request == 5 * 1024 * 1024
    assert options.connection.stream_name == "events"


def test_peer_spellings_and_spark_own_options() -> None:
    options = SinkOptions.parse(
        {
            **STREAM,
            "kinesis.executor.aggregationEnabled": "TRUE",
            "writeRetryDeadline": "30s",
            "checkpointLocation": "/tmp/checkpoint",
        }
    )
    assert (options.aggregate, options.retry_deadline_s) == (True, 30.0)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("maxRecordsPerRequest", "501", "from 1 to 500"),
        ("aggregate", "yes", "must be true or false"),
        ("writeRetryDeadline", "soon", "must be a duration"),
        ("maxBytesPerRequest", "0", "from 1 to 5242880"),
    ],
)
def test_bad_sink_values_name_the_option(option: str, value: str, message: str) -> None:
    with pytest.raises(KinesisOptionError, match=message):
        SinkOptions.parse({**STREAM, option: value})


def test_an_unknown_option_is_still_an_error() -> None:
    with pytest.raises(KinesisOptionError, match="unknown option 'agregate'"):
        SinkOptions.parse({**STREAM, "agregate": "true"})


def test_ending_positions() -> None:
    assert BatchReadOptions.parse({}).until_s is None
    assert BatchReadOptions.parse({"endingTimestamp": "1970-01-01T00:01:00Z"}).until_s == 60.0
    assert BatchReadOptions.parse({"endingPosition": "AT_TIMESTAMP:90"}).until_s == 90.0
    with pytest.raises(KinesisOptionError, match=r"endingPosition / kinesis\.endingPosition must"):
        BatchReadOptions.parse({"endingPosition": "TRIM_HORIZON"})


def test_whether_a_starting_position_was_given() -> None:
    assert starting_position_given({"initialPosition": "LATEST"})
    assert not starting_position_given(STREAM)


@pytest.mark.parametrize(
    ("use", "option"),
    [
        ("stream read", "aggregate"),
        ("batch read", "writeRetryDeadline"),
        ("sink", "endingTimestamp"),
    ],
)
def test_options_of_another_use_are_refused(use: str, option: str) -> None:
    with pytest.raises(KinesisOptionError, match=f"option\\(s\\) {option} do nothing in a {use}"):
        refuse_options_of_another_use({**STREAM, option: "1"}, use)
    refuse_options_of_another_use(STREAM, use)


@pytest.mark.parametrize(
    ("option", "value", "field", "expected"),
    [
        # the AWS connector's README, "Kinesis Sink Configuration"
        ("kinesis.sink.aggregationEnabled", "True", "aggregate", True),
        ("kinesis.sink.maxConnections", "4", "concurrent_requests", 4),
        # qubole's README, "Kinesis Sink Configuration"
        ("kinesis.executor.aggregationEnabled", "true", "aggregate", True),
        ("kinesis.executor.maxConnections", "3", "concurrent_requests", 3),
    ],
)
def test_peer_sink_options_mean_the_same_here(
    option: str, value: str, field: str, expected: object
) -> None:
    assert getattr(SinkOptions.parse({**STREAM, option: value}), field) == expected


@pytest.mark.parametrize(
    "option",
    [
        "kinesis.sink.flushWaitTimeMs",
        "kinesis.sink.recordMaxBufferedTimeMs",
        "kinesis.sink.recordTtl",
        "kinesis.executor.recordMaxBufferedTime",
        "kniesis.executor.flushwaittimemillis",
    ],
)
def test_peer_sink_options_not_needed_leave_the_sink_as_it_was(option: str) -> None:
    assert SinkOptions.parse({**STREAM, option: "100"}) == SinkOptions.parse(STREAM)
