"""What the proxy does on top of LocalStack, as one value a test can swap while it runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kinesis_proxy import limits

DATA_PLANE = frozenset({"GetRecords", "GetShardIterator", "PutRecord", "PutRecords", "ListShards"})


@dataclass
class Behaviours:
    """What the proxy does on top of LocalStack; everything off is a plain pass-through."""

    read_limits: bool = False
    write_limits: bool = False
    control_plane_limits: bool = False
    # Per shard, this many reads that would return records return an empty page instead.
    empty_pages_first: int = 0
    empty_page_probability: float = 0.0
    iterator_lifetime_s: float | None = None
    visibility_delay_s: float = 0.0
    kms_throttling_probability: float = 0.0
    server_error_probability: float = 0.0
    unavailable_probability: float = 0.0
    dropped_connection_probability: float = 0.0
    # Not AWS-like (AWS throttles by rate, not by chance): refuses a random share
    # of reads, for tests of the retry path alone.
    random_throttling_probability: float = 0.0
    faulty_operations: frozenset[str] = DATA_PLANE
    seed: int = 7
    # The limits themselves, AWS's unless a test needs them lower.
    reads_per_s: int = limits.READS_PER_SHARD_PER_S
    read_bytes_per_s: int = limits.READ_BYTES_PER_SHARD_PER_S
    iterators_per_s: int = limits.ITERATORS_PER_SHARD_PER_S
    writes_per_s: int = limits.WRITES_PER_SHARD_PER_S
    write_bytes_per_s: int = limits.WRITE_BYTES_PER_SHARD_PER_S
    list_shards_per_s: int = limits.LIST_SHARDS_PER_STREAM_PER_S
    describe_stream_summary_per_s: int = limits.DESCRIBE_STREAM_SUMMARY_PER_S
    # Enhanced fan-out served by the proxy (`fan_out`); off: LocalStack's own.
    fan_out: bool = False
    consumer_creating_s: float = 0.0
    subscribe_in_use_s: float = 0.0
    subscription_lifetime_s: float | None = None
    # Not AWS's rule, a fault: a subscription's connection is cut once it pushed this many.
    subscription_cut_after_records: int | None = None
    fan_out_read_limits: bool = False
    # Per shard, this many first records are gone as past the stream's retention (`trimming`).
    trimmed_records: int = 0

    @classmethod
    def aws(cls, **overrides: Any) -> Behaviours:
        """AWS's limits, iterator lifetime and enhanced fan-out, and no random faults."""
        settings: dict[str, Any] = {
            "read_limits": True,
            "write_limits": True,
            "control_plane_limits": True,
            "iterator_lifetime_s": limits.ITERATOR_LIFETIME_S,
            "fan_out": True,
            "consumer_creating_s": limits.CONSUMER_CREATING_S,
            "subscribe_in_use_s": limits.SUBSCRIBE_IN_USE_S,
            "subscription_lifetime_s": limits.SUBSCRIPTION_LIFETIME_S,
            "fan_out_read_limits": True,
        }
        return cls(**(settings | overrides))
