"""A Kinesis client built from the options, and the errors a user can act on.

Clients never travel inside pickled Spark state: each process (the driver's
planner, each Python worker) makes one per service, identity and endpoint on
first use and keeps it, so a task does not build a client (nor, with a role,
call AssumeRole) per batch; an identity's credentials are shared by its Kinesis
and S3 (batch-end notes) clients, and an assumed role's refresh themselves.

Throttling is retried twice over: botocore's standard mode for brief bursts,
then an outer retry with jittered exponential backoff for sustained throttling
(THROTTLING_PATIENCE_S), so a busy shard slows a query down instead of failing
or skipping data. The source's reads (`read_call`) also wait out 500/503
answers, dropped connections and read timeouts the same way, until
`readRetryDeadline`, then fail naming the shard and what was tried.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import botocore.loaders
import botocore.session
from botocore.config import Config
from botocore.credentials import (
    AssumeRoleCredentialFetcher,
    Credentials,
    DeferredRefreshableCredentials,
)
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    NoRegionError,
)
from tenacity import (
    RetryCallState,
    Retrying,
    before_sleep_log,
    retry_if_exception,
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
# Answers that say the service failed, not the request: the same request may succeed later.
_SERVER_ERROR = 500
_SERVER_ERROR_CODES = frozenset({"InternalFailure", "ServiceUnavailable", "InternalError"})
# Hosts of AWS's own endpoints (a Kinesis endpoint there is no S3 endpoint).
_AWS_DOMAINS = (".amazonaws.com", ".amazonaws.com.cn", ".api.aws")
# Sustained throttling is waited out this long before the query fails.
THROTTLING_PATIENCE_S = 300.0

T = TypeVar("T")


class KinesisSourceError(RuntimeError):
    """Kinesis refused the query in a way retrying will not fix; the message says what to do."""


def error_code(error: BaseException) -> str:
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code", ""))
    return ""


def _is_throttling(error: BaseException) -> bool:
    return error_code(error) in _THROTTLING


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
    identity = ClientIdentity.of(options)
    return _client_for("kinesis", options.endpoint_url, identity, _aws_environment(), max_attempts)


def make_s3_client(options: KinesisOptions) -> Any:
    """This process's S3 client for the options' identity (where batch-end notes go).

    Same credentials as the Kinesis client (one assumed role, refreshed, for
    both) and region. Its endpoint is `s3EndpointUrl`, else `endpointUrl` unless
    that names an AWS host (LocalStack serves every service on one port; AWS has
    one host per service), else S3's own endpoint for the region.
    """
    endpoint_url = options.s3_endpoint_url or _unless_aws(options.endpoint_url)
    return _client_for("s3", endpoint_url, ClientIdentity.of(options), _aws_environment(), 5)


def _unless_aws(endpoint_url: str | None) -> str | None:
    host = urlsplit(endpoint_url or "").hostname or ""
    return None if host.endswith(_AWS_DOMAINS) else endpoint_url


def _aws_environment() -> tuple[tuple[str, str], ...]:
    # The default credential chain and region read these when a client is built.
    return tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_")))


@functools.cache
def _client_for(
    service: str,
    endpoint_url: str | None,
    options: ClientIdentity,
    environment: tuple[tuple[str, str], ...],
    max_attempts: int,
) -> Any:
    """`environment` is part of the cache key only: a changed AWS_* variable gets a new client."""
    # A session per client: the Kinesis client's parser settings stay its own.
    session = _new_session(options)
    credentials = credentials_for(options, environment)
    if credentials is not None:
        session._credentials = credentials  # botocore has no public setter for refreshable ones
    config = Config(
        retries={"mode": "standard", "max_attempts": max_attempts},
        connect_timeout=5,
        read_timeout=30,
        max_pool_connections=32,
    )
    if service == "kinesis":
        # Arrival times stay epoch seconds: turning 10,000 of them per call into
        # tz-aware datetimes costs more than the rest of a read.
        parsers = session.get_component("response_parser_factory")
        parsers.set_parser_defaults(timestamp_parser=float)
    elif endpoint_url:
        # An emulator answers on one host: buckets go in the path, not the host name.
        config = config.merge(Config(s3={"addressing_style": "path"}))
    try:
        return session.create_client(service, endpoint_url=endpoint_url, config=config)
    except NoRegionError as error:
        raise KinesisSourceError(
            "no AWS region: set the region option (or AWS_DEFAULT_REGION, or a profile's region)"
        ) from error


@functools.cache
def credentials_for(
    options: ClientIdentity, environment: tuple[tuple[str, str], ...]
) -> Credentials | None:
    """This process's credentials for an identity, shared by its clients (Kinesis, S3).

    With a role: refreshable ones, which call AssumeRole when first used and again
    before they expire, so a query running for days keeps working past the role's
    hour without building a client per batch. Else the keys, or the default chain's.
    `environment` is part of the cache key only, as in `_client_for`.
    """
    session = _new_session(options)
    if options.role_arn:
        return _assume_role(session, options)
    return session.get_credentials()


def _new_session(options: ClientIdentity) -> botocore.session.Session:
    session = botocore.session.get_session()
    session.register_component("data_loader", _shared_loader())
    if options.access_key_id and options.secret_access_key:
        session.set_credentials(
            options.access_key_id, options.secret_access_key, options.session_token
        )
    if options.region:
        session.set_config_variable("region", options.region)
    return session


@functools.cache
def _shared_loader() -> Any:
    # Its cache keeps each service's parsed model: a new session would parse it
    # again, 50 ms of every task's start.
    return botocore.loaders.create_loader()


def _assume_role(
    session: botocore.session.Session, options: ClientIdentity
) -> DeferredRefreshableCredentials:
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
    return DeferredRefreshableCredentials(
        method="assume-role", refresh_using=fetcher.fetch_credentials
    )


def call(options: KinesisOptions, operation: Callable[..., T], **kwargs: Any) -> T:
    """Calls one Kinesis operation, waiting out throttling and explaining fatal errors."""
    return _explained(options, operation, lambda: _with_patience(operation, kwargs, None))


def read_call(options: KinesisOptions, where: str, operation: Callable[..., T], **kwargs: Any) -> T:
    """A read (GetRecords, GetShardIterator, ListShards) of `where` (a shard, a stream), as
    `call`, that also waits out 500/503 answers and dropped connections or read timeouts.

    Botocore tries each call 5 times; past that, the call is tried again with
    jittered exponential backoff until `readRetryDeadline` (default 300 s), then
    the query fails naming `where`, the operation and the last error. Reads
    change nothing in Kinesis, so trying one again cannot double a record. A
    connection that cannot be opened at all (a wrong endpointUrl) is not retried
    past botocore's attempts, so a typo fails in seconds.
    """
    attempts: list[float] = []

    def attempt() -> T:
        attempts.append(time.monotonic())
        return operation(**kwargs)

    try:
        return _explained(
            options,
            operation,
            lambda: _with_patience(attempt, {}, options.read_retry_deadline_s),
        )
    except KinesisSourceError as error:
        cause = error.__cause__
        if cause is None or not _is_transient(cause):
            raise
        raise KinesisSourceError(_gave_up(options, where, operation, attempts, cause)) from cause
    except ClientError as error:
        if not _is_transient(error):
            raise
        raise KinesisSourceError(_gave_up(options, where, operation, attempts, error)) from error


def _gave_up(
    options: KinesisOptions,
    where: str,
    operation: Callable[..., Any],
    attempts: list[float],
    error: BaseException,
) -> str:
    name = _operation_name(operation)
    spent = attempts[-1] - attempts[0] if attempts else 0.0
    return (
        f"{name} on {where} kept failing: tried {len(attempts)} times over {spent:.0f}s (each "
        f"try is botocore's own attempts), until readRetryDeadline="
        f"{options.read_retry_deadline_s:g}s; last error: {error}. Kinesis answered 500/503 or "
        "dropped the connection throughout: check the service's health, or raise "
        "readRetryDeadline"
    )


def _explained(options: KinesisOptions, operation: Callable[..., T], run: Callable[[], T]) -> T:
    try:
        return run()
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


def _with_patience(
    operation: Callable[..., T], kwargs: dict[str, Any], transient_patience_s: float | None
) -> T:
    """`operation(**kwargs)`, tried again on throttling for THROTTLING_PATIENCE_S and, if
    `transient_patience_s` is given, on transient failures (`_is_transient`) for that long."""

    def patience_for(error: BaseException | None) -> float | None:
        if error is None:
            return None
        if _is_throttling(error):
            return THROTTLING_PATIENCE_S
        if transient_patience_s is not None and _is_transient(error):
            return transient_patience_s
        return None

    def out_of_patience(state: RetryCallState) -> bool:
        error = state.outcome.exception() if state.outcome else None
        return (state.seconds_since_start or 0.0) >= (patience_for(error) or 0.0)

    retrying = Retrying(
        retry=retry_if_exception(lambda error: patience_for(error) is not None),
        wait=wait_random_exponential(multiplier=0.2, max=10),
        stop=out_of_patience,
        before_sleep=before_sleep_log(log, logging.DEBUG),
        reraise=True,
    )
    return retrying(operation, **kwargs)


def _is_transient(error: BaseException) -> bool:
    """A 5xx answer, a connection dropped mid-call or a read timeout: trying again may work."""
    if isinstance(error, ClientError):
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return int(status) >= _SERVER_ERROR or error_code(error) in _SERVER_ERROR_CODES
    # HTTPClientError: ConnectionClosedError, ReadTimeoutError (the connection was made);
    # not EndpointConnectionError or ConnectTimeoutError, where it never was.
    return isinstance(error, HTTPClientError)


def _operation_name(operation: Callable[..., Any]) -> str:
    name = getattr(operation, "__name__", "call")
    return "".join(part.capitalize() for part in str(name).split("_"))


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
    return error  # type: ignore[no-any-return]  # botocore's exceptions are untyped
