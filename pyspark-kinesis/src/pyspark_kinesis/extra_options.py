"""The options only the sink or the batch read knows, parsed apart from `KinesisOptions`.

One option map reaches the data source whichever way it is used. The names
below are taken out of it first; the rest (stream, endpoint, region,
credentials, role and the read options) is `KinesisOptions`' to parse, so the
sink and the batch read reach Kinesis through the same client and credential
fields as the stream reader, and an unknown name is still an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pyspark_kinesis.durations import OPTION_UNITS, duration_s
from pyspark_kinesis.options import _FIELD_BY_NAME, KinesisOptionError, KinesisOptions
from pyspark_kinesis.starting_positions import StartingPositionError
from pyspark_kinesis.starting_positions import epoch_seconds as _starting_epoch_seconds

# PutRecords takes at most 500 records and 5 MiB per request (Kinesis API limits).
MAX_RECORDS_PER_REQUEST = 500
MAX_BYTES_PER_REQUEST = 5 * 1024 * 1024
DEFAULT_RETRY_DEADLINE_S = 300.0
DEFAULT_CONCURRENT_REQUESTS = 2

_SINK_ALIASES: dict[str, tuple[str, ...]] = {
    "aggregate": (
        "aggregate",
        "kinesis.executor.aggregationEnabled",
        "kinesis.sink.aggregationEnabled",
        "kinesis.aggregate",
    ),
    "max_records_per_request": ("maxRecordsPerRequest", "kinesis.maxRecordsPerRequest"),
    "max_bytes_per_request": ("maxBytesPerRequest", "kinesis.maxBytesPerRequest"),
    "retry_deadline_s": ("writeRetryDeadline", "kinesis.writeRetryDeadline"),
    "concurrent_requests": (
        "concurrentRequests",
        "kinesis.executor.maxConnections",
        "kinesis.sink.maxConnections",
    ),
}
_BATCH_ALIASES: dict[str, tuple[str, ...]] = {
    "ending_position": ("endingPosition", "kinesis.endingPosition"),
    "ending_timestamp": ("endingTimestamp", "kinesis.endingTimestamp"),
}
_ALIASES = {**_SINK_ALIASES, **_BATCH_ALIASES}
# Spark adds these to a stream writer's options itself; they are Spark's, not the sink's.
_SPARK_WRITER_OPTIONS = frozenset({"checkpointlocation", "path", "queryname"})
_FIELD_BY_EXTRA_NAME = {
    alias.lower(): name for name, aliases in _ALIASES.items() for alias in aliases
}


def split_options(options: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(the sink's and batch read's options by field name, the rest but Spark's own)."""
    extra: dict[str, str] = {}
    rest: dict[str, str] = {}
    for name, value in options.items():
        field_name = _FIELD_BY_EXTRA_NAME.get(name.lower())
        if name.lower() in _SPARK_WRITER_OPTIONS:
            continue
        if field_name is None:
            rest[name] = value
        elif extra.setdefault(field_name, value) != value:
            raise KinesisOptionError(
                f"option {name!r}={value!r} conflicts with another spelling of the same "
                f"option ({_names(field_name)}): give it once"
            )
    return extra, rest


def refuse_options_of_another_use(options: Mapping[str, str], use: str) -> None:
    """Fails when `options` holds options of the sink or the batch read that `use` ignores."""
    own = {"sink": _SINK_ALIASES, "batch read": _BATCH_ALIASES}.get(use, {})
    given = [
        name
        for name in options
        if name.lower() in _FIELD_BY_EXTRA_NAME and _FIELD_BY_EXTRA_NAME[name.lower()] not in own
    ]
    if given:
        raise KinesisOptionError(
            f"option(s) {', '.join(given)} do nothing in a {use} (they belong to the "
            "sink or the batch read): remove them"
        )


def starting_position_given(options: Mapping[str, str]) -> bool:
    return any(_FIELD_BY_NAME.get(name.lower()) == "starting_position" for name in options)


@dataclass(frozen=True)
class SinkOptions:
    """How the sink batches, aggregates and retries its PutRecords calls."""

    connection: KinesisOptions
    aggregate: bool = False
    max_records_per_request: int = MAX_RECORDS_PER_REQUEST
    max_bytes_per_request: int = MAX_BYTES_PER_REQUEST
    retry_deadline_s: float = DEFAULT_RETRY_DEADLINE_S
    concurrent_requests: int = DEFAULT_CONCURRENT_REQUESTS

    @classmethod
    def parse(cls, options: Mapping[str, str]) -> SinkOptions:
        extra, rest = split_options(options)
        return cls(
            connection=KinesisOptions.parse(rest),
            aggregate=_boolean(extra, "aggregate"),
            max_records_per_request=_bounded_int(
                extra, "max_records_per_request", MAX_RECORDS_PER_REQUEST
            ),
            max_bytes_per_request=_bounded_int(
                extra, "max_bytes_per_request", MAX_BYTES_PER_REQUEST
            ),
            retry_deadline_s=_duration_s(extra, "retry_deadline_s", DEFAULT_RETRY_DEADLINE_S),
            concurrent_requests=_bounded_int(
                extra, "concurrent_requests", 64, default=DEFAULT_CONCURRENT_REQUESTS
            ),
        )


@dataclass(frozen=True)
class BatchReadOptions:
    """Where a bounded read stops: the records that arrived by `until_s` (None: when planned)."""

    until_s: float | None = None

    @classmethod
    def parse(cls, options: Mapping[str, str]) -> BatchReadOptions:
        extra, _ = split_options(options)
        position = extra.get("ending_position", "LATEST").strip()
        kind, _, argument = position.partition(":")
        timestamp = extra.get("ending_timestamp")
        if kind.upper() == "AT_TIMESTAMP" and (argument or timestamp):
            return cls(_epoch_seconds(argument or timestamp or "", "ending_position"))
        if kind.upper() != "LATEST" or argument:
            raise KinesisOptionError(
                f"{_names('ending_position')} must be LATEST (where each shard stands when the "
                f"read is planned) or AT_TIMESTAMP:<time>, not {position!r}"
            )
        if timestamp is not None:
            return cls(_epoch_seconds(timestamp, "ending_timestamp"))
        return cls()


def _epoch_seconds(text: str, name: str) -> float:
    try:
        return _starting_epoch_seconds(text)
    except StartingPositionError:
        raise KinesisOptionError(
            f"{_names(name)}: {text.strip()!r} is neither epoch seconds nor ISO-8601"
        ) from None


def _names(field_name: str) -> str:
    return " / ".join(_ALIASES[field_name])


def _boolean(values: Mapping[str, str], name: str) -> bool:
    text = values.get(name, "false").strip().lower()
    if text not in ("true", "false"):
        raise KinesisOptionError(f"{_names(name)} must be true or false, not {values[name]!r}")
    return text == "true"


def _bounded_int(
    values: Mapping[str, str], name: str, most: int, *, default: int | None = None
) -> int:
    if name not in values:
        return most if default is None else default
    text = values[name].strip()
    number = int(text) if text.isdigit() else 0
    if not 1 <= number <= most:
        raise KinesisOptionError(
            f"{_names(name)} must be a whole number from 1 to {most}, not {values[name]!r}"
        )
    return number


def _duration_s(values: Mapping[str, str], name: str, default: float) -> float:
    if name not in values:
        return default
    seconds = duration_s(values[name], OPTION_UNITS) or 0.0
    if seconds <= 0:
        raise KinesisOptionError(
            f"{_names(name)} must be a duration longer than 0 such as '30s' or '5m', "
            f"not {values[name]!r}"
        )
    return seconds
