"""Every source option the peers document: the same thing here, accepted and not needed, or refused.

The lists below are the peers' own documentation: qubole's README and its
KinesisSourceProvider, the AWS connector's README and KinesisOptions.scala, and
Databricks' "Connect to Amazon Kinesis" and enhanced fan-out pages.
"""

from __future__ import annotations

import logging
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs

import pytest
from botocore.exceptions import ClientError
from pyspark_kinesis import extra_options, peer_options
from pyspark_kinesis import options as options_module
from pyspark_kinesis.client import make_client
from pyspark_kinesis.options import DEFAULT_MIN_FETCH_PERIOD_S, KinesisOptionError, KinesisOptions
from pyspark_kinesis.positions import Position

pytestmark = pytest.mark.unit

ROLE = "arn:aws:iam::123456789012:role/reader"

# Peer option -> a value its documentation allows, and what it becomes here (field, value).
SAME_THING: list[tuple[str, str, str, object]] = [
    # qubole
    ("streamName", "events", "stream_name", "events"),
    ("endpointUrl", "http://127.0.0.1:4566", "endpoint_url", "http://127.0.0.1:4566"),
    ("regionName", "eu-west-1", "region", "eu-west-1"),
    ("awsSTSRoleARN", ROLE, "role_arn", ROLE),
    ("awsSTSSessionName", "reader", "role_session_name", "reader"),
    ("startingPosition", "trim_horizon", "starting_position", Position("TRIM_HORIZON")),
    ("failondataloss", "false", "fail_on_data_loss", False),
    ("kinesis.executor.maxFetchRecordsPerShard", "300", "max_records_per_shard", 300),
    ("kinesis.executor.maxRecordPerRead", "500", "max_records_per_fetch", 500),
    ("sessionToken", "token", "session_token", "token"),
    ("kinesis.client.describeShardInterval", "1s", "shard_listing_interval_s", 1.0),
    # the AWS connector
    ("kinesis.endpointUrl", "http://127.0.0.1:4566", "endpoint_url", "http://127.0.0.1:4566"),
    ("kinesis.region", "eu-west-1", "region", "eu-west-1"),
    ("kinesis.kinesisRegion", "eu-west-1", "region", "eu-west-1"),
    ("kinesis.streamName", "events", "stream_name", "events"),
    ("kinesis.failOnDataLoss", "false", "fail_on_data_loss", False),
    ("kinesis.maxFetchRecordsPerShard", "300", "max_records_per_shard", 300),
    ("kinesis.startingPosition", "EARLIEST", "starting_position", Position("TRIM_HORIZON")),
    ("kinesis.metadataPath", "/shared/ends", "metadata_path", "/shared/ends"),
    ("kinesis.stsRoleArn", ROLE, "role_arn", ROLE),
    ("kinesis.stsSessionName", "reader", "role_session_name", "reader"),
    ("kinesis.stsEndpointUrl", "https://sts.eu-west-1.amazonaws.com", "sts_endpoint_url",
     "https://sts.eu-west-1.amazonaws.com"),
    ("kinesis.sessionToken", "token", "session_token", "token"),
    ("kinesis.getRecords.numberOfRecordsPerFetch", "500", "max_records_per_fetch", 500),
    ("kinesis.getRecords.fetchIntervalMs", "200", "min_fetch_period_s", 0.2),
    ("kinesis.describeShardInterval", "100ms", "shard_listing_interval_s", 0.1),
    # Databricks
    ("shardFetchInterval", "2m", "shard_listing_interval_s", 120.0),
    ("endpoint", "http://127.0.0.1:4566", "endpoint_url", "http://127.0.0.1:4566"),
    ("stsEndpoint", "https://sts.eu-west-1.amazonaws.com", "sts_endpoint_url",
     "https://sts.eu-west-1.amazonaws.com"),
    ("streamARN", "arn:aws:kinesis:eu-west-1:123456789012:stream/events", "stream_name", "events"),
    ("region", "eu-west-1", "region", "eu-west-1"),
    ("initialPosition", "latest", "starting_position", Position("LATEST")),
    ("maxRecordsPerFetch", "500", "max_records_per_fetch", 500),
    ("maxFetchRate", "1.5", "max_fetch_rate_mb", 1.5),
    ("minFetchPeriod", "400ms", "min_fetch_period_s", 0.4),
    ("maxFetchDuration", "2m", "max_fetch_duration_s", 120.0),
    ("shardsPerTask", "5", "shards_per_task", 5),
    ("roleArn", ROLE, "role_arn", ROLE),
    ("roleSessionName", "reader", "role_session_name", "reader"),
    ("roleExternalId", "external", "role_external_id", "external"),
    ("kinesis.consumerType", "GetRecords", "consumer_mode", "polling"),
    ("consumerMode", "polling", "consumer_mode", "polling"),
    ("kinesis.consumerName", "TestConsumer", "consumer_name", "TestConsumer"),
    ("consumerName", "orders-reader", "consumer_name", "orders-reader"),
    ("registerConsumerTimeoutInterval", "60s", "register_consumer_timeout_s", 60.0),
    ("requireConsumerDeregistration", "true", "require_consumer_deregistration", True),
    ("requireConsumerDeregistration", "false", "require_consumer_deregistration", False),
    ("fetchBufferSize", "20gb", "fetch_buffer_bytes", 20 * 1024**3),
]  # fmt: skip

# Peer option -> a value its documentation allows; accepted here and changing nothing.
NOT_NEEDED: list[tuple[str, str]] = [
    ("awsUseInstanceProfile", "false"),
    ("kinesis.executor.maxFetchTimeInMs", "1000"),
    ("kinesis.client.numRetries", "3"),
    ("kinesis.client.retryIntervalMs", "1000"),
    ("kinesis.client.maxRetryIntervalMs", "10000"),
    ("kinesis.client.avoidEmptyBatches", "true"),
    ("kinesis.maxFetchTimePerShardSec", "10"),
    ("kinesis.minBatchesToRetain", "100"),
    ("kinesis.checkNewRecordThreads", "8"),
    ("kinesis.metadataCommitterType", "HDFS"),
    ("kinesis.metadataNumRetries", "5"),
    ("kinesis.metadataRetryIntervalsMs", "1000"),
    ("kinesis.metadataMaxRetryIntervalMs", "10000"),
    ("kinesis.clientNumRetries", "5"),
    ("kinesis.clientRetryIntervalsMs", "1000"),
    ("kinesis.clientMaxRetryIntervalMs", "10000"),
    ("kinesis.subscribeToShard.timeoutSec", "60"),
    ("kinesis.subscribeToShard.maxRetries", "10"),
    ("kinesis.internal.dataQueueCapacity", "1000"),
    ("kinesis.internal.maxDataQueueEmptyCount", "2"),
    ("kinesis.internal.dataQueueWaitTimeoutSec", "5"),
    ("kinesis.internal.maintenanceTaskIntervalSec", "100"),
    ("kinesis.internal.avoidEmptyBatches", "true"),
    ("consumerNamePrefix", "team_"),
    ("consumerRefreshInterval", "300s"),
    ("registeredConsumerId", "databricks_orders-reader"),
    ("registeredConsumerIdType", "name"),
    ("registeredConsumerIdType", "ARN"),
    ("maxShardsPerDescribe", "1000"),
    ("coalesceThresholdBlockSize", "10000000"),
    ("coalesceBinSize", "128000000"),
    ("maxPartitions", "8"),
    # the peers' sink options (their README's sink tables) that change nothing here
    ("kinesis.sink.flushWaitTimeMs", "100"),
    ("kinesis.sink.recordMaxBufferedTimeMs", "1000"),
    ("kinesis.sink.recordTtl", "30000"),
    ("kinesis.executor.recordMaxBufferedTime", "1000"),
    ("kniesis.executor.flushwaittimemillis", "100"),
]

# Peer option and value -> words the refusal must hold (what to use instead).
REFUSED: list[tuple[str, str, str]] = [
    ("kinesis.metadataCommitterType", "DYNAMODB", "kinesis.metadataPath"),
    ("kinesis.dynamodb.tableName", "kinesisTestMetadata", "kinesis.metadataPath"),
    ("kinesis.credentialProviderClass", "com.example.Provider", "kinesis.stsRoleArn"),
    ("kinesis.credentialProviderParam", "x", "kinesis.awsAccessKeyId"),
    ("serviceCredential", "my-credential", "roleArn"),
    # the AWS connector's sink proxy (KinesisOptions.scala, not its README)
    ("kinesis.sink.proxyAddress", "proxy.example.com", "HTTPS_PROXY"),
    ("kinesis.sink.proxyPort", "3128", "HTTPS_PROXY"),
    ("kinesis.sink.proxyUsername", "user", "HTTPS_PROXY"),
    ("kinesis.sink.proxyPassword", "secret", "HTTPS_PROXY"),
]


def parse(**options: str) -> KinesisOptions:
    return KinesisOptions.parse({"streamName": "events", **options})


@pytest.mark.parametrize(("name", "value", "field", "expected"), SAME_THING)
def test_documented_option_means_the_same_here(
    name: str, value: str, field: str, expected: object
) -> None:
    options = KinesisOptions.parse(
        {name: value} if "stream" in name.lower() else {"streamName": "events", name: value}
    )
    assert getattr(options, field) == expected


@pytest.mark.parametrize(("name", "value"), NOT_NEEDED)
def test_documented_option_is_accepted_and_changes_nothing(name: str, value: str) -> None:
    assert parse(**{name: value}) == parse()


@pytest.mark.parametrize(("name", "value"), NOT_NEEDED)
def test_an_option_not_needed_is_said_once_in_the_log_with_why(
    name: str, value: str, caplog: pytest.LogCaptureFixture
) -> None:
    peer_options._said.discard(name.lower())
    with caplog.at_level(logging.WARNING, logger=peer_options.__name__):
        parse(**{name: value})
        parse(**{name: value})
    said = [record.getMessage() for record in caplog.records]
    assert len(said) == 1
    assert f"option {name!r} is accepted and not needed: " in said[0]


@pytest.mark.parametrize(("name", "value", "instead"), REFUSED)
def test_documented_option_asking_for_a_missing_feature_is_refused(
    name: str, value: str, instead: str
) -> None:
    with pytest.raises(KinesisOptionError, match="not supported") as caught:
        parse(**{name: value})
    assert name in str(caught.value)
    assert instead in str(caught.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("awsUseInstanceProfile", "1"),
        ("registeredConsumerIdType", "id"),
    ],
)
def test_an_undocumented_value_of_an_option_not_needed_is_refused(name: str, value: str) -> None:
    with pytest.raises(KinesisOptionError, match="must be one of"):
        parse(**{name: value})


def test_no_documented_name_is_unknown() -> None:
    names = (
        [row[0] for row in SAME_THING]
        + [row[0] for row in NOT_NEEDED]
        + [row[0] for row in REFUSED]
    )
    for name in names:
        try:
            parse(**{name: "x"})
        except KinesisOptionError as error:
            assert "unknown option" not in str(error), name


def test_kinesis_region_is_the_streams_where_kinesis_region_is_the_connectors() -> None:
    options = parse(**{"kinesis.region": "us-east-1", "kinesis.kinesisRegion": "eu-west-1"})
    assert options.region == "eu-west-1"


@pytest.mark.parametrize(
    ("endpoint", "region"),
    [
        ("https://kinesis.us-east-2.amazonaws.com", "us-east-2"),
        ("https://kinesis-fips.us-gov-west-1.amazonaws.com", "us-gov-west-1"),
        ("https://vpce-0a1b.kinesis.eu-central-1.vpce.amazonaws.com", "eu-central-1"),
        ("https://kinesis.cn-north-1.amazonaws.com.cn", "cn-north-1"),
        ("http://127.0.0.1:4566", None),
    ],
)
def test_the_region_is_taken_from_a_kinesis_endpoint_as_the_peers_do(
    endpoint: str, region: str | None
) -> None:
    assert parse(endpointUrl=endpoint).region == region


def test_qubole_idle_time_counts_only_with_add_idle_time() -> None:
    idle = {"kinesis.executor.idleTimeBetweenReadsInMs": "600"}
    assert parse(**idle).min_fetch_period_s == DEFAULT_MIN_FETCH_PERIOD_S
    added = parse(**idle, **{"kinesis.executor.addIdleTimeBetweenReads": "true"})
    assert added.min_fetch_period_s == 0.6


def test_qubole_add_idle_time_alone_waits_its_default_second() -> None:
    options = parse(**{"kinesis.executor.addIdleTimeBetweenReads": "true"})
    assert options.min_fetch_period_s == 1.0


def test_two_spellings_of_the_fetch_period_are_refused() -> None:
    with pytest.raises(KinesisOptionError, match="once"):
        parse(minFetchPeriod="1s", **{"kinesis.getRecords.fetchIntervalMs": "200"})


def test_databricks_list_of_streams_reads_each_stream() -> None:
    options = KinesisOptions.parse({"streamName": "orders, payments"})
    assert options.stream_names == ("orders", "payments")


def test_the_readme_lists_every_option_and_what_it_does() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    listed = set(re.findall(r"`([A-Za-z][\w.]*)`", readme))
    aliases = {
        alias
        for table in (options_module._ALIASES, extra_options._ALIASES)
        for names in table.values()
        for alias in names
    }
    documented = {row[0] for row in SAME_THING} | {row[0] for row in NOT_NEEDED}
    refused = {row[0] for row in REFUSED}
    assert sorted((aliases | documented | refused) - listed) == []
    reasons = {entry.why for entry in peer_options.NOT_NEEDED.values()}
    assert [why for why in reasons if why not in readme] == []


class _StsRecorder(BaseHTTPRequestHandler):
    """An STS endpoint on loopback that notes each request's Action and refuses it, as STS
    refuses an unknown role."""

    actions: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        self.actions.extend(parse_qs(body).get("Action", []))
        error = (
            b"<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>"
            b"<Message>not authorized</Message></Error></ErrorResponse>"
        )
        self.send_response(403)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(error)))
        self.end_headers()
        self.wfile.write(error)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_kinesis_sts_endpoint_url_is_where_the_role_is_assumed() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StsRecorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        options = parse(
            region="us-east-1",
            endpointUrl="http://127.0.0.1:9",
            awsAccessKeyId="AKIDEXAMPLE",
            awsSecretKey="secret",
            **{
                "kinesis.stsRoleArn": ROLE,
                "kinesis.stsEndpointUrl": f"http://127.0.0.1:{server.server_address[1]}",
            },
        )
        with pytest.raises(ClientError):
            make_client(options).list_shards(StreamName="events")
    finally:
        server.shutdown()
        server.server_close()
    assert _StsRecorder.actions == ["AssumeRole"]
