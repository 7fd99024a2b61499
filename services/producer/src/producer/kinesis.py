"""Talking to Kinesis: the client, the stream check, and the writer that never loses a record.

PutRecords may accept part of a batch and refuse the rest (throttling, an
internal error). The writer resends only the refused entries, with jittered
exponential backoff, until they are accepted or `max_retry_seconds` pass;
what is still refused then is appended to the unsent file for replay, and the
writer raises. Order per partition key holds within a batch, but a resent entry
lands after entries accepted before it: Kinesis gives no order across retries.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_random_exponential

from producer.events import Record
from producer.settings import ProducerSettings

log = logging.getLogger(__name__)

# Kinesis limits: 1 MiB per record (data and partition key), 5 MiB per PutRecords call.
MAX_RECORD_BYTES = 1024 * 1024
MAX_REQUEST_BYTES = 5 * 1024 * 1024
_RETRYABLE = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "LimitExceededException",
        "InternalFailure",
        "ServiceUnavailable",
    }
)


class ProducerError(RuntimeError):
    """The producer cannot go on; the message says what to change."""


class UnsentRecordsError(ProducerError):
    """Records were refused past the retry time and written to the unsent file."""


class _RefusedError(Exception):
    """Some entries of a PutRecords call were refused and are worth sending again."""


def make_client(settings: ProducerSettings) -> Any:
    """A Kinesis client; credentials come from the default AWS chain."""
    config = Config(
        retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=30
    )
    return boto3.client(
        "kinesis",
        region_name=settings.aws_region,
        endpoint_url=settings.kinesis_endpoint_url,
        config=config,
    )


def explain(error: Exception, settings: ProducerSettings) -> ProducerError:
    """One actionable sentence for an error Kinesis gave the producer."""
    stream, region = settings.kinesis_stream_name, settings.aws_region
    code = error.response["Error"]["Code"] if isinstance(error, ClientError) else ""
    if code == "ResourceNotFoundException":
        return ProducerError(
            f"stream {stream!r} does not exist in region {region!r}: check KINESIS_STREAM_NAME and "
            "AWS_REGION, or set PRODUCER_CREATE_STREAM=true to create it"
        )
    if isinstance(error, NoCredentialsError) or code in (
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "ExpiredTokenException",
        "AccessDeniedException",
    ):
        return ProducerError(
            f"AWS refused the credentials ({code or 'none found'}): provide them through the "
            "default chain (AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or a role) with "
            f"kinesis:PutRecords on stream {stream!r}"
        )
    if isinstance(error, BotoCoreError):
        where = settings.kinesis_endpoint_url or f"AWS region {region!r}"
        return ProducerError(
            f"cannot reach Kinesis at {where} ({error}): check KINESIS_ENDPOINT_URL"
        )
    return ProducerError(f"Kinesis refused the request: {error}")


def ensure_stream(client: Any, settings: ProducerSettings) -> None:
    """Checks the stream exists, creating it only when PRODUCER_CREATE_STREAM asks to."""
    name = settings.kinesis_stream_name
    try:
        client.describe_stream_summary(StreamName=name)
    except ClientError as error:
        if (
            error.response["Error"]["Code"] != "ResourceNotFoundException"
            or not settings.producer_create_stream
        ):
            raise explain(error, settings) from error
        log.info("creating stream %s with %d shards", name, settings.kinesis_shard_count)
        client.create_stream(StreamName=name, ShardCount=settings.kinesis_shard_count)
    except (BotoCoreError, NoCredentialsError) as error:
        raise explain(error, settings) from error
    client.get_waiter("stream_exists").wait(
        StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
    )


class KinesisWriter:
    """Buffers records into PutRecords calls; see the module docstring for the guarantees."""

    def __init__(self, client: Any, settings: ProducerSettings) -> None:
        self.client = client
        self.settings = settings
        self.sent = 0
        self.unsent = 0
        self._buffer: list[Record] = []
        self._buffered_bytes = 0
        self._pending: list[Record] = []
        self._first_buffered_at = 0.0

    def put(self, record: Record) -> None:
        size = len(record.data) + len(record.partition_key.encode())
        if size > MAX_RECORD_BYTES:
            log.error(
                "record of %d bytes is over Kinesis' 1 MiB limit: kept in the unsent file", size
            )
            self._keep_unsent([record])
            return
        if self._buffered_bytes + size > MAX_REQUEST_BYTES:
            self.flush()
        if not self._buffer:
            self._first_buffered_at = time.monotonic()
        self._buffer.append(record)
        self._buffered_bytes += size
        lingered = time.monotonic() - self._first_buffered_at
        full = len(self._buffer) >= self.settings.producer_batch_size
        if full or lingered >= self.settings.producer_linger_seconds:
            self.flush()

    def put_all(self, records: Iterable[Record]) -> None:
        for record in records:
            self.put(record)
        self.flush()

    def flush(self) -> None:
        """Sends the buffer; raises UnsentRecordsError if some records could not be sent in time."""
        self._pending, self._buffer, self._buffered_bytes = self._buffer, [], 0
        retrying = Retrying(
            stop=stop_after_delay(self.settings.producer_max_retry_seconds),
            wait=wait_random_exponential(multiplier=0.05, max=5),
            retry=retry_if_exception_type(_RefusedError),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    self._send_pending()
        except _RefusedError:
            count = len(self._pending)
            self._keep_unsent(self._pending)
            waited, path = (
                self.settings.producer_max_retry_seconds,
                self.settings.producer_unsent_path,
            )
            raise UnsentRecordsError(
                f"{count} records still refused after {waited:.0f}s: written to {path} "
                "(replay them with `producer send --raw`)"
            ) from None
        except ProducerError:
            self._keep_unsent(self._pending)
            raise

    def _send_pending(self) -> None:
        """One PutRecords call for the pending records; keeps the refused ones pending."""
        if not self._pending:
            return
        entries = [
            {"Data": record.data, "PartitionKey": record.partition_key} for record in self._pending
        ]
        try:
            answer = self.client.put_records(
                StreamName=self.settings.kinesis_stream_name, Records=entries
            )
        except ClientError as error:
            if error.response["Error"]["Code"] in _RETRYABLE:
                raise _RefusedError from error
            raise explain(error, self.settings) from error
        except BotoCoreError as error:
            raise explain(error, self.settings) from error
        results = zip(self._pending, answer["Records"], strict=True)
        refused = [record for record, result in results if "ErrorCode" in result]
        self.sent += len(self._pending) - len(refused)
        self._pending = refused
        if refused:
            log.debug("%d records refused; resending them", len(refused))
            raise _RefusedError

    def _keep_unsent(self, records: list[Record]) -> None:
        path: Path = self.settings.producer_unsent_path
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8", errors="surrogateescape") as unsent:
            unsent.writelines(record.to_json_line() + "\n" for record in records)
        self.unsent += len(records)


def pace(started: float, produced: int, rate: float) -> None:
    """Sleeps until `produced` records are due at `rate` per second (0 = no pacing)."""
    if rate > 0:
        delay = started + produced / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
