"""KinesisOptions.parse: three option dialects, one meaning, and errors that name the option."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from pyspark_kinesis.options import MAX_RECORDS_PER_FETCH, KinesisOptionError, KinesisOptions
from pyspark_kinesis.positions import Position, at_timestamp

pytestmark = pytest.mark.unit

ROLE = "arn:aws:iam::123456789012:role/reader"
STREAM_ARN = "arn:aws:kinesis:eu-west-1:123456789012:stream/events"
SECRET, TOKEN = "wJalrXUtnFEMI-secret", "FwoGZX-session-token"
NEW_YEAR_2024 = datetime(2024, 1, 1, tzinfo=UTC).timestamp()

QUBOLE = {
    "streamName": "events",
    "endpointUrl": "https://kinesis.eu-west-1.amazonaws.com",
    "awsAccessKeyId": "AKIDEXAMPLE",
    "awsSecretKey": SECRET,
    "sessionToken": TOKEN,
    "awsSTSRoleARN": ROLE,
    "startingposition": "TRIM_HORIZON",
    "kinesis.executor.maxRecordPerRead": "500",
    "kinesis.executor.addIdleTimeBetweenReads": "true",
    "kinesis.executor.idleTimeBetweenReadsInMs": "400",
    "failondataloss": "false",
    "kinesis.executor.maxFetchRecordsPerShard": "300",
}
AWS_CONNECTOR = {
    "kinesis.streamName": "events",
    "kinesis.endpointUrl": "https://kinesis.eu-west-1.amazonaws.com",
    "kinesis.region": "eu-west-1",
    "kinesis.awsAccessKeyId": "AKIDEXAMPLE",
    "kinesis.awsSecretKey": SECRET,
    "kinesis.sessionToken": TOKEN,
    "kinesis.stsRoleArn": ROLE,
    "kinesis.startingPosition": "TRIM_HORIZON",
    "kinesis.getRecords.numberOfRecordsPerFetch": "500",
    "kinesis.getRecords.fetchIntervalMs": "400",
    "kinesis.failOnDataLoss": "false",
    "kinesis.maxFetchRecordsPerShard": "300",
}
DATABRICKS = {
    "streamARN": STREAM_ARN,
    "endpointUrl": "https://kinesis.eu-west-1.amazonaws.com",
    "awsAccessKey": "AKIDEXAMPLE",
    "awsSecretKey": SECRET,
    "sessionToken": TOKEN,
    "roleArn": ROLE,
    "initialPosition": "earliest",
    "maxRecordsPerFetch": "500",
    "minFetchPeriod": "400ms",
    "failOnDataLoss": "false",
    "maxRecordsPerShard": "300",
}


def parse(**options: str) -> KinesisOptions:
    return KinesisOptions.parse({"streamName": "events", **options})


def error_of(**options: str) -> str:
    with pytest.raises(KinesisOptionError) as caught:
        KinesisOptions.parse(options)
    return str(caught.value)


def test_qubole_dialect_maps_to_fields() -> None:
    options = KinesisOptions.parse(QUBOLE)
    assert (
        options.stream_name,
        options.endpoint_url,
        options.region,
        options.access_key_id,
        options.secret_access_key,
        options.session_token,
        options.role_arn,
        options.starting_position,
        options.max_records_per_fetch,
        options.min_fetch_period_s,
        options.fail_on_data_loss,
        options.max_records_per_shard,
    ) == (
        "events",
        "https://kinesis.eu-west-1.amazonaws.com",
        "eu-west-1",
        "AKIDEXAMPLE",
        SECRET,
        TOKEN,
        ROLE,
        Position("TRIM_HORIZON"),
        500,
        0.4,
        False,
        300,
    )


def test_aws_connector_dialect_means_the_same() -> None:
    assert KinesisOptions.parse(AWS_CONNECTOR) == KinesisOptions.parse(QUBOLE)


def test_databricks_dialect_means_the_same() -> None:
    assert KinesisOptions.parse(DATABRICKS) == KinesisOptions.parse(QUBOLE)


def test_rate_and_duration_are_parsed() -> None:
    options = parse(maxFetchRate="1.5", maxFetchDuration="5s")
    assert (options.max_fetch_rate_mb, options.max_fetch_duration_s) == (1.5, 5.0)


def test_stream_arn_gives_name_and_region() -> None:
    options = KinesisOptions.parse({"streamARN": STREAM_ARN})
    assert (options.stream_name, options.region) == ("events", "eu-west-1")


def test_stream_arn_of_another_partition_is_accepted() -> None:
    arn = "arn:aws-cn:kinesis:cn-north-1:123456789012:stream/orders.v2"
    options = KinesisOptions.parse({"streamARN": arn})
    assert (options.stream_name, options.region) == ("orders.v2", "cn-north-1")


def test_stream_arn_and_matching_stream_name_are_accepted() -> None:
    assert parse(streamARN=STREAM_ARN).stream_name == "events"


def test_stream_arn_naming_another_stream_is_rejected() -> None:
    message = error_of(streamName="other", streamARN=STREAM_ARN)
    assert "'other'" in message
    assert STREAM_ARN in message


def test_malformed_stream_arn_is_rejected() -> None:
    assert "not a Kinesis stream ARN" in error_of(streamARN="arn:aws:sqs:eu-west-1:1:queue")


def test_option_names_are_case_insensitive() -> None:
    options = KinesisOptions.parse(
        {"STREAMNAME": "events", "Kinesis.Region": "eu-west-1", "INITIALposition": "latest"}
    )
    assert (options.stream_name, options.region, options.starting_position) == (
        "events",
        "eu-west-1",
        Position("LATEST"),
    )


def test_defaults() -> None:
    options = parse()
    assert (
        options.starting_position,
        options.max_records_per_fetch,
        options.max_fetch_duration_s,
        options.min_fetch_period_s,
        options.fail_on_data_loss,
        options.region,
        options.endpoint_url,
    ) == (Position("LATEST"), MAX_RECORDS_PER_FETCH, None, 0.25, True, None, None)


def test_unknown_option_is_named_with_the_accepted_names() -> None:
    message = error_of(streamName="events", startingPositon="LATEST")
    assert "'startingPositon'; did you mean startingPosition or" in message
    assert "kinesis.streamName" in message
    assert "streamARN" in message


def test_conflicting_spellings_are_rejected() -> None:
    message = error_of(streamName="a", **{"kinesis.streamName": "b"})
    assert "conflicts" in message
    assert "kinesis.streamName" in message


def test_same_value_under_two_spellings_is_accepted() -> None:
    assert parse(region="eu-west-1", regionName="eu-west-1").region == "eu-west-1"


def test_key_without_secret_is_rejected() -> None:
    assert "awsSecretKey" in error_of(streamName="events", awsAccessKeyId="AKIDEXAMPLE")


def test_secret_without_key_is_rejected() -> None:
    assert "awsAccessKeyId" in error_of(streamName="events", awsSecretKey=SECRET)


def test_missing_stream_is_rejected() -> None:
    message = error_of(region="eu-west-1")
    assert "streamName" in message
    assert "streamARN" in message


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("maxRecordsPerFetch", "many"),
        ("maxRecordsPerFetch", "0"),
        ("maxRecordsPerFetch", "1.5"),
        ("maxRecordsPerTrigger", "-3"),
        ("kinesis.maxFetchRecordsPerShard", "x"),
        ("kinesis.getRecords.fetchIntervalMs", "soon"),
        ("kinesis.executor.idleTimeBetweenReadsInMs", "-1"),
        ("maxFetchRate", "0"),
        ("maxFetchRate", "fast"),
        ("minFetchPeriod", "1h"),
        ("maxFetchDuration", "-2s"),
        ("maxFetchDuration", "soon"),
        ("maxFetchDuration", "0s"),
        ("failOnDataLoss", "yes"),
        ("readRetryDeadline", "soon"),
        ("readRetryDeadline", "0s"),
        ("metadataPath", "hdfs://namenode/ends"),
        ("metadataPath", "s3:///no-bucket"),
        ("kinesis.metadataPath", " "),
    ],
)
def test_bad_value_names_the_option(name: str, value: str) -> None:
    message = error_of(streamName="events", **{name: value})
    assert name.removeprefix("kinesis.") in message
    assert repr(value) in message


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ("/shared/ends", "/shared/ends"),
        ("file:///mnt/efs/ends", "/mnt/efs/ends"),
        ("s3://bucket/checkpoints/kinesis-ends", "s3://bucket/checkpoints/kinesis-ends"),
        ("s3a://bucket/ends/", "s3a://bucket/ends/"),
    ],
)
def test_metadata_path_is_a_shared_directory_or_an_s3_prefix(value: str, path: str) -> None:
    assert parse(metadataPath=value).metadata_path == path


def test_s3_notes_go_to_s3_endpoint_url_else_to_a_non_aws_endpoint_url() -> None:
    from pyspark_kinesis.client import make_s3_client

    def s3_endpoint(**options: str) -> str:
        given = {"metadataPath": "s3://bucket/ends", "region": "eu-west-1", **options}
        return str(make_s3_client(parse(**given)).meta.endpoint_url)

    assert s3_endpoint(endpointUrl="http://127.0.0.1:4566") == "http://127.0.0.1:4566"
    assert s3_endpoint(
        endpointUrl="http://127.0.0.1:4567", s3EndpointUrl="http://127.0.0.1:4566"
    ) == ("http://127.0.0.1:4566")
    aws_kinesis = "https://kinesis.eu-west-1.amazonaws.com"
    assert s3_endpoint(endpointUrl=aws_kinesis) == "https://s3.eu-west-1.amazonaws.com"


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("200ms", 0.2), ("2s", 2.0), ("1.5", 1.5), ("3 sec", 3.0), ("1m", 60.0), ("2 MINUTES", 120.0)],
)
def test_durations(value: str, seconds: float) -> None:
    assert parse(minFetchPeriod=value).min_fetch_period_s == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("value", "expected"), [("TRUE", True), ("false", False), (" True ", True)]
)
def test_booleans(value: str, expected: bool) -> None:
    assert parse(failOnDataLoss=value).fail_on_data_loss is expected


def test_max_records_per_fetch_is_capped_at_the_kinesis_limit() -> None:
    assert parse(maxRecordsPerFetch="20000").max_records_per_fetch == MAX_RECORDS_PER_FETCH


def test_counts_are_parsed() -> None:
    options = parse(maxRecordsPerTrigger="1000", maxRecordsPerShard="300")
    assert (options.max_records_per_trigger, options.max_records_per_shard) == (1000, 300)


def test_repr_hides_credentials() -> None:
    shown = repr(KinesisOptions.parse({**QUBOLE, "awsSTSExternalId": "external-42"}))
    for secret in (SECRET, TOKEN, "AKIDEXAMPLE", "external-42"):
        assert secret not in shown


@pytest.mark.parametrize(
    "options",
    [
        {"awsSecretKey": SECRET, "kinesis.awsSecretKey": "other-" + SECRET},
        {"sessionToken": TOKEN, "kinesis.sessionToken": "other-" + TOKEN},
        {"awsSecretKey": SECRET},
        {"awsSecretKey": SECRET, "sessionToken": TOKEN, "bogus": "1"},
        {"awsSecretKey": SECRET, "sessionToken": TOKEN, "maxFetchRate": "x"},
    ],
)
def test_errors_never_show_secrets(options: dict[str, str]) -> None:
    message = error_of(streamName="events", **options)
    assert SECRET not in message
    assert TOKEN not in message


@pytest.mark.parametrize(
    "options",
    [
        {"awsAccessKeyId": "AKIDEXAMPLE", "awsAccessKey": "AKIDOTHER", "awsSecretKey": SECRET},
        {"awsSTSExternalId": "AKIDEXAMPLE", "roleExternalId": "AKIDOTHER"},
    ],
)
def test_errors_never_show_values_hidden_from_repr(options: dict[str, str]) -> None:
    message = error_of(streamName="events", **options)
    assert "AKIDEXAMPLE" not in message
    assert "AKIDOTHER" not in message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("TRIM_HORIZON", Position("TRIM_HORIZON")),
        ("EARLIEST", Position("TRIM_HORIZON")),
        ("earliest", Position("TRIM_HORIZON")),
        ("LATEST", Position("LATEST")),
        ("AT_TIMESTAMP:1704067200", at_timestamp(NEW_YEAR_2024)),
        ("AT_TIMESTAMP:2024-01-01T00:00:00Z", at_timestamp(NEW_YEAR_2024)),
        ("at_timestamp:2024-01-01T01:00:00+01:00", at_timestamp(NEW_YEAR_2024)),
    ],
)
def test_starting_positions(value: str, expected: Position) -> None:
    assert parse(startingPosition=value).starting_position == expected


@pytest.mark.parametrize("timestamp", ["2024-01-01T00:00:00Z", "1704067200", "1704067200.0"])
def test_at_timestamp_takes_starting_timestamp(timestamp: str) -> None:
    options = parse(startingPosition="AT_TIMESTAMP", startingTimestamp=timestamp)
    assert options.starting_position == at_timestamp(NEW_YEAR_2024)


@pytest.fixture
def driver_in_new_york() -> Iterator[None]:
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    yield
    if saved is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = saved
    time.tzset()


@pytest.mark.usefixtures("driver_in_new_york")
def test_starting_time_without_a_zone_means_utc() -> None:
    options = parse(startingPosition="AT_TIMESTAMP", startingTimestamp="2024-01-01T00:00:00")
    assert options.starting_position == at_timestamp(NEW_YEAR_2024)


def test_at_timestamp_without_a_time_is_rejected() -> None:
    assert "startingTimestamp" in error_of(streamName="events", startingPosition="AT_TIMESTAMP")


@pytest.mark.parametrize("timestamp", ["nan", "inf", "-inf"])
def test_non_finite_starting_time_is_rejected(timestamp: str) -> None:
    message = error_of(
        streamName="events", startingPosition="AT_TIMESTAMP", startingTimestamp=timestamp
    )
    assert "startingPosition" in message


def test_unparseable_starting_time_is_rejected() -> None:
    message = error_of(
        streamName="events", startingPosition="AT_TIMESTAMP", startingTimestamp="yesterday"
    )
    assert "'yesterday'" in message


def test_unknown_starting_position_is_rejected() -> None:
    assert "startingPosition" in error_of(streamName="events", startingPosition="OLDEST")


@pytest.mark.parametrize(
    "time",
    [
        '"01/01/2024 00:00:00 UTC"',
        '"12/31/2023 16:00:00 PST"',
        '"2024-01-01T00:00:00Z"',
        "1704067200",
    ],
)
def test_databricks_at_timestamp_json(time: str) -> None:
    options = parse(initialPosition=f'{{"at_timestamp": {time}}}')
    assert (options.starting_position, options.shard_starting_positions) == (
        at_timestamp(NEW_YEAR_2024),
        {},
    )


def test_per_shard_json_positions_with_a_default() -> None:
    options = parse(
        startingPosition='{"shardId-000000000001": "AT_SEQUENCE_NUMBER:4960", '
        '"shardId-000000000002": "AFTER_SEQUENCE_NUMBER:4961", "*": "LATEST"}'
    )
    assert options.starting_position == Position("LATEST")
    assert options.shard_starting_positions == {
        "shardId-000000000001": Position("AT_SEQUENCE_NUMBER", "4960"),
        "shardId-000000000002": Position("AFTER_SEQUENCE_NUMBER", "4961"),
    }


def test_per_shard_json_defaults_to_trim_horizon() -> None:
    options = parse(startingPosition='{"shardId-000000000001": "LATEST"}')
    assert options.starting_position == Position("TRIM_HORIZON")


def test_starting_position_for_a_shard() -> None:
    options = parse(startingPosition='{"shardId-1": "AT_SEQUENCE_NUMBER:7", "*": "LATEST"}')
    assert (options.starting_position_for("shardId-1"), options.starting_position_for("x")) == (
        Position("AT_SEQUENCE_NUMBER", "7"),
        Position("LATEST"),
    )


def test_per_shard_json_bad_position_names_the_shard() -> None:
    message = error_of(streamName="events", startingPosition='{"shardId-7": "AT_SEQUENCE_NUMBER"}')
    assert "shardId-7" in message


@pytest.mark.parametrize("value", ["{not json", '{"a": 1'])
def test_invalid_json_position_is_rejected(value: str) -> None:
    assert "not valid JSON" in error_of(streamName="events", startingPosition=value)


def test_a_region_that_contradicts_the_stream_arn_is_rejected() -> None:
    message = error_of(
        streamARN="arn:aws:kinesis:eu-west-1:123456789012:stream/events", region="us-east-1"
    )
    assert "differs from streamARN's region 'eu-west-1'" in message
