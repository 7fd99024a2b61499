"""Enhanced fan-out on the executors: subscriptions that outlive tasks, and a batch's take from one.

AWS lets a consumer subscribe to a shard once per 5 seconds (ResourceInUseException
otherwise) and ends every subscription after 5 minutes, while a micro-batch task
lasts a fraction of a second. So a `Subscription` belongs to a process that
outlives tasks and Python workers, the host's hub (`fan_out_hub`), one per
consumer and shard: a thread reads SubscribeToShard's events into a buffer
bounded by `fetchBufferSize` (the thread stops reading while it is full), and each task
takes from it exactly what its batch planned (`SubscribedTake`, the fan-out twin of
`reading.TakeRead`: the records after `start` that arrived by the Take's instant,
at most its limit). Records past the planned end stay buffered for the next batch.

Design decision: a subscription is renewed only when a task needs records past
what it holds, never in the background, so a stopped query's leftover
subscription does not fight a restarted query for the shard (after 5 seconds
AWS gives the shard to the newer call). It is renewed from its last buffered
record (AFTER_SEQUENCE_NUMBER) when it expired or broke, and opened afresh at a
task's start when the buffer does not hold that position (another host
read the previous batch, a retry, a restart): the Take's bounds, not the
subscription, decide what a task returns, so no record is lost or doubled.
ResourceInUseException, throttling, 500/503 answers and dropped connections at
SubscribeToShard are waited out with backoff for up to SUBSCRIBE_PATIENCE_S. A start
whose record was trimmed (past the stream's retention) is lost data, handled as
polling handles it (`reading.report_lost_start`): the query fails, or with
failOnDataLoss=false the subscription starts at TRIM_HORIZON after a warning.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Generator, Iterator
from itertools import islice
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError

from pyspark_kinesis import consumers
from pyspark_kinesis.client import KinesisSourceError, error_code, make_client
from pyspark_kinesis.ends import ShardEnd
from pyspark_kinesis.options import KinesisOptions
from pyspark_kinesis.positions import TRIM_HORIZON, Position, after
from pyspark_kinesis.reading import (
    TakeReader,
    at_or_after,
    peek_shard,
    report_lost_start,
    take_from_page,
    with_rows,
)

log = logging.getLogger(__name__)

# ResourceInUseException (AWS: a second call within 5 s of a successful one) and a consumer
# being registered again are waited out this long before the task fails.
SUBSCRIBE_PATIENCE_S = 30.0
# Starts Kinesis refuses with InvalidArgumentException when their record was trimmed.
_BY_SEQUENCE_NUMBER = frozenset({"AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"})
# A subscription no task has used for this long is closed when the next one is looked up.
IDLE_CLOSE_S = 300.0
# Renewals in a row that bring no event before the task gives up naming the last error.
MAX_FRUITLESS_RENEWALS = 5
# How long after a batch's planning instant a record that arrived by then may still be
# on its way to the subscriber (AWS: about 70 ms); see `Subscription.caught_up`.
PUSH_GRACE_S = 0.2
# How long a task waits for news from its subscription before it looks again.
_WAIT_S = 0.1
# What SubscribeToShard answers that calling again cures: the 5-second rule, throttling,
# a consumer deregistered (registered again first), and a service or connection failure.
_RETRIED_AT_SUBSCRIBE = frozenset(
    {
        "ResourceInUseException",
        "LimitExceededException",
        "ResourceNotFoundException",
        "InternalFailure",
        "ServiceUnavailable",
        "connection",
    }
)


def starting_position(position: Position) -> dict[str, Any]:
    """SubscribeToShard's StartingPosition for a shard position (GetShardIterator's twin)."""
    request = position.iterator_request()
    start: dict[str, Any] = {"Type": request["ShardIteratorType"]}
    if "StartingSequenceNumber" in request:
        start["SequenceNumber"] = request["StartingSequenceNumber"]
    if "Timestamp" in request:
        start["Timestamp"] = request["Timestamp"]
    return start


def _closes_shard(event: dict[str, Any]) -> bool:
    """A closed shard's last event names its children (AWS sends them only there)."""
    return bool(event.get("ChildShards"))


class Subscription:
    """One consumer's subscription to one shard, and the records it holds after `origin`.

    `origin` is the position the buffered records follow: a task starting there
    takes from the buffer. Its first record may be an aggregate partly taken
    (origin `AFTER_SEQUENCE_NUMBER:<n>/<user record>`).
    """

    def __init__(self, options: KinesisOptions, shard_id: str) -> None:
        self.options = options
        self.shard_id = shard_id
        # Held by the task taking from the subscription, for the whole take.
        self.lock = threading.Lock()
        self.used_s = time.monotonic()
        self.origin = Position("TRIM_HORIZON")
        self._client = make_client(options)
        self._condition = threading.Condition()
        self._records: deque[dict[str, Any]] = deque()
        self._bytes = 0
        self._generation = 0
        self._stream: Any = None
        self.running = False
        # The shard is closed and every record of it was received.
        self.ended = False
        self.failure: BaseException | None = None
        # Wall-clock time of the last event received, and its MillisBehindLatest.
        self.event_at_s = 0.0
        self.behind_ms = 0
        self._events_since_open = 0

    # Opening -------------------------------------------------------------------

    def open_at(self, start: Position) -> None:
        """Subscribes afresh at `start`, dropping what the buffer held."""
        with self._condition:
            self._records.clear()
            self._bytes = 0
            self.origin = start
        self._open(start)

    def renew(self) -> None:
        """Subscribes again after the last buffered record (or at `origin`), keeping the buffer."""
        with self._condition:
            tail = after(self._records[-1]["SequenceNumber"]) if self._records else self.origin
        log.info("renewing the fan-out subscription to %s at %s", self.shard_id, tail)
        self._open(tail)

    def _open(self, position: Position) -> None:
        self.close()
        stream = self._subscribe(position)
        with self._condition:
            self._generation += 1
            self._stream = stream
            self.running, self.ended, self.failure = True, False, None
            self._events_since_open = 0
            generation = self._generation
        threading.Thread(
            target=self._pump,
            args=(stream, generation),
            name=f"fan-out-{self.shard_id}",
            daemon=True,
        ).start()

    def _subscribe(self, position: Position) -> Any:
        deadline = time.monotonic() + SUBSCRIBE_PATIENCE_S
        delay_s = 0.2
        while True:
            arn = consumers.consumer_arn(self._client, self.options)
            try:
                answer = self._client.subscribe_to_shard(
                    ConsumerARN=arn,
                    ShardId=self.shard_id,
                    StartingPosition=starting_position(position),
                )
                return answer["EventStream"]
            except (ClientError, HTTPClientError) as error:
                code = error_code(error) if isinstance(error, ClientError) else "connection"
                if code == "InvalidArgumentException" and position.kind in _BY_SEQUENCE_NUMBER:
                    # Its records were trimmed (past retention): as polling does, per
                    # failOnDataLoss, fail or go on from the shard's oldest record.
                    report_lost_start(self.options, self.shard_id, position, error)
                    position = TRIM_HORIZON
                    continue
                if code not in _RETRIED_AT_SUBSCRIBE:
                    raise KinesisSourceError(
                        f"SubscribeToShard for shard {self.shard_id} of "
                        f"{self.options.stream_name!r} as consumer "
                        f"{self.options.consumer_name!r} failed: {error}"
                    ) from error
                if time.monotonic() > deadline:
                    raise KinesisSourceError(
                        f"SubscribeToShard for shard {self.shard_id} of "
                        f"{self.options.stream_name!r} as consumer "
                        f"{self.options.consumer_name!r} was refused for "
                        f"{SUBSCRIBE_PATIENCE_S:g}s; last error: {error}"
                    ) from error
                if code == "ResourceNotFoundException":
                    # The consumer was deregistered under the query: registered again.
                    log.warning("fan-out consumer %s is gone; registering it again", arn)
                    consumers.forget(self.options)
            time.sleep(delay_s * (0.5 + random.random()))  # noqa: S311 (jitter)
            delay_s = min(delay_s * 2, 2.0)

    def close(self) -> None:
        """Ends the subscription; its thread stops and nothing it reads later is kept."""
        with self._condition:
            stream, self._stream = self._stream, None
            self._generation += 1
            self.running = False
            self._condition.notify_all()
        if stream is not None:
            with contextlib.suppress(OSError, BotoCoreError):  # a connection already broken
                stream.close()

    # The thread reading events --------------------------------------------------

    def _pump(self, stream: Any, generation: int) -> None:
        failure: BaseException | None = None
        try:
            for message in stream:
                event = message.get("SubscribeToShardEvent")
                if event is None or not self._hold(event, generation):
                    break
        except Exception as error:  # any end of the stream is the task's to handle
            failure = error
        with self._condition:
            if generation == self._generation:
                self.running = False
                self.failure = failure
                self._condition.notify_all()
        if failure is not None:
            log.info("fan-out subscription to %s ended: %s", self.shard_id, failure)

    def _hold(self, event: dict[str, Any], generation: int) -> bool:
        """Buffers one event's records; False once this subscription was replaced."""
        records = event.get("Records", [])
        with self._condition:
            while self._bytes >= self.options.fetch_buffer_bytes:
                if generation != self._generation:
                    return False
                self._condition.wait(_WAIT_S)
            if generation != self._generation:
                return False
            self._records.extend(records)
            self._bytes += sum(len(record["Data"]) for record in records)
            self.event_at_s = time.time()
            self.behind_ms = int(event.get("MillisBehindLatest", 0))
            self.ended = _closes_shard(event)
            self._events_since_open += 1
            self._condition.notify_all()
        return True

    # What tasks see ----------------------------------------------------------------

    def holds(self, start: Position) -> bool:
        """Whether the buffer serves a read from `start`; if so, it now begins there."""
        with self._condition:
            if start == self.origin:
                return True
            if start.kind not in ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"):
                return False
            numbers = [record["SequenceNumber"] for record in self._records]
            if start.argument not in numbers:
                return False
            index = numbers.index(start.argument)
            whole = start.kind == "AFTER_SEQUENCE_NUMBER" and start.sub_sequence_number is None
            self._drop(index + 1 if whole else index)
            self.origin = start
            return True

    def head(self, count: int) -> list[dict[str, Any]]:
        """Copies of the first `count` records after `origin`, with their rows (`ROWS`)."""
        with self._condition:
            if self.origin.kind == "AT_TIMESTAMP":
                self._drop(len(self._records) - len(at_or_after(list(self._records), self.origin)))
            records = [dict(record) for record in islice(self._records, count)]
        with_rows(records, self.origin)
        return records

    def take(self, kept: list[dict[str, Any]], end: Position) -> None:
        """Drops the records a task took (`kept`, from the head), ending at `end`.

        An aggregate cut inside (`end` has a user record) stays, partly taken.
        """
        with self._condition:
            self._drop(len(kept) if end.sub_sequence_number is None else len(kept) - 1)
            self.origin = end

    def _drop(self, count: int) -> None:
        for _ in range(count):
            self._bytes -= len(self._records.popleft()["Data"])
        self._condition.notify_all()

    def caught_up(self, until_s: float) -> bool:
        """Whether every record that arrived by `until_s` was received and taken: the
        subscription is live, its last event said the shard held nothing more, and
        PUSH_GRACE_S has passed since `until_s` (Kinesis pushes a record about 70 ms after
        it arrives)."""
        with self._condition:
            return (
                self.running
                and not self._records
                and self._events_since_open > 0
                and self.behind_ms == 0
                and time.time() >= until_s + PUSH_GRACE_S
            )

    @property
    def fruitless(self) -> bool:
        """It stopped before bringing a single event."""
        with self._condition:
            return not self.running and self._events_since_open == 0

    def wait_for_news(self, timeout_s: float) -> None:
        """Waits until an event arrives, the subscription stops, or `timeout_s` passes."""
        with self._condition:
            if self.running and not self._records:
                self._condition.wait(timeout_s)


_registry_lock = threading.Lock()
_subscriptions: dict[tuple[Any, ...], Subscription] = {}


def subscription_for(options: KinesisOptions, shard_id: str) -> Subscription:
    """This process's subscription of `consumerName` to the shard, made on first use.

    Subscriptions no task used for IDLE_CLOSE_S are closed here.
    """
    key = (
        options.endpoint_url,
        options.region,
        options.stream_name,
        options.consumer_name,
        shard_id,
    )
    now = time.monotonic()
    with _registry_lock:
        for other, subscription in list(_subscriptions.items()):
            if other != key and now - subscription.used_s > IDLE_CLOSE_S:
                subscription.close()
                del _subscriptions[other]
        if key not in _subscriptions:
            _subscriptions[key] = Subscription(options, shard_id)
        subscription = _subscriptions[key]
        subscription.used_s = now
        return subscription


class SubscribedTake(TakeReader):
    """What `take` covers in a shard after `start`, read from the shard's subscription;
    then `end` says where it ended. The same records as `reading.TakeRead` reads.

    Reading stops at the first record that arrived after `take.until_s`, at
    `take.limit` rows, at the end of a closed shard, or, once it took a record,
    when the subscription is caught up with the shard PUSH_GRACE_S after
    `take.until_s`. A record pushed later than that is left to the next batch;
    the batch's note (`ends`) makes any re-read of this batch end where this one
    did.
    """

    def __iter__(self) -> Generator[list[dict[str, Any]]]:
        subscription = subscription_for(self.options, self.shard_id)
        with subscription.lock:
            if not subscription.holds(self.start):
                subscription.open_at(self.start)
            yield from self._take(subscription)
            subscription.used_s = time.monotonic()

    def _take(self, subscription: Subscription) -> Iterator[list[dict[str, Any]]]:
        limit, until_s = self.take.limit, self.take.until_s
        last: Position | None = None
        taken, ended, fruitless = 0, False, 0
        next_arrival_s: float | None = None
        while limit is None or taken < limit:
            records = subscription.head(self.options.max_records_per_fetch)
            if records:
                page = take_from_page(records, until_s, None if limit is None else limit - taken)
                next_arrival_s = page.next_arrival_s
                if page.kept and page.end is not None:
                    subscription.take(page.kept, page.end)
                    last, taken = page.end, taken + page.rows
                    yield page.kept
                if page.last:
                    break
                continue
            next_arrival_s = None
            if subscription.ended:
                ended = True
                break
            # The driver plans a take only for a shard whose look found a record that
            # arrived by `until_s`: until one came, a live subscription's last event may
            # predate it (LocalStack pushes every 3 s), and an empty read of a take the
            # next plan repeats would end a Trigger.AvailableNow query short of it.
            if taken > 0 and subscription.caught_up(until_s):
                break
            if not subscription.running:
                fruitless = fruitless + 1 if subscription.fruitless else 0
                if self._shard_ended_at(subscription.origin):
                    ended = True
                    break
                if fruitless >= MAX_FRUITLESS_RENEWALS:
                    raise KinesisSourceError(
                        f"the fan-out subscription to shard {self.shard_id} of "
                        f"{self.options.stream_name!r} ended {fruitless} times in a row before "
                        f"any event; last error: {subscription.failure}"
                    )
                subscription.renew()
                continue
            subscription.wait_for_news(_WAIT_S)
        self.end = ShardEnd(
            last or self.start,
            ended,
            taken,
            self.not_before_s,
            next_arrival_s,
            subscription.behind_ms,
        )

    def _shard_ended_at(self, position: Position) -> bool:
        """Whether a closed shard ends at `position`, asked with one GetRecords: a
        subscription that stops without naming the children (as an emulator's may)."""
        peek = peek_shard(
            self.client,
            self.options,
            self.shard_id,
            position,
            until_s=time.time(),
            not_before_s=self.not_before_s,
        )
        return peek.ended
