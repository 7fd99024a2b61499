"""The Kinesis client, the start-up check of the stream, and errors turned into one actionable line.

Creating a stream costs money on real AWS, so it happens only when
PRODUCER_CREATE_STREAM asks for it; otherwise a missing stream stops the
producer at start-up. Start-up failures are not retried in a loop: a wrong
name, region or credential does not fix itself.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import boto3
import localstack_client.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from producer.settings import ProducerSettings

log = logging.getLogger(__name__)

ACTIVE_DEADLINE_S = 300.0
ACTIVE_POLL_S = 0.5
_CREDENTIAL_ERRORS = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "ExpiredTokenException",
        "AccessDeniedException",
        "InvalidClientTokenId",
    }
)


class ProducerError(RuntimeError):
    """The producer cannot go on; the message says what to change."""


class StartupError(ProducerError):
    """Nothing was sent: the configuration or the stream is wrong (exit code 2)."""


def make_client(settings: ProducerSettings, *, localstack: bool = False) -> Any:
    """A Kinesis client; credentials come from boto3's default chain, never from settings.

    With `localstack`, the client localstack-client builds instead: LocalStack at
    LOCALSTACK_HOST (default localhost:4566, the stack's published port) with
    the emulator's dummy keys, for the CLI run from the host.
    """
    config = Config(
        # botocore retries throttled or dropped calls a few times; the writer's own
        # deadline (PRODUCER_MAX_RETRY_SECONDS) covers longer outages.
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=5,
        read_timeout=30,
    )
    if localstack:
        session = localstack_client.session.Session(region_name=settings.aws_region)
        return session.client("kinesis", config=config)
    return boto3.client(
        "kinesis",
        region_name=settings.aws_region,
        endpoint_url=settings.kinesis_endpoint_url,
        config=config,
    )


def explain(error: Exception, settings: ProducerSettings) -> str:
    """One actionable sentence for an error Kinesis or botocore gave the producer."""
    stream, region = settings.kinesis_stream_name, settings.aws_region
    code = error.response["Error"]["Code"] if isinstance(error, ClientError) else ""
    if code == "ResourceNotFoundException":
        return missing_stream(settings)
    if isinstance(error, NoCredentialsError) or code in _CREDENTIAL_ERRORS:
        return (
            f"AWS refused the credentials ({code or 'none found'}) in region {region!r}: provide "
            "them through the default chain (AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
            f"or a role) with kinesis:PutRecords on stream {stream!r}, and check AWS_REGION"
        )
    if isinstance(error, BotoCoreError):
        where = settings.kinesis_endpoint_url or f"AWS region {region!r}"
        return (
            f"cannot reach Kinesis at {where} ({error}): check KINESIS_ENDPOINT_URL and AWS_REGION"
        )
    return f"Kinesis refused the request on stream {stream!r}: {error}"


def missing_stream(settings: ProducerSettings) -> str:
    return (
        f"stream {settings.kinesis_stream_name!r} does not exist in region "
        f"{settings.aws_region!r}: check KINESIS_STREAM_NAME and AWS_REGION (and "
        "KINESIS_ENDPOINT_URL), or set PRODUCER_CREATE_STREAM=true to create it"
    )


def ensure_stream(client: Any, settings: ProducerSettings) -> None:
    """Returns once the stream is ACTIVE, creating it only if PRODUCER_CREATE_STREAM says so.

    Raises StartupError with one actionable line otherwise.
    """
    name = settings.kinesis_stream_name
    try:
        status = _stream_status(client, name)
        if status is None:
            if not settings.producer_create_stream:
                raise StartupError(missing_stream(settings))
            _create(client, settings)
        wait_until_active(client, name)
    except (ClientError, BotoCoreError) as error:
        raise StartupError(explain(error, settings)) from None


def _stream_status(client: Any, name: str) -> str | None:
    """The stream's status, or None if it does not exist."""
    try:
        summary = client.describe_stream_summary(StreamName=name)
    except ClientError as error:
        if error.response["Error"]["Code"] == "ResourceNotFoundException":
            return None
        raise
    return str(summary["StreamDescriptionSummary"]["StreamStatus"])


def _create(client: Any, settings: ProducerSettings) -> None:
    name, shards = settings.kinesis_stream_name, settings.kinesis_shard_count
    log.info("creating stream %s with %d shards (PRODUCER_CREATE_STREAM=true)", name, shards)
    try:
        client.create_stream(StreamName=name, ShardCount=shards)
    except ClientError as error:
        # Another producer created it between our check and our call: just use it.
        if error.response["Error"]["Code"] != "ResourceInUseException":
            raise


def wait_until_active(client: Any, name: str) -> None:
    """Returns once the stream is ACTIVE (created, or done resharding), within 300 s."""
    deadline = time.monotonic() + ACTIVE_DEADLINE_S
    while (status := _stream_status(client, name)) != "ACTIVE":
        if status in (None, "DELETING") or time.monotonic() > deadline:
            raise StartupError(
                f"stream {name!r} is {status or 'gone'}, not ACTIVE: wait for it or recreate it"
            )
        time.sleep(ACTIVE_POLL_S)
