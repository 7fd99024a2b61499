"""How the consumer's environment becomes a Kinesis client: endpoint, region, credentials.

No network: these check what the client would call and sign with, so they hold
for real AWS as much as for LocalStack.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from consumer.settings import ConsumerSettings
from pyspark_kinesis import KinesisOptions
from pyspark_kinesis.client import KinesisSourceError, make_client

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def clean_aws_environment(monkeypatch, tmp_path: Path) -> None:
    """No AWS variable or file of the machine's leaks into these tests."""
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "KINESIS_ENDPOINT_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def client_for(**environment: str):
    settings = ConsumerSettings(**environment)
    return make_client(KinesisOptions.parse(settings.source_options()))


def access_key(client) -> str | None:
    credentials = client._request_signer._credentials
    return None if credentials is None else credentials.get_frozen_credentials().access_key


def test_an_endpoint_means_that_endpoint(monkeypatch):
    client = client_for(kinesis_endpoint_url="http://localstack:4566")
    assert client.meta.endpoint_url == "http://localstack:4566"


def test_no_endpoint_means_the_regions_aws_endpoint():
    client = client_for(aws_region="eu-west-1")
    assert client.meta.endpoint_url == "https://kinesis.eu-west-1.amazonaws.com"


def test_aws_region_decides_the_region_over_the_sdk_default(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    assert ConsumerSettings().aws_region == "eu-central-1"
    assert client_for().meta.region_name == "eu-central-1"


def test_the_region_defaults_to_us_east_1():
    assert client_for().meta.region_name == "us-east-1"


def test_credentials_come_from_the_shared_file_and_profile(monkeypatch, tmp_path: Path):
    (tmp_path / "credentials").write_text(
        "[dev]\naws_access_key_id = FROMPROFILE\naws_secret_access_key = secret\n"
    )
    monkeypatch.setenv("AWS_PROFILE", "dev")
    assert access_key(client_for()) == "FROMPROFILE"


def test_environment_keys_win_over_the_profile(monkeypatch, tmp_path: Path):
    (tmp_path / "credentials").write_text(
        "[default]\naws_access_key_id = FROMFILE\naws_secret_access_key = secret\n"
    )
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "FROMENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    assert access_key(client_for()) == "FROMENV"


def test_source_options_win_over_the_environment(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "FROMENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    options = KinesisOptions.parse(
        {
            "streamName": "events",
            "region": "us-east-1",
            "awsAccessKeyId": "FROMOPTION",
            "awsSecretKey": "secret",
        }
    )
    assert access_key(make_client(options)) == "FROMOPTION"


def test_a_source_without_any_region_says_what_to_set():
    with pytest.raises(KinesisSourceError, match="no AWS region: set the region option"):
        make_client(KinesisOptions.parse({"streamName": "events"}))


def test_no_credentials_anywhere_means_none():
    assert access_key(client_for()) is None


def test_the_consumer_never_puts_credentials_in_source_options(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "FROMENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    options = ConsumerSettings().source_options()
    assert not {"awsAccessKeyId", "awsSecretKey"} & set(options)
    assert "endpointUrl" not in options


@pytest.mark.parametrize(
    ("checkpoint", "notes"),
    [
        ("/data/checkpoints", "/data/checkpoints/kinesis-ends"),
        ("s3://bucket/checkpoints/", "s3://bucket/checkpoints/kinesis-ends"),
        ("s3a://bucket/checkpoints", "s3a://bucket/checkpoints/kinesis-ends"),
        ("hdfs://namenode/checkpoints", None),
    ],
)
def test_batch_end_notes_go_beside_a_local_or_s3_checkpoint(checkpoint: str, notes: str | None):
    options = ConsumerSettings(consumer_checkpoint_path=checkpoint).source_options()
    assert options.get("metadataPath") == notes
    KinesisOptions.parse(options)  # the source takes it


@pytest.mark.parametrize(
    ("checkpoint", "local"),
    [
        ("/data/checkpoints", True),
        ("checkpoints", True),
        ("file:/data/checkpoints", True),
        ("file:///data/checkpoints", True),
        ("s3a://bucket/checkpoints", False),
        ("hdfs://namenode/checkpoints", False),
    ],
)
def test_a_path_or_file_uri_is_a_checkpoint_on_local_disk(checkpoint: str, local: bool):
    # Only there does the consumer pick Spark's FileSystem-based checkpoint manager.
    assert ConsumerSettings(consumer_checkpoint_path=checkpoint).checkpoint_on_local_disk is local


def test_the_per_trigger_limit_is_the_sources_row_limit():
    # The source counts rows, user records after KPL de-aggregation
    # (pyspark-kinesis/tests/test_row_limits.py): so does CONSUMER_MAX_RECORDS_PER_TRIGGER.
    options = ConsumerSettings(consumer_max_records_per_trigger=250).source_options()
    assert KinesisOptions.parse(options).max_records_per_trigger == 250


@pytest.mark.parametrize(("mode", "fan_out"), [("polling", False), ("fan-out", True)])
def test_the_read_mode_turns_enhanced_fan_out_on(mode: str, fan_out: bool):
    options = ConsumerSettings(consumer_read_mode=mode).source_options()
    parsed = KinesisOptions.parse(options)
    assert parsed.fan_out is fan_out
    assert parsed.consumer_name == ("kinesis-stack-consumer" if fan_out else None)
