"""The PutRecords writer: batches records, resends only what Kinesis refused, never loses one.

A batch closes at PRODUCER_BATCH_SIZE records (500 at most) or before it would
pass 5 MiB. PutRecords may accept part of a batch and refuse the rest
(throttling, an internal error); the writer resends only the refused entries,
with jittered exponential backoff, until they are accepted or
PRODUCER_MAX_RETRY_SECONDS pass. Whatever cannot be sent (a record over 1 MiB,
a batch still refused at the deadline, an entry refused for good) is appended
to the unsent file for replay and counted; nothing disappears silently.

Order: batches go out one at a time and a batch is finished (all its entries
accepted or given up) before the next one starts, so records of one partition
key keep their order across batches. Within a batch Kinesis keeps the order of
the accepted entries, but a resent entry lands after those accepted before it:
PutRecords gives no order guarantee across a retry (use PutRecord with
SequenceNumberForOrdering if that matters). The generated events each have
their own key, so this never reorders them.

Delivery is at least once: if a call times out after Kinesis stored the
records, the resend duplicates them; consumers deduplicate on `event_id`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_delay,
    stop_when_event_set,
    wait_random_exponential,
)

from producer.events import Record
from producer.settings import MAX_BATCH_RECORDS
from producer.stream import ProducerError

log = logging.getLogger(__name__)

# Kinesis limits: 1 MiB per record (data and partition key), 5 MiB per PutRecords call.
MAX_RECORD_BYTES = 1024 * 1024
MAX_REQUEST_BYTES = 5 * 1024 * 1024
# Per-entry error codes worth resending; any other code refuses that entry for good.
_RETRYABLE_ENTRY_ERRORS = frozenset(
    {"ProvisionedThroughputExceededException", "InternalFailure", "KMSThrottlingException"}
)
# Whole-call errors left over once botocore's own few retries are spent.
_RETRYABLE_CALL_ERRORS = _RETRYABLE_ENTRY_ERRORS | {
    "LimitExceededException",
    "ServiceUnavailable",
    "ThrottlingException",
}
_NETWORK_ERRORS = (
    EndpointConnectionError,
    ConnectionClosedError,
    ConnectTimeoutError,
    ReadTimeoutError,
)


class UnsentRecordsError(ProducerError):
    """Records were given up on; they are in the unsent file (exit code 3)."""


class _RefusedError(Exception):
    """Some entries were refused and are worth sending again."""


@dataclass
class SendStats:
    """What happened to the records handed to the writer."""

    sent: int = 0
    failed: int = 0  # given up on, for whatever reason
    unsent: int = 0  # of the failed, those safely appended to the unsent file
    refused: int = 0  # entries refused and resent (one record may count several times)


class UnsentFile:
    """The JSON-lines file of records that could not be sent, one payload per line.

    Lines are the payloads byte for byte, so `producer send FILE` (or
    `send --raw FILE` for non-JSON payloads) replays them; JSON payloads keep
    their partition key, which is their event id.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def keep(self, records: Sequence[Record]) -> int:
        """Appends the records; returns how many were kept (0 if the file cannot be written)."""
        if not records:
            return 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("ab") as unsent:
                unsent.writelines(record.data + b"\n" for record in records)
        except OSError as error:
            log.error(
                "%d records LOST: cannot append them to the unsent file %s (%s); "
                "fix PRODUCER_UNSENT_PATH",
                len(records),
                self.path,
                error,
            )
            return 0
        return len(records)


class KinesisWriter:
    """Buffers records into PutRecords calls; see the module docstring for the guarantees."""

    def __init__(
        self,
        client: Any,
        stream_name: str,
        unsent: UnsentFile,
        *,
        batch_size: int = MAX_BATCH_RECORDS,
        max_retry_seconds: float = 120.0,
        abort: threading.Event | None = None,
        describe_error: Callable[[Exception], str] = str,
    ) -> None:
        self.client = client
        self.stream_name = stream_name
        self.unsent = unsent
        self.batch_size = batch_size
        self.max_retry_seconds = max_retry_seconds
        # Set (by a second SIGTERM, say) to stop resending and keep the rest in the unsent file.
        self.abort = abort or threading.Event()
        self.describe_error = describe_error
        self.stats = SendStats()
        self._buffer: list[Record] = []
        self._buffered_bytes = 0
        self._buffered_since = 0.0
        self._pending: list[Record] = []

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def buffer_age(self) -> float:
        """Seconds the oldest buffered record has waited (0 when the buffer is empty)."""
        return time.monotonic() - self._buffered_since if self._buffer else 0.0

    def put(self, record: Record) -> None:
        """Buffers a record, sending the buffer first when the record would not fit in it."""
        if record.size > MAX_RECORD_BYTES:
            self.give_up(
                [record],
                f"a record of {record.size} bytes (key {record.partition_key!r}) is over "
                f"Kinesis' {MAX_RECORD_BYTES}-byte limit",
            )
            return
        if (
            len(self._buffer) >= self.batch_size
            or self._buffered_bytes + record.size > MAX_REQUEST_BYTES
        ):
            try:
                self.flush()
            except ProducerError:
                # The caller handed this record over already: keep it with the rest.
                self.give_up([record], "not sent because the batch before it failed")
                raise
        if not self._buffer:
            self._buffered_since = time.monotonic()
        self._buffer.append(record)
        self._buffered_bytes += record.size

    def put_all(self, records: Iterable[Record]) -> None:
        for record in records:
            self.put(record)
        self.flush()

    def flush(self) -> None:
        """Sends the buffer until all of it is accepted.

        Raises UnsentRecordsError when records are still refused at the deadline
        (or on abort), ProducerError when Kinesis refuses the call for good; in
        both cases the records not sent are in the unsent file first.
        """
        self._pending, self._buffer, self._buffered_bytes = self._buffer, [], 0
        retrying = Retrying(
            stop=stop_after_delay(self.max_retry_seconds) | stop_when_event_set(self.abort),
            wait=wait_random_exponential(multiplier=0.1, max=5),
            retry=retry_if_exception_type(_RefusedError),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    self._send_pending()
        except _RefusedError:
            count = len(self._pending)
            why = (
                "stopped before they were accepted"
                if self.abort.is_set()
                else f"still refused after {self.max_retry_seconds:g}s"
            )
            self.give_up(self._pending, f"{count} records {why}")
            self._pending = []
            raise UnsentRecordsError(self.unsent_summary()) from None
        except ProducerError:
            self.give_up(self._pending, "Kinesis refused the call")
            self._pending = []
            raise

    def give_up(self, records: Sequence[Record], reason: str) -> None:
        """Counts records as failed and keeps them in the unsent file, saying so in the log."""
        if not records:
            return
        kept = self.unsent.keep(records)
        self.stats.failed += len(records)
        self.stats.unsent += kept
        if kept:
            log.error("%s: %d records appended to %s", reason, kept, self.unsent.path)

    def unsent_summary(self) -> str:
        """One line saying how many records were not sent and where they are."""
        path = self.unsent.path
        lost = self.stats.failed - self.stats.unsent
        line = (
            f"{self.stats.failed} records could not be sent; {self.stats.unsent} are in {path} "
            f"(replay with `producer send {path}`, or `send --raw` for non-JSON lines)"
        )
        return line + (f"; {lost} were LOST (see above)" if lost else "")

    def _sleep(self, seconds: float) -> None:
        # Wakes early when aborted, so a second signal does not wait out a backoff.
        self.abort.wait(seconds)

    def _send_pending(self) -> None:
        """One PutRecords call for the pending records; keeps the refused ones pending."""
        if not self._pending:
            return
        entries = [{"Data": r.data, "PartitionKey": r.partition_key} for r in self._pending]
        try:
            answer = self.client.put_records(StreamName=self.stream_name, Records=entries)
        except ClientError as error:
            if error.response["Error"]["Code"] in _RETRYABLE_CALL_ERRORS:
                self._note_refused(len(self._pending), error.response["Error"]["Code"])
            raise ProducerError(self.describe_error(error)) from error
        except _NETWORK_ERRORS as error:
            self._note_refused(len(self._pending), type(error).__name__)
        except BotoCoreError as error:
            raise ProducerError(self.describe_error(error)) from error
        else:
            self._settle(answer["Records"])

    def _settle(self, results: list[dict[str, Any]]) -> None:
        # Per-entry ErrorCode, not FailedRecordCount, decides: LocalStack's fault
        # injection refuses every entry of a call but reports FailedRecordCount=1.
        refused, dropped = [], []
        for record, result in zip(self._pending, results, strict=True):
            code = result.get("ErrorCode")
            if code is None:
                self.stats.sent += 1
            elif code in _RETRYABLE_ENTRY_ERRORS:
                refused.append(record)
            else:
                dropped.append((record, f"{code}: {result.get('ErrorMessage', '')}"))
        self._pending = refused
        for record, why in dropped:
            self.give_up([record], f"Kinesis refused a record for good ({why})")
        if refused:
            codes = {r.get("ErrorCode") for r in results if r.get("ErrorCode")}
            self._note_refused(len(refused), ", ".join(sorted(map(str, codes))))

    def _note_refused(self, count: int, why: str) -> NoReturn:
        self.stats.refused += count
        log.warning("%d records refused (%s); resending them", count, why)
        raise _RefusedError
