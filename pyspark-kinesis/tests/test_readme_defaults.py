"""The option defaults this package's README states are the code's: each sentence below
is quoted from README.md and checked against the options parsed with nothing set."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pyspark_kinesis.extra_options import BatchReadOptions, SinkOptions
from pyspark_kinesis.options import KinesisOptions
from pyspark_kinesis.planning import DEFAULT_MAX_RECORDS_PER_SHARD
from pyspark_kinesis.reading import DEFAULT_FETCH_RATE_MB

pytestmark = pytest.mark.unit

README = " ".join((Path(__file__).resolve().parents[1] / "README.md").read_text().split())
NOTHING_SET = {"streamName": "events"}


def _read() -> KinesisOptions:
    return KinesisOptions.parse(NOTHING_SET)


def _sink() -> SinkOptions:
    return SinkOptions.parse(NOTHING_SET)


# (the README's words, whether the code's default is what they say)
CLAIMS: list[tuple[str, Callable[[], bool]]] = [
    (
        "at most 100,000 rows per shard per batch",
        lambda: _read().max_records_per_shard is None and DEFAULT_MAX_RECORDS_PER_SHARD == 100_000,
    ),
    ("no per-trigger limit", lambda: _read().max_records_per_trigger is None),
    ("10,000 records per call", lambda: _read().max_records_per_fetch == 10_000),
    ("250 ms least time between reads of a shard", lambda: _read().min_fetch_period_s == 0.25),
    (
        "and 2 MB/s per shard",
        lambda: _read().max_fetch_rate_mb is None and DEFAULT_FETCH_RATE_MB == 2.0,
    ),
    ("`failOnDataLoss` true, `LATEST`", lambda: _read().fail_on_data_loss),
    (
        "`failOnDataLoss` true, `LATEST`",
        lambda: _read().starting_position.kind == "LATEST",
    ),
    (
        "(default 1 s, as in all three peers;",
        lambda: _read().shard_listing_interval_s == 1.0,
    ),
    ("the shard (default 5 minutes)", lambda: _read().read_retry_deadline_s == 300.0),
    (
        "when the query stops (default false: it stays registered)",
        lambda: not _read().require_consumer_deregistration,
    ),
    ("`false` (both peers default to `true`", lambda: not _sink().aggregate),
    (
        "`maxRecordsPerRequest` (`kinesis.maxRecordsPerRequest`) | | | 500 |",
        lambda: _sink().max_records_per_request == 500,
    ),
    (
        "`maxBytesPerRequest` (`kinesis.maxBytesPerRequest`) | | | 5242880 |",
        lambda: _sink().max_bytes_per_request == 5 * 1024 * 1024,
    ),
    (
        "`writeRetryDeadline` (`kinesis.writeRetryDeadline`) | | | `5m` |",
        lambda: _sink().retry_deadline_s == 300.0,
    ),
    ("`kinesis.sink.maxConnections` | 2 |", lambda: _sink().concurrent_requests == 2),
    (
        "or `AT_TIMESTAMP:<epoch seconds or ISO-8601>` | `LATEST` |",
        lambda: BatchReadOptions.parse(NOTHING_SET).until_s is None,
    ),
]


@pytest.mark.parametrize(("sentence", "holds"), CLAIMS, ids=[claim for claim, _ in CLAIMS])
def test_the_readme_states_the_codes_default(sentence: str, holds: Callable[[], bool]) -> None:
    assert sentence in README, f"README.md no longer says {sentence!r}: update this test"
    assert holds(), f"README.md says {sentence!r}, the code's default differs"
