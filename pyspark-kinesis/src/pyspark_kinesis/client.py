"""A Kinesis client built from the options, and the errors a user can act on.

Clients never travel inside pickled Spark state: each process (the driver's
planner, each Python worker) makes one per identity and endpoint on first use
and keeps it, so a task does not build a client (nor, with a role, call
AssumeRole) per batch; an assumed role's credentials refresh themselves. Throttling
and Kinesis' own 500 and 503 answers (retryable, as AWS documents them) are retried
twice over: botocore's standard mode for brief bursts, then an outer retry with
jittered exponential backoff for sustained ones, so a busy shard or a service
disruption slows a query down instead of failing or skipping data.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import botocore.loaders
import botocore.session
from botocore.config import Config
from botocore.credentials import AssumeRoleCredentialFetcher, DeferredRefreshableCredentials
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError
from tenacity import (
    before_sleep_log,
    retry,
    retry_if_exception,
    stop_after_delay,
    wait_random_exponential,
)

from pyspark_kinesis.options import KinesisOptions

log = logging.getLogger(__name__)

_THROTTLING = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "LimitExceededException",
        # An encrypted stream's reads and writes also wait on KMS' own rate.
        "KMSThrottlingException",
    }
)
_BAD_CREDENTIALS = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "ExpiredTokenException",
        "AccessDeniedException",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
    }
)
# Sustained throttling is waited out this long before the query fails.
THROTTLING_PATIENCE_S = 300.0

T = TypeVar("T")


class KinesisSourceError(RuntimeError):
    """Kinesis refused the query in a way retrying will not fix; the message says what to do."""


def error_code(error: BaseException) -> str:
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code", ""))
    return ""


def _status(error: BaseException) -> int:
    if isinstance(error, ClientError):
        return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return 0


def _is_throttling(error: BaseException) -> bool:
    return error_code(error) in _THROTTLING


def _is_worth_waiting_out(error: BaseException) -> bool:
    """Throttling, or a 5xx answer (InternalFailure, ServiceUnavailable): both pass."""
    return _is_throttling(error) or _status(error) >= 500


@dataclass(frozen=True)
class ClientIdentity:
    """What makes two clients differ: who calls, where, and in which region."""

    region: str | None
    endpoint_url: str | None
    access_key_id: str | None = field(repr=False)
    secret_access_key: str | None = field(repr=False)
    session_token: str | None = field(repr=False)
    role_arn: str | None
    role_session_name: str
    role_external_id: str | None = field(repr=False)
    sts_endpoint_url: str | None

    @classmethod
    def of(cls, options: KinesisOptions) -> ClientIdentity:
        return cls(
            options.region,
            options.endpoint_url,
            options.access_key_id,
            options.secret_access_key,
            options.session_token,
            options.role_arn,
            options.role_session_name,
            options.role_external_id,
            options.sts_endpoint_url,
        )


def make_client(options: KinesisOptions, *, max_attempts: int = 5) -> Any:
    """This process's Kinesis client for the options' identity: explicit keys, an
    assumed role, or the default chain. botocore clients are thread-safe.

    `max_attempts` bounds botocore's own retries; a caller that polls for a
    stream which may not exist yet asks for 1, so each poll answers at once.

    Its records' `ApproximateArrivalTimestamp` is epoch seconds (a float).
    botocore rather than boto3: boto3's import (s3transfer) would add a third of
    a second to every query's start, for nothing the source uses.
    """
    return _client_for(ClientIdentity.of(options), _aws_environment(), max_attempts)


def _aws_environment() -> tuple[tuple[str, str], ...]:
    # The default credential chain and region read these when a client is built.
    return tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_")))


@functools.cache
def _client_for(
    options: ClientIdentity, environment: tuple[tuple[str, str], ...], max_attempts: int
) -> Any:
    """`environment` is part of the cache key only: a changed AWS_* variable gets a new client."""
    session = botocore.session.get_session()
    session.register_component("data_loader", _shared_loader())
    if options.access_key_id and options.secret_access_key:
        session.set_credentials(
            options.access_key_id, options.secret_access_key, options.session_token
        )
    if options.region:
        session.set_config_variable("region", options.region)
    if options.role_arn:
        _assume_role(session, options)
    # Arrival times stay epoch seconds: turning 10,000 of them per call into
    # tz-aware datetimes costs more than the rest of a read.
    parsers = session.get_component("response_parser_factory")
    parsers.set_parser_defaults(timestamp_parser=float)
    config = Config(
        retries={"mode": "standard", "max_attempts": max_attempts},
        connect_timeout=5,
        read_timeout=30,
        max_pool_connections=32,
    )
    try:
        return session.create_client("kinesis", endpoint_url=options.endpoint_url, config=config)
    except NoRegionError as error:
        raise KinesisSourceError(
            "no AWS region: set the region option (or AWS_DEFAULT_REGION, or a profile's region)"
        ) from error


@functools.cache
def _shared_loader() -> Any:
    # Its cache keeps Kinesis' parsed service model: a new session would parse it
    # again, 50 ms of every task's start.
    return botocore.loaders.create_loader()


def _assume_role(session: botocore.session.Session, options: ClientIdentity) -> None:
    # Refreshable, so a query running for days keeps working past the role's hour.
    extra_args = {"RoleSessionName": options.role_session_name}
    if options.role_external_id:
        extra_args["ExternalId"] = options.role_external_id
    client_creator = session.create_client
    if options.sts_endpoint_url:
        client_creator = functools.partial(client_creator, endpoint_url=options.sts_endpoint_url)
    fetcher = AssumeRoleCredentialFetcher(
        client_creator=client_creator,
        source_credentials=session.get_credentials(),
        role_arn=options.role_arn,
        extra_args=extra_args,
    )
    credentials = DeferredRefreshableCredentials(
        method="assume-role", refresh_using=fetcher.fetch_credentials
    )
    session._credentials = credentials  # botocore has no public setter for refreshable ones


def call(options: KinesisOptions, operation: Callable[..., T], **kwargs: Any) -> T:
    """Calls one Kinesis operation, waiting out throttling and explaining fatal errors."""
    try:
        return _call_with_patience(operation, **kwargs)
    except NoCredentialsError as error:
        raise KinesisSourceError(
            "no AWS credentials found: set awsAccessKeyId/awsSecretKey, or provide them "
            "through the default chain (AWS_ACCESS_KEY_ID, AWS_PROFILE, an instance role)"
        ) from error
    except ClientError as error:
        explained = _explain(error, options, _region_of(operation))
        if explained is error:
            raise
        raise explained from error
    except BotoCoreError as error:
        where = options.endpoint_url or f"the AWS endpoint of region {options.region!r}"
        raise KinesisSourceError(
            f"cannot reach Kinesis at {where}: {error}. Check endpointUrl and region."
        ) from error


@retry(
    retry=retry_if_exception(_is_worth_waiting_out),
    wait=wait_random_exponential(multiplier=0.2, max=10),
    stop=stop_after_delay(THROTTLING_PATIENCE_S),
    before_sleep=before_sleep_log(log, logging.DEBUG),
    reraise=True,
)
def _call_with_patience(operation: Callable[..., T], **kwargs: Any) -> T:
    return operation(**kwargs)


def _region_of(operation: Callable[..., Any]) -> str | None:
    """The region the client that `operation` belongs to signs for (the one it asked)."""
    client = getattr(operation, "__self__", None)
    region = getattr(getattr(client, "meta", None), "region_name", None)
    return str(region) if region else None


def _explain(error: ClientError, options: KinesisOptions, region: str | None) -> Exception:
    code = error_code(error)
    stream = options.stream_name
    if code == "ResourceNotFoundException":
        return KinesisSourceError(
            f"Kinesis stream {stream!r} not found in region {region or options.region!r}"
            f"{' at ' + options.endpoint_url if options.endpoint_url else ''}: "
            "check streamName and region, or create the stream first"
        )
    if code in _BAD_CREDENTIALS:
        return KinesisSourceError(
            f"AWS rejected the credentials for stream {stream!r} ({code}): check "
            "awsAccessKeyId/awsSecretKey or the default credential chain, and that the "
            "identity may call kinesis:ListShards, GetShardIterator and GetRecords"
        )
    if code in _THROTTLING:
        return KinesisSourceError(
            f"stream {stream!r} stayed throttled for {THROTTLING_PATIENCE_S:.0f}s ({code}): "
            "lower the read rate (maxFetchRate, minFetchPeriod) or add shards"
        )
    if _status(error) >= 500:
        where = options.endpoint_url or f"the AWS endpoint of region {region or options.region!r}"
        return KinesisSourceError(
            f"Kinesis at {where} kept answering {code or 'an error'} (HTTP {_status(error)}) "
            f"for {THROTTLING_PATIENCE_S:.0f}s: check the service's health, then restart"
        )
    return error  # type: ignore[no-any-return]  # botocore's exceptions are untyped
