"""The source's options, parsed once into a typed, picklable object.

Users arrive with one of three option dialects: the tutorial's and qubole's
(`streamName`, `endpointUrl`, `awsSecretKey`, ...), the AWS connector's
(`kinesis.streamName`, `kinesis.maxFetchRecordsPerShard`, ...) and Databricks'
(`streamARN`, `initialPosition`, `maxRecordsPerFetch`, ...). Every accepted name
maps to exactly one field here, so the three dialects mean the same thing, and a
name that maps to nothing is an error rather than a silently ignored typo.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pyspark_kinesis.positions import Position, parse_position


class KinesisOptionError(ValueError):
    """An option is unknown, missing or has a value the source cannot use."""


# Option names as users write them (matched case-insensitively) -> field name.
_ALIASES: dict[str, tuple[str, ...]] = {
    "stream_name": ("streamName", "kinesis.streamName"),
    "stream_arn": ("streamARN", "kinesis.streamARN"),
    "endpoint_url": ("endpointUrl", "kinesis.endpointUrl"),
    "region": ("region", "regionName", "kinesis.region"),
    "access_key_id": ("awsAccessKeyId", "awsAccessKey", "kinesis.awsAccessKeyId"),
    "secret_access_key": ("awsSecretKey", "awsSecretAccessKey", "kinesis.awsSecretKey"),
    "session_token": ("sessionToken", "awsSessionToken", "kinesis.sessionToken"),
    "role_arn": ("awsSTSRoleARN", "roleArn", "kinesis.stsRoleArn"),
    "role_session_name": ("awsSTSSessionName", "roleSessionName", "kinesis.stsSessionName"),
    "role_external_id": ("awsSTSExternalId", "roleExternalId", "kinesis.stsExternalId"),
    "starting_position": ("startingPosition", "initialPosition", "kinesis.startingPosition"),
    "starting_timestamp": ("startingTimestamp", "kinesis.startingTimestamp"),
    "max_records_per_trigger": ("maxRecordsPerTrigger", "kinesis.maxRecordsPerTrigger"),
    "max_records_per_shard": ("maxRecordsPerShard", "kinesis.maxFetchRecordsPerShard"),
    "max_records_per_fetch": ("maxRecordsPerFetch", "kinesis.maxRecordsPerFetch"),
    "max_fetch_rate_mb": ("maxFetchRate", "kinesis.maxFetchRate"),
    "min_fetch_period_s": ("minFetchPeriod", "kinesis.minFetchPeriod"),
    "max_fetch_duration_s": ("maxFetchDuration", "kinesis.maxFetchDuration"),
    "fail_on_data_loss": ("failOnDataLoss", "kinesis.failOnDataLoss"),
    "metadata_path": ("metadataPath", "kinesis.metadataPath"),
}
_FIELD_BY_NAME = {alias.lower(): name for name, aliases in _ALIASES.items() for alias in aliases}
# The fields KinesisOptions keeps out of its repr: error messages hide them too.
_SECRET_FIELDS = frozenset(
    {"access_key_id", "secret_access_key", "session_token", "role_external_id"}
)

# GetRecords returns at most 10,000 records per call (Kinesis API limit).
MAX_RECORDS_PER_FETCH = 10_000
# 4 GetRecords/s per shard, inside AWS's 5, counting the driver's look and the tasks together.
DEFAULT_MIN_FETCH_PERIOD_S = 0.25
_STREAM_ARN = re.compile(
    r"^arn:aws[\w-]*:kinesis:(?P<region>[\w-]+):\d{12}:stream/(?P<name>[\w.-]+)$"
)
_DURATION = re.compile(
    r"^\s*(?P<value>\d+(?:\.\d+)?)\s*(?P<unit>ms|s|sec|seconds?|m|min|minutes?)?\s*$"
)
_SECONDS_PER_UNIT = {"ms": 0.001, "m": 60.0, "min": 60.0, "minute": 60.0, "minutes": 60.0}


@dataclass(frozen=True)
class KinesisOptions:
    """Everything the source needs to reach a stream and pace its reads."""

    stream_name: str
    region: str | None = None
    endpoint_url: str | None = None
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    role_arn: str | None = None
    role_session_name: str = "pyspark-kinesis"
    role_external_id: str | None = field(default=None, repr=False)
    starting_position: Position = field(default_factory=lambda: parse_position("LATEST"))
    shard_starting_positions: Mapping[str, Position] = field(default_factory=dict)
    max_records_per_trigger: int | None = None
    max_records_per_shard: int | None = None
    max_records_per_fetch: int = MAX_RECORDS_PER_FETCH
    max_fetch_rate_mb: float | None = None
    min_fetch_period_s: float = DEFAULT_MIN_FETCH_PERIOD_S
    max_fetch_duration_s: float | None = None
    fail_on_data_loss: bool = True
    metadata_path: str | None = None

    @classmethod
    def parse(cls, options: Mapping[str, str]) -> KinesisOptions:
        """Builds the options from Spark's option map, or raises KinesisOptionError."""
        values = _by_field(options)
        stream_name, arn_region = _stream_identity(values)
        has_key, has_secret = "access_key_id" in values, "secret_access_key" in values
        if has_key != has_secret:
            raise KinesisOptionError(
                "set both awsAccessKeyId and awsSecretKey, or neither "
                "(neither means the default AWS credential chain)"
            )
        starting, per_shard = _starting_positions(values)
        period = _duration_s(values, "min_fetch_period_s")
        return cls(
            stream_name=stream_name,
            region=values.get("region") or arn_region,
            endpoint_url=values.get("endpoint_url") or None,
            access_key_id=values.get("access_key_id"),
            secret_access_key=values.get("secret_access_key"),
            session_token=values.get("session_token"),
            role_arn=values.get("role_arn"),
            role_session_name=values.get("role_session_name", "pyspark-kinesis"),
            role_external_id=values.get("role_external_id"),
            starting_position=starting,
            shard_starting_positions=per_shard,
            max_records_per_trigger=_positive_int(values, "max_records_per_trigger"),
            max_records_per_shard=_positive_int(values, "max_records_per_shard"),
            max_records_per_fetch=min(
                _positive_int(values, "max_records_per_fetch") or MAX_RECORDS_PER_FETCH,
                MAX_RECORDS_PER_FETCH,
            ),
            max_fetch_rate_mb=_positive_float(values, "max_fetch_rate_mb"),
            min_fetch_period_s=DEFAULT_MIN_FETCH_PERIOD_S if period is None else period,
            max_fetch_duration_s=_positive_duration_s(values, "max_fetch_duration_s"),
            fail_on_data_loss=_boolean(values, "fail_on_data_loss", default=True),
            metadata_path=_local_directory(values, "metadata_path"),
        )

    def starting_position_for(self, shard_id: str) -> Position:
        return self.shard_starting_positions.get(shard_id, self.starting_position)


def _option_names(field_name: str) -> str:
    return " / ".join(_ALIASES[field_name])


def _by_field(options: Mapping[str, str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for name, value in options.items():
        field_name = _FIELD_BY_NAME.get(name.lower())
        if field_name is None:
            accepted = ", ".join(alias for aliases in _ALIASES.values() for alias in aliases)
            raise KinesisOptionError(f"unknown option {name!r}; accepted options: {accepted}")
        if field_name in values and values[field_name] != value:
            shown = "<secret>" if field_name in _SECRET_FIELDS else repr(value)
            raise KinesisOptionError(
                f"option {name!r}={shown} conflicts with another spelling of the same option "
                f"({_option_names(field_name)}): give it once"
            )
        values[field_name] = value
    return values


def _stream_identity(values: Mapping[str, str]) -> tuple[str, str | None]:
    name, arn = values.get("stream_name"), values.get("stream_arn")
    arn_name = arn_region = None
    if arn:
        match = _STREAM_ARN.match(arn)
        if match is None:
            raise KinesisOptionError(
                f"streamARN {arn!r} is not a Kinesis stream ARN "
                "(arn:aws:kinesis:<region>:<account>:stream/<name>)"
            )
        arn_name, arn_region = match["name"], match["region"]
    if name and arn_name and name != arn_name:
        raise KinesisOptionError(
            f"streamName {name!r} and streamARN {arn!r} name different streams"
        )
    region = values.get("region")
    if region and arn_region and region != arn_region:
        raise KinesisOptionError(
            f"region {region!r} differs from streamARN's region {arn_region!r}: give one of them"
        )
    stream_name = name or arn_name
    if not stream_name:
        raise KinesisOptionError(
            f"missing the stream: set {_option_names('stream_name')} (or streamARN)"
        )
    return stream_name, arn_region


def _starting_positions(values: Mapping[str, str]) -> tuple[Position, dict[str, Position]]:
    raw = values.get("starting_position", "LATEST").strip()
    timestamp = values.get("starting_timestamp")
    if raw.startswith("{"):
        return _json_starting_positions(raw, timestamp)
    return _single_position(raw, timestamp, "startingPosition"), {}


def _json_starting_positions(
    raw: str, timestamp: str | None
) -> tuple[Position, dict[str, Position]]:
    """Databricks' `{"at_timestamp": ...}` or a per-shard map of positions."""
    try:
        document = json.loads(raw)
    except json.JSONDecodeError as error:
        raise KinesisOptionError(f"startingPosition is not valid JSON: {error}") from error
    if not isinstance(document, dict):
        raise KinesisOptionError("startingPosition JSON must be an object")
    if "at_timestamp" in document:
        return _single_position(
            "AT_TIMESTAMP", str(document["at_timestamp"]), "startingPosition"
        ), {}
    default = _single_position(
        str(document.pop("*", "TRIM_HORIZON")), timestamp, "startingPosition"
    )
    per_shard = {
        shard_id: _single_position(str(value), timestamp, f"startingPosition[{shard_id}]")
        for shard_id, value in document.items()
    }
    return default, per_shard


def _single_position(raw: str, timestamp: str | None, option: str) -> Position:
    kind, _, argument = raw.partition(":")
    if kind.strip().upper() == "AT_TIMESTAMP" and not argument:
        if timestamp is None:
            raise KinesisOptionError(
                f"{option} AT_TIMESTAMP needs a time: set startingTimestamp "
                "(ISO-8601 or epoch seconds) or write AT_TIMESTAMP:<time>"
            )
        raw = f"AT_TIMESTAMP:{_epoch_seconds(timestamp)}"
    elif kind.strip().upper() == "AT_TIMESTAMP":
        raw = f"AT_TIMESTAMP:{_epoch_seconds(argument)}"
    try:
        return parse_position(raw)
    except ValueError as error:
        raise KinesisOptionError(f"{option}: {error}") from error


def _epoch_seconds(text: str) -> float:
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as error:
        raise KinesisOptionError(
            f"starting time {text!r} is neither epoch seconds nor ISO-8601"
        ) from error
    # A time without a zone is UTC: the same query starts at the same instant on any host.
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _positive_int(values: Mapping[str, str], name: str) -> int | None:
    if name not in values:
        return None
    try:
        number = int(values[name])
    except ValueError:
        number = 0
    if number < 1:
        raise KinesisOptionError(
            f"{_option_names(name)} must be a whole number of at least 1, not {values[name]!r}"
        )
    return number


def _positive_float(values: Mapping[str, str], name: str) -> float | None:
    if name not in values:
        return None
    try:
        number = float(values[name])
    except ValueError:
        number = 0.0
    if number <= 0:
        raise KinesisOptionError(
            f"{_option_names(name)} must be a positive number, not {values[name]!r}"
        )
    return number


def _duration_s(values: Mapping[str, str], name: str) -> float | None:
    if name not in values:
        return None
    match = _DURATION.match(values[name].lower())
    if match is None:
        raise KinesisOptionError(
            f"{_option_names(name)} must be a duration such as '200ms', '2s' or '1m', "
            f"not {values[name]!r}"
        )
    unit = match["unit"] or "s"
    return float(match["value"]) * _SECONDS_PER_UNIT.get(unit, 1.0)


def _positive_duration_s(values: Mapping[str, str], name: str) -> float | None:
    seconds = _duration_s(values, name)
    if seconds is not None and seconds <= 0:
        raise KinesisOptionError(
            f"{_option_names(name)} must be longer than 0, not {values[name]!r}"
        )
    return seconds


def _boolean(values: Mapping[str, str], name: str, *, default: bool) -> bool:
    if name not in values:
        return default
    text = values[name].strip().lower()
    if text not in ("true", "false"):
        raise KinesisOptionError(
            f"{_option_names(name)} must be true or false, not {values[name]!r}"
        )
    return text == "true"


def _local_directory(values: Mapping[str, str], name: str) -> str | None:
    if name not in values:
        return None
    path = values[name].strip()
    if path.startswith("file://"):
        path = path[len("file://") :]
    if not path or "://" in path:
        raise KinesisOptionError(
            f"{_option_names(name)} must be a directory path that the driver and every "
            f"executor see (local, or a shared mount such as NFS or EFS), not {values[name]!r}"
        )
    return path
