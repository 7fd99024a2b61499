"""Enhanced fan-out consumers: registered when a query starts, reused, deregistered on request.

A consumer is registered per stream under `consumerName` (Kinesis' names are
per stream). It stays registered when the query stops unless
`requireConsumerDeregistration` is true: then the stream reader's `stop()`
deregisters it (`deregister_all`; see `query_stop` for how Spark comes to call
`stop()`); `deregister_consumers` removes it after a query that ran without.
Design decision: whoever needs the consumer's ARN, the driver at
query start or a task on an executor, calls `consumer_arn`, which reuses a
consumer of that name, registers it if missing, and waits for it to be ACTIVE
(it is CREATING first) up to `registerConsumerTimeoutInterval`. So a task
whose consumer was deregistered under the running query registers it again
and carries on, and no ARN travels in Spark's pickled state. ARNs are kept per
process; `forget` drops one that Kinesis no longer knows.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from pyspark_kinesis import query_stop
from pyspark_kinesis.client import KinesisSourceError, call, error_code, make_client
from pyspark_kinesis.options import KinesisOptions

log = logging.getLogger(__name__)

# How often a consumer being created is described again (DescribeStreamConsumer allows 20/s
# per stream, shared by every process of the query).
_STATUS_POLL_S = 0.5

_lock = threading.Lock()
# (endpoint, region, stream, consumer name) -> consumer ARN, once seen ACTIVE.
_active: dict[tuple[str | None, str | None, str, str], str] = {}


class ConsumerError(KinesisSourceError):
    """The fan-out consumer could not be registered or did not become ACTIVE in time."""


def _key(options: KinesisOptions) -> tuple[str | None, str | None, str, str]:
    return (options.endpoint_url, options.region, options.stream_name, _name(options))


def _name(options: KinesisOptions) -> str:
    if options.consumer_name is None:
        raise ConsumerError("enhanced fan-out needs consumerName")
    return options.consumer_name


def stream_arn(client: Any, options: KinesisOptions) -> str:
    """The ARN of `options.stream_name`, which the consumer operations take."""
    summary = call(options, client.describe_stream_summary, StreamName=options.stream_name)
    return str(summary["StreamDescriptionSummary"]["StreamARN"])


def consumer_arn(client: Any, options: KinesisOptions) -> str:
    """The ARN of the stream's ACTIVE consumer named `consumerName`, registered if missing."""
    options.require_one_stream("a fan-out consumer")
    key = _key(options)
    with _lock:
        known = _active.get(key)
    if known is not None:
        return known
    arn = _registered(client, options)
    with _lock:
        _active[key] = arn
    return arn


def register_consumers(client: Any, options: KinesisOptions) -> None:
    """At query start, on the driver: the consumer of every stream read, ACTIVE."""
    for name in options.stream_names:
        consumer_arn(client, options.for_stream(name))


def deregister_consumers(options: Mapping[str, str]) -> None:
    """Deregisters the fan-out consumer a query's options name, on every stream it read.

    For after a query that ran without requireConsumerDeregistration (or whose
    driver was killed outright). `options` are the query's, as given to
    `.option(...)`; a consumer already gone is no error.

    >>> pyspark_kinesis.deregister_consumers(
    ...     {"streamName": "events", "consumerMode": "efo", "consumerName": "reader"})
    """
    deregister_all(KinesisOptions.parse(options))


def deregister_all(options: KinesisOptions) -> None:
    """Deregisters the consumer `consumerName` on every stream read; one gone is no error."""
    client = make_client(options)
    for name in options.stream_names:
        _deregister(client, options.for_stream(name))


def prepare_for_stop(options: KinesisOptions) -> None:
    """When the stream reader is made: if its stop deregisters the consumer, has Spark's
    stop of the query run `stop()` (`query_stop`)."""
    if _deregistered_at_stop(options):
        query_stop.stop_on_sigterm()


def at_query_stop(options: KinesisOptions) -> None:
    """The stream reader's `stop()`: deregisters the consumer if requireConsumerDeregistration.

    A failure is logged, not raised: the query is gone, nothing would see it.
    """
    if not _deregistered_at_stop(options):
        return
    try:
        deregister_all(options)
    except (KinesisSourceError, ClientError, BotoCoreError) as error:
        log.warning(
            "could not deregister fan-out consumer %r as the query stopped (%s): call "
            "pyspark_kinesis.deregister_consumers(options) with the query's options",
            options.consumer_name,
            error,
        )


def _deregistered_at_stop(options: KinesisOptions) -> bool:
    return options.fan_out and options.require_consumer_deregistration


def forget(options: KinesisOptions) -> None:
    """Drops the ARN kept for the options' consumer (Kinesis said it does not know it)."""
    with _lock:
        _active.pop(_key(options), None)


def _deregister(client: Any, options: KinesisOptions) -> None:
    """Deregisters the stream's consumer `consumerName`; one already gone is no error."""
    forget(options)
    _unless_missing(
        options,
        client.deregister_stream_consumer,
        StreamARN=stream_arn(client, options),
        ConsumerName=_name(options),
    )
    log.info("deregistered fan-out consumer %r of %r", _name(options), options.stream_name)


def _registered(client: Any, options: KinesisOptions) -> str:
    """Describes the consumer until it is ACTIVE, registering it whenever it is missing
    (also after a DELETING one is gone)."""
    arn_of_stream = stream_arn(client, options)
    deadline = time.monotonic() + options.register_consumer_timeout_s
    status = "missing"
    while True:
        description = _description(client, options, arn_of_stream)
        if description is None:
            _register(client, options, arn_of_stream)
        else:
            status = str(description["ConsumerStatus"])
            if status == "ACTIVE":
                return str(description["ConsumerARN"])
        if time.monotonic() >= deadline:
            break
        time.sleep(_STATUS_POLL_S)
    raise ConsumerError(
        f"fan-out consumer {_name(options)!r} of stream {options.stream_name!r} is still "
        f"{status} after registerConsumerTimeoutInterval="
        f"{options.register_consumer_timeout_s:g}s: raise the interval, or check the "
        "stream's consumers (at most 20 per stream, 5 CREATING at once)"
    )


def _register(client: Any, options: KinesisOptions, arn_of_stream: str) -> None:
    try:
        call(
            options,
            client.register_stream_consumer,
            StreamARN=arn_of_stream,
            ConsumerName=_name(options),
        )
    except ClientError as error:
        # Registered by another process of the query, or still DELETING: described again.
        if error_code(error) != "ResourceInUseException":
            raise
        return
    log.info("registered fan-out consumer %r on %r", _name(options), options.stream_name)


def _description(client: Any, options: KinesisOptions, arn_of_stream: str) -> dict[str, Any] | None:
    answer = _unless_missing(
        options,
        client.describe_stream_consumer,
        StreamARN=arn_of_stream,
        ConsumerName=_name(options),
    )
    return None if answer is None else dict(answer["ConsumerDescription"])


def _unless_missing(options: KinesisOptions, operation: Any, **kwargs: Any) -> Any:
    """`call`, or None where Kinesis answers ResourceNotFoundException (no such consumer)."""
    try:
        return call(options, operation, **kwargs)
    except KinesisSourceError as error:
        # `call` explains a missing resource as a missing stream; here it is the consumer.
        if error_code(error.__cause__ or error) == "ResourceNotFoundException":
            return None
        raise
