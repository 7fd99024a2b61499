"""The proxy's enhanced fan-out: stream consumers and SubscribeToShard as AWS documents them.

LocalStack's own SubscribeToShard polls its GetRecords with about 3 s between
empty polls; this one polls LocalStack every POLL_S, a thread per subscription
reading ahead of its pushes (`_ReadAhead`), and pushes records as they arrive.
The proxy keeps the consumers itself (Register/Describe/List/
DeregisterStreamConsumer), each CREATING for `consumer_creating_s` before it is
ACTIVE, and applies AWS's rules, each a behaviour:

- `subscribe_in_use_s` (AWS: 5 s): SubscribeToShard again for the same consumer
  and shard within it answers ResourceInUseException; a later call takes the
  subscription over, and the earlier one ends with a ResourceInUseException event;
- `subscription_lifetime_s` (AWS: 5 minutes): the event stream then ends;
- `fan_out_read_limits`: 2 MB/s per consumer per shard (`read_bytes_per_s`),
  pushed no faster;
- `subscription_cut_after_records` (not AWS's rule, a fault): a subscription's
  connection is cut, with no end, once it pushed that many records;
- a closed shard's last event names its children (`ChildShards`) and has no
  `ContinuationSequenceNumber`; an event comes at least every EVENT_EVERY_S.

Events are encoded as botocore reads them over Kinesis' JSON protocol, the way
LocalStack 4.14 serves them: an `application/vnd.amazon.eventstream` body of
binary messages (prelude with lengths and CRC32, string headers `:event-type`,
`:message-type`, a JSON payload, CRC32 of the message), the first an
`initial-response`; an error is a message of type `exception` naming it.
"""

from __future__ import annotations

import base64
import json
import struct
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from email.message import Message
from functools import partial
from typing import Any
from zlib import crc32

from kinesis_proxy.answers import Answer, error, ok, passed_on
from kinesis_proxy.behaviours import Behaviours
from kinesis_proxy.limits import ByteBucket
from kinesis_proxy.state import ProxyState
from kinesis_proxy.trimming import Trimming, subscription_start
from kinesis_proxy.upstream import Upstream

EVENT_STREAM_CONTENT_TYPE = "application/vnd.amazon.eventstream"
# How often a subscription asks LocalStack for new records, and sends an event at least.
POLL_S = 0.05
EVENT_EVERY_S = 5.0
# Records per GetRecords call to LocalStack, and bytes (base64) a subscription holds read
# ahead of its pushes (`_ReadAhead`): small pages, so that no push waits on a large one
# (measured on figure 15's stream: pages of 25 after a first of 25 reached 0.91x of the
# limit, pages of 10,000 after it 0.75x: LocalStack serves a large page in seconds).
UPSTREAM_PAGE_RECORDS = 25
READ_AHEAD_BYTES = 10 * 1024 * 1024
_STRING_HEADER = 7
OPERATIONS = frozenset(
    {
        "RegisterStreamConsumer",
        "DescribeStreamConsumer",
        "ListStreamConsumers",
        "DeregisterStreamConsumer",
        "SubscribeToShard",
    }
)


class ConnectionCut(Exception):  # noqa: N818 (what happens, not an error of the proxy)
    """Raised by an event stream to end its connection without the HTTP terminator."""


def event_message(event_type: str, payload: bytes, message_type: str = "event") -> bytes:
    """One event-stream message: prelude, its CRC, string headers, payload, message CRC."""
    headers = {":event-type": event_type, ":message-type": message_type}
    if message_type == "exception":
        headers = {":exception-type": event_type, ":message-type": message_type}
    headers[":content-type"] = "application/json"
    encoded = b""
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        encoded += struct.pack("!B", len(raw_name)) + raw_name
        encoded += struct.pack("!BH", _STRING_HEADER, len(raw_value)) + raw_value
    prelude = struct.pack("!II", len(encoded) + len(payload) + 16, len(encoded))
    message = prelude + struct.pack("!I", crc32(prelude)) + encoded + payload
    return message + struct.pack("!I", crc32(message))


def error_message(code: str, text: str) -> bytes:
    return event_message(code, json.dumps({"message": text}).encode(), "exception")


@dataclass
class Consumer:
    name: str
    arn: str
    stream_arn: str
    created_s: float
    active_s: float

    def description(self, now_s: float) -> dict[str, Any]:
        return {
            "ConsumerName": self.name,
            "ConsumerARN": self.arn,
            "ConsumerStatus": "ACTIVE" if now_s >= self.active_s else "CREATING",
            "ConsumerCreationTimestamp": self.created_s,
            "StreamARN": self.stream_arn,
        }


@dataclass
class _Subscription:
    """A live subscription: ended by a later one (`taken`) or by its consumer's deregistration."""

    started_s: float
    taken: threading.Event = field(default_factory=threading.Event)
    deregistered: threading.Event = field(default_factory=threading.Event)


class FanOut:
    """Consumers and subscriptions, shared by the proxy's handler threads."""

    def __init__(self, state: ProxyState, upstream: Upstream, trimming: Trimming) -> None:
        self._state = state
        self._upstream = upstream.call
        self._trimming = trimming
        self._lock = threading.Lock()
        self._consumers: dict[str, Consumer] = {}  # by ARN
        self._subscriptions: dict[tuple[str, str], _Subscription] = {}
        self._closed = threading.Event()

    def close(self) -> None:
        """Ends every event stream (the proxy is stopping)."""
        self._closed.set()

    def answer(self, operation: str, request: dict[str, Any], headers: Message) -> Answer:
        handlers = {
            "RegisterStreamConsumer": self._register,
            "DescribeStreamConsumer": self._describe,
            "ListStreamConsumers": self._list,
            "DeregisterStreamConsumer": self._deregister,
            "SubscribeToShard": self._subscribe,
        }
        return handlers[operation](request, headers)

    # Consumers ---------------------------------------------------------------

    def _register(self, request: dict[str, Any], headers: Message) -> Answer:
        stream_arn, name = str(request["StreamARN"]), str(request["ConsumerName"])
        status, document = self._upstream(
            "DescribeStreamSummary", {"StreamARN": stream_arn}, headers
        )
        if status != 200:
            return passed_on(status, document)
        now = time.time()
        with self._lock:
            if self._find(stream_arn, name) is not None:
                return error("ResourceInUseException", f"Consumer {name} exists")
            consumer = Consumer(
                name,
                f"{stream_arn}/consumer/{name}:{int(now)}",
                stream_arn,
                now,
                now + self._state.behaviours.consumer_creating_s,
            )
            self._consumers[consumer.arn] = consumer
        self._state.count("consumers_registered", 1)
        description = consumer.description(now)
        description.pop("StreamARN")
        return ok({"Consumer": description})

    def _describe(self, request: dict[str, Any], headers: Message) -> Answer:
        with self._lock:
            consumer = self._named(request)
        if consumer is None:
            return _missing_consumer(request)
        return ok({"ConsumerDescription": consumer.description(time.time())})

    def _list(self, request: dict[str, Any], headers: Message) -> Answer:
        now = time.time()
        with self._lock:
            listed = [
                consumer.description(now)
                for consumer in self._consumers.values()
                if consumer.stream_arn == request["StreamARN"]
            ]
        for description in listed:
            description.pop("StreamARN")
        return ok({"Consumers": listed})

    def _deregister(self, request: dict[str, Any], headers: Message) -> Answer:
        with self._lock:
            consumer = self._named(request)
            if consumer is None:
                return _missing_consumer(request)
            del self._consumers[consumer.arn]
            for (arn, _), subscription in self._subscriptions.items():
                if arn == consumer.arn:
                    subscription.deregistered.set()
        self._state.count("consumers_deregistered", 1)
        return ok({})

    def _named(self, request: dict[str, Any]) -> Consumer | None:
        """The consumer a request names by ARN, or by stream ARN and name; the lock held."""
        if "ConsumerARN" in request:
            return self._consumers.get(str(request["ConsumerARN"]))
        return self._find(str(request.get("StreamARN")), str(request.get("ConsumerName")))

    def _find(self, stream_arn: str, name: str) -> Consumer | None:
        return next(
            (c for c in self._consumers.values() if (c.stream_arn, c.name) == (stream_arn, name)),
            None,
        )

    # Subscriptions -------------------------------------------------------------

    def _subscribe(self, request: dict[str, Any], headers: Message) -> Answer:
        arn, shard_id = str(request["ConsumerARN"]), str(request["ShardId"])
        refused = self._trimmed_start(arn, shard_id, request, headers)
        if refused is not None:
            return refused
        behaviours, now = self._state.behaviours, time.time()
        with self._lock:
            consumer = self._consumers.get(arn)
            if consumer is None:
                return _missing_consumer(request)
            if now < consumer.active_s:
                return error("ResourceInUseException", f"{arn} is CREATING")
            earlier = self._subscriptions.get((arn, shard_id))
            if earlier is not None and now - earlier.started_s < behaviours.subscribe_in_use_s:
                self._state.count("subscriptions_in_use", 1)
                return error(
                    "ResourceInUseException",
                    f"Another active subscription exists for consumer {arn} on {shard_id}",
                )
            if earlier is not None:
                earlier.taken.set()
            subscription = _Subscription(now)
            self._subscriptions[(arn, shard_id)] = subscription
        stream = consumer.stream_arn.rpartition("/")[2]
        iterator_request = _iterator_request(stream, shard_id, request["StartingPosition"])
        status, document = self._upstream("GetShardIterator", iterator_request, headers)
        if status != 200:
            return passed_on(status, document)
        self._state.count("subscriptions", 1)
        iterator = str(document["ShardIterator"])
        events = self._events(stream, shard_id, iterator, subscription, headers)
        return Answer(200, b"", EVENT_STREAM_CONTENT_TYPE, events)

    def _trimmed_start(
        self, arn: str, shard_id: str, request: dict[str, Any], headers: Message
    ) -> Answer | None:
        """InvalidArgumentException for a start at a trimmed record (`trimming`), before the
        subscription takes the shard over."""
        with self._lock:
            consumer = self._consumers.get(arn)
        if consumer is None:
            return None  # answered as missing next
        stream = consumer.stream_arn.rpartition("/")[2]
        start = subscription_start(request)
        return self._trimming.refusal("SubscribeToShard", stream, shard_id, start, headers)

    def _events(
        self,
        stream: str,
        shard_id: str,
        first_iterator: str,
        subscription: _Subscription,
        headers: Message,
    ) -> Generator[bytes, None, None]:
        yield event_message("initial-response", b"{}")
        bucket = ByteBucket(self._state.behaviours.read_bytes_per_s)
        last_event_s = 0.0
        pushed = 0
        # AWS always says where to continue, before any record too: the shard's first number.
        continuation = (
            self._shard(stream, shard_id, headers)
            .get("SequenceNumberRange", {})
            .get("StartingSequenceNumber")
        )
        ahead = _ReadAhead(partial(self._page, stream, shard_id, headers), first_iterator)
        try:
            while True:
                behaviours = self._state.behaviours
                ending = self._ending(subscription, behaviours)
                if ending is not None:
                    if ending:
                        yield ending
                    return
                held = ahead.held()
                if held.failure is not None:
                    yield held.failure
                    return
                if not held.paged:  # AWS's first event says how far behind: wait for it
                    time.sleep(POLL_S)
                    continue
                pending = held.records
                records = self._before_cut(
                    self._pushable(pending, bucket, behaviours), pushed, behaviours
                )
                ahead.drop(len(records))
                left = len(pending) > len(records)
                pushed += len(records)
                if records:
                    continuation = str(records[-1]["SequenceNumber"])
                event: dict[str, Any] = {
                    "Records": records,
                    "ContinuationSequenceNumber": continuation,
                    "MillisBehindLatest": max(held.behind_ms, 1) if left else held.behind_ms,
                }
                closed = held.read_to_end and not left  # a closed shard, read to its end
                if closed:
                    event["ContinuationSequenceNumber"] = None
                    event["ChildShards"] = self._children(stream, shard_id, headers)
                if records or closed or time.monotonic() - last_event_s >= EVENT_EVERY_S:
                    self._state.count("records_pushed", len(records))
                    yield event_message("SubscribeToShardEvent", json.dumps(event).encode())
                    last_event_s = time.monotonic()
                if closed:
                    return
                if not records:
                    time.sleep(POLL_S)
        finally:
            ahead.stop()

    def _before_cut(
        self, records: list[dict[str, Any]], pushed: int, behaviours: Behaviours
    ) -> list[dict[str, Any]]:
        """`records` up to `subscription_cut_after_records` pushed; at it, the cut."""
        cut_after = behaviours.subscription_cut_after_records
        if cut_after is None:
            return records
        if pushed >= cut_after:
            self._state.count("subscriptions_cut", 1)
            raise ConnectionCut
        return records[: cut_after - pushed]

    def _page(
        self, stream: str, shard_id: str, headers: Message, iterator: str
    ) -> tuple[dict[str, Any], list[dict[str, Any]]] | bytes:
        """One GetRecords page of LocalStack's and its untrimmed records, or the error event
        that ends the subscription."""
        request = {"ShardIterator": iterator, "Limit": UPSTREAM_PAGE_RECORDS}
        status, page = self._upstream("GetRecords", request, headers)
        if status != 200:
            return error_message(str(page.get("__type", "InternalFailure")), str(page))
        return page, self._trimming.untrimmed(stream, shard_id, page.get("Records", []), headers)

    def _ending(self, subscription: _Subscription, behaviours: Behaviours) -> bytes | None:
        """Why the subscription ends now: an error message to send last, b"" to just end
        (expired, or the proxy stopping); None: it goes on."""
        lifetime = behaviours.subscription_lifetime_s
        if self._closed.is_set():
            return b""
        if lifetime is not None and time.time() - subscription.started_s >= lifetime:
            self._state.count("subscriptions_expired", 1)
            return b""
        if subscription.taken.is_set():
            return error_message("ResourceInUseException", "the subscription was taken over")
        if subscription.deregistered.is_set():
            return error_message("ResourceNotFoundException", "the consumer was deregistered")
        return None

    @staticmethod
    def _pushable(
        pending: list[dict[str, Any]], bucket: ByteBucket, behaviours: Behaviours
    ) -> list[dict[str, Any]]:
        """The records the next event carries: all, or under the read limit a fifth of a
        second's bytes (at least one record), once the consumer's meter allows."""
        if not pending or not behaviours.fan_out_read_limits:
            return pending
        while not bucket.allows(time.monotonic()):
            time.sleep(POLL_S)  # pushed no faster than the consumer's 2 MB/s
        budget, size, count = behaviours.read_bytes_per_s / 5, 0, 0
        for record in pending:
            size += len(base64.b64decode(record["Data"]))
            count += 1
            if size >= budget:
                break
        bucket.spend(size)
        return pending[:count]

    def _shard(self, stream: str, shard_id: str, headers: Message) -> dict[str, Any]:
        return next((s for s in self._shards(stream, headers) if s["ShardId"] == shard_id), {})

    def _shards(self, stream: str, headers: Message) -> list[dict[str, Any]]:
        status, document = self._upstream("ListShards", {"StreamName": stream}, headers)
        return list(document.get("Shards", [])) if status == 200 else []

    def _children(self, stream: str, shard_id: str, headers: Message) -> list[dict[str, Any]]:
        return [
            {
                "ShardId": shard["ShardId"],
                "ParentShards": [
                    parent
                    for parent in (shard.get("ParentShardId"), shard.get("AdjacentParentShardId"))
                    if parent
                ],
                "HashKeyRange": shard["HashKeyRange"],
            }
            for shard in self._shards(stream, headers)
            if shard_id in (shard.get("ParentShardId"), shard.get("AdjacentParentShardId"))
        ]


@dataclass(frozen=True)
class _Held:
    """What a subscription read ahead holds now."""

    records: list[dict[str, Any]]  # read, not pushed yet
    behind_ms: int  # the last page's MillisBehindLatest
    paged: bool  # a page was read
    read_to_end: bool  # the shard is closed and every record of it was read
    failure: bytes | None  # the error event that ends the subscription


class _ReadAhead:
    """A subscription's records, read from LocalStack by a thread of its own ahead of the
    pushes, up to READ_AHEAD_BYTES.

    Why: AWS pushes from its own storage, while a LocalStack GetRecords of large records
    takes seconds (a 6.6 MB page of 40 KB records, 3 s): a push loop that waited on each
    page held every consumer below its 2 MB/s (a plain boto3 subscriber of figure 15's
    stream reached 0.64x of it).
    """

    def __init__(
        self,
        page: Callable[[str], tuple[dict[str, Any], list[dict[str, Any]]] | bytes],
        iterator: str,
    ) -> None:
        self._page = page
        self._lock = threading.Lock()
        self._records: list[dict[str, Any]] = []
        self._bytes = 0
        self._behind_ms = 0
        self._paged = False
        self._read_to_end = False
        self._failure: bytes | None = None
        self._stopped = threading.Event()
        threading.Thread(target=self._read, args=(iterator,), daemon=True).start()

    def held(self) -> _Held:
        with self._lock:
            return _Held(
                list(self._records),
                self._behind_ms,
                self._paged,
                self._read_to_end,
                self._failure,
            )

    def drop(self, count: int) -> None:
        """Forgets the first `count` records held: they were pushed."""
        with self._lock:
            for record in self._records[:count]:
                self._bytes -= len(record["Data"])
            del self._records[:count]

    def stop(self) -> None:
        self._stopped.set()

    def _read(self, iterator: str | None) -> None:
        while iterator is not None and not self._stopped.is_set():
            with self._lock:
                full = self._bytes >= READ_AHEAD_BYTES
            if full:
                self._stopped.wait(POLL_S)
                continue
            answer = self._page(iterator)
            if isinstance(answer, bytes):
                with self._lock:
                    self._failure = answer
                return
            page, records = answer
            iterator = page.get("NextShardIterator")
            with self._lock:
                self._records.extend(records)
                self._bytes += sum(len(record["Data"]) for record in records)
                self._behind_ms = int(page.get("MillisBehindLatest", 0))
                self._paged = True
                self._read_to_end = iterator is None
            if not records:
                self._stopped.wait(POLL_S)


def _iterator_request(stream: str, shard_id: str, start: dict[str, Any]) -> dict[str, Any]:
    request = {"StreamName": stream, "ShardId": shard_id, "ShardIteratorType": start["Type"]}
    if "SequenceNumber" in start:
        request["StartingSequenceNumber"] = start["SequenceNumber"]
    if "Timestamp" in start:
        request["Timestamp"] = start["Timestamp"]
    return request


def _missing_consumer(request: dict[str, Any]) -> Answer:
    named = request.get("ConsumerARN") or request.get("ConsumerName")
    return error("ResourceNotFoundException", f"Consumer {named} not found")
