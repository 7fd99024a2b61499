"""A Kinesis that behaves like AWS: an HTTP proxy on loopback (or a Compose service) in front
of LocalStack.

LocalStack's kinesis-mock is kinder than AWS: it never throttles, never answers
an empty page while records wait, never expires an iterator and shows every
record the instant it arrives. `KinesisProxy` forwards each call to LocalStack
and, as `Behaviours` says, answers the way AWS documents it may:

- per-shard read limits: 5 GetRecords/s and 2 MB/s (a bucket of 2 MB refilled
  at 2 MB/s, so one 10 MB answer shuts the shard for ~4 s), and 5
  GetShardIterator/s, refused with ProvisionedThroughputExceededException
  (`reads`);
- per-shard write limits: 1,000 records/s and 1 MiB/s, refused per entry in
  PutRecords (and as an error for PutRecord) (`writes`);
- control-plane limits: ListShards 100/s per stream, DescribeStreamSummary 20/s,
  refused with LimitExceededException (`faults`);
- empty pages with MillisBehindLatest > 0 where records wait, iterators that
  expire, late visibility (`reads`);
- KMSThrottlingException on reads and writes, 500 and 503 answers, and
  connections dropped without an answer, each at a seeded random rate (`faults`).
- enhanced fan-out served by the proxy itself: consumers CREATING then
  ACTIVE, SubscribeToShard pushed as records arrive, the 5-second and
  5-minute rules, 2 MB/s per consumer per shard (`fan_out`);
- records trimmed as past the stream's retention, for data-loss tests
  (`trimming`).

Bodies are Kinesis' JSON 1.1, as botocore sends them; a body in another
encoding (CBOR, from the Java SDK) is passed through untouched, with no
behaviour applied. Run alone (`python -m kinesis_proxy`, docker-compose.proxy.yml),
`GET /_proxy/events` answers its counters as JSON, `GET /_proxy/health` that it serves;
its settings are `ProxySettings`.
"""

from kinesis_proxy.behaviours import Behaviours
from kinesis_proxy.limits import ByteBucket, SlidingWindow
from kinesis_proxy.server import KinesisProxy, running_proxy
from kinesis_proxy.settings import ProxySettings, parse_settings

__all__ = [
    "Behaviours",
    "ByteBucket",
    "KinesisProxy",
    "ProxySettings",
    "SlidingWindow",
    "parse_settings",
    "running_proxy",
]
