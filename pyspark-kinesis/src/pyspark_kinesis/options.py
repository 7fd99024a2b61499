"""The source's options, parsed once into a typed, picklable object.

Users arrive with one of three option dialects: the tutorial's and qubole's
(`streamName`, `endpointUrl`, `awsSecretKey`, `kinesis.executor.*`, ...), the AWS
connector's (`kinesis.streamName`, `kinesis.maxFetchRecordsPerShard`, ...) and
Databricks' (`streamARN`, `initialPosition`, `maxRecordsPerFetch`, ...). Every name
that does something here maps to exactly one field, so the three dialects mean the
same thing; the peers' names that change nothing here are accepted or refused by
`peer_options`; and any other name is an error rather than a silently ignored typo.

Several streams: `streamName` (or `streamARN`) may list streams, comma-separated
(Databricks' syntax; spaces around names allowed). Per-shard starting positions
then say which stream (`"<stream>/<shard id>"`), and `for_stream` gives the
options of one stream, which is all that reading a shard needs.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from pyspark_kinesis import peer_options
from pyspark_kinesis.durations import OPTION_UNITS, duration_s
from pyspark_kinesis.positions import Position, parse_position
from pyspark_kinesis.starting_positions import StartingPositionError, parse_starting_positions


class KinesisOptionError(ValueError):
    """An option is unknown, missing or has a value the source cannot use."""


# Option names as users write them (matched case-insensitively) -> field name.
_ALIASES: dict[str, tuple[str, ...]] = {
    "stream_name": ("streamName", "kinesis.streamName"),
    "stream_arn": ("streamARN",),
    "endpoint_url": ("endpointUrl", "kinesis.endpointUrl", "endpoint"),
    "region": ("region", "regionName", "kinesis.region"),
    # The AWS connector's region of the stream, where kinesis.region is the connector's own.
    "stream_region": ("kinesis.kinesisRegion",),
    "access_key_id": ("awsAccessKeyId", "awsAccessKey", "kinesis.awsAccessKeyId"),
    "secret_access_key": ("awsSecretKey", "kinesis.awsSecretKey"),
    "session_token": ("sessionToken", "kinesis.sessionToken"),
    "role_arn": ("awsSTSRoleARN", "roleArn", "kinesis.stsRoleArn"),
    "role_session_name": ("awsSTSSessionName", "roleSessionName", "kinesis.stsSessionName"),
    "role_external_id": ("awsSTSExternalId", "roleExternalId"),
    "sts_endpoint_url": ("kinesis.stsEndpointUrl", "stsEndpoint"),
    "starting_position": ("startingPosition", "initialPosition", "kinesis.startingPosition"),
    "starting_timestamp": ("startingTimestamp",),
    "max_records_per_trigger": ("maxRecordsPerTrigger",),
    "max_records_per_shard": (
        "maxRecordsPerShard",
        "kinesis.maxFetchRecordsPerShard",
        "kinesis.executor.maxFetchRecordsPerShard",
    ),
    "max_records_per_fetch": (
        "maxRecordsPerFetch",
        "kinesis.executor.maxRecordPerRead",
        "kinesis.getRecords.numberOfRecordsPerFetch",
    ),
    "max_fetch_rate_mb": ("maxFetchRate",),
    "shards_per_task": ("shardsPerTask",),
    "min_fetch_period_s": ("minFetchPeriod",),
    # The same least time between two reads of a shard, in the peers' milliseconds.
    "fetch_interval_ms": ("kinesis.getRecords.fetchIntervalMs",),
    "idle_between_reads_ms": ("kinesis.executor.idleTimeBetweenReadsInMs",),
    "add_idle_between_reads": ("kinesis.executor.addIdleTimeBetweenReads",),
    "max_fetch_duration_s": ("maxFetchDuration",),
    "shard_listing_interval_s": (
        "shardFetchInterval",
        "kinesis.describeShardInterval",
        "kinesis.client.describeShardInterval",
    ),
    "read_retry_deadline_s": ("readRetryDeadline",),
    "fail_on_data_loss": ("failOnDataLoss", "kinesis.failOnDataLoss"),
    "metadata_path": ("metadataPath", "kinesis.metadataPath"),
    "s3_endpoint_url": ("s3EndpointUrl",),
    # Enhanced fan-out (see `pyspark_kinesis.fan_out`): each peer's names for its switch.
    "consumer_mode": ("consumerMode", "kinesis.consumerType"),
    "consumer_name": ("consumerName", "kinesis.consumerName"),
    "register_consumer_timeout_s": ("registerConsumerTimeoutInterval",),
    "require_consumer_deregistration": ("requireConsumerDeregistration",),
    "fetch_buffer_bytes": ("fetchBufferSize",),
}
_FIELD_BY_NAME = {alias.lower(): name for name, aliases in _ALIASES.items() for alias in aliases}
# The fields KinesisOptions keeps out of its repr: error messages hide them too.
_SECRET_FIELDS = frozenset(
    {"access_key_id", "secret_access_key", "session_token", "role_external_id"}
)

# How long a read keeps retrying 500/503 answers and dropped connections before failing.
DEFAULT_READ_RETRY_DEADLINE_S = 300.0
# GetRecords returns at most 10,000 records per call (Kinesis API limit).
MAX_RECORDS_PER_FETCH = 10_000
# 4 GetRecords/s per shard, inside AWS's 5, counting the driver's look and the tasks together.
DEFAULT_MIN_FETCH_PERIOD_S = 0.25
# Shards one Spark task reads at once (Databricks' shardsPerTask, whose default is 5). A batch
# runs in one wave of tasks while its shards with records are at most `shardsPerTask` per
# task slot. The driver side of a Python data source cannot see the query's task slots
# (Spark gives it the options and the schema), so the default is fixed: 8 per slot keeps a
# 16-shard stream on 2 cores, or 64 shards on 8, in one wave (README: "Shards per task").
DEFAULT_SHARDS_PER_TASK = 8
# Least time between two listings of a stream's shards, as in all three peers (1 s): planning
# reuses a younger listing, so resharding is seen within it and a trigger saves a call.
DEFAULT_SHARD_LISTING_INTERVAL_S = 1.0
_STREAM_ARN = re.compile(
    r"^arn:aws[\w-]*:kinesis:(?P<region>[\w-]+):\d{12}:stream/(?P<name>[\w.-]+)$"
)
# Kinesis endpoints name their region: kinesis.<region>.amazonaws.com, kinesis-fips.<region>...,
# vpce-....kinesis.<region>.vpce.amazonaws.com. Both peers take the region from there.
_ENDPOINT_REGION = re.compile(r"(?:^|\.)kinesis(?:-fips)?\.(?P<region>[a-z]{2}(?:-[a-z]+)+-\d+)\.")
_SIZE = re.compile(r"^\s*(?P<value>\d+(?:\.\d+)?)\s*(?P<unit>b|kb|mb|gb)?\s*$")
_BYTES_PER_UNIT = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3}
# The two ways of reading: each peer's word for each, lower-cased.
POLLING, FAN_OUT = "polling", "efo"
_CONSUMER_MODES = {
    "polling": POLLING,
    "getrecords": POLLING,
    "efo": FAN_OUT,
    "subscribetoshard": FAN_OUT,
}
# How long query start waits for a new fan-out consumer to become ACTIVE.
DEFAULT_REGISTER_CONSUMER_TIMEOUT_S = 300.0
# Bytes of records a fan-out subscription holds for the next batch before it stops reading.
DEFAULT_FETCH_BUFFER_BYTES = 16 * 1024**2


@dataclass(frozen=True)
class KinesisOptions:
    """Everything the source needs to reach its streams and pace its reads.

    `stream_names` are the streams read, in the order given; `stream_name` is
    the stream that reading a shard reaches: the only one, or, when several are
    read, the first, so take each stream's options from `for_stream`.
    """

    stream_name: str
    region: str | None = None
    endpoint_url: str | None = None
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    role_arn: str | None = None
    role_session_name: str = "pyspark-kinesis"
    role_external_id: str | None = field(default=None, repr=False)
    sts_endpoint_url: str | None = None
    starting_position: Position = field(default_factory=lambda: parse_position("LATEST"))
    shard_starting_positions: Mapping[str, Position] = field(default_factory=dict)
    max_records_per_trigger: int | None = None
    max_records_per_shard: int | None = None
    max_records_per_fetch: int = MAX_RECORDS_PER_FETCH
    max_fetch_rate_mb: float | None = None
    shards_per_task: int = DEFAULT_SHARDS_PER_TASK
    min_fetch_period_s: float = DEFAULT_MIN_FETCH_PERIOD_S
    max_fetch_duration_s: float | None = None
    shard_listing_interval_s: float = DEFAULT_SHARD_LISTING_INTERVAL_S
    read_retry_deadline_s: float = DEFAULT_READ_RETRY_DEADLINE_S
    fail_on_data_loss: bool = True
    metadata_path: str | None = None
    # S3's endpoint for an s3:// metadataPath; by default endpointUrl unless that is AWS's.
    s3_endpoint_url: str | None = None
    stream_names: tuple[str, ...] = ()
    # Enhanced fan-out: `consumer_mode` FAN_OUT reads with SubscribeToShard as `consumer_name`.
    consumer_mode: str = POLLING
    consumer_name: str | None = None
    register_consumer_timeout_s: float = DEFAULT_REGISTER_CONSUMER_TIMEOUT_S
    # Deregister the consumer when the query stops (the stream reader's `stop()`).
    require_consumer_deregistration: bool = False
    fetch_buffer_bytes: int = DEFAULT_FETCH_BUFFER_BYTES

    def __post_init__(self) -> None:
        if not self.stream_names:
            # Built for one stream (KinesisOptions(stream_name=...)): a list of one.
            object.__setattr__(self, "stream_names", (self.stream_name,))

    @classmethod
    def parse(cls, options: Mapping[str, str]) -> KinesisOptions:
        """Builds the options from Spark's option map, or raises KinesisOptionError."""
        values = _by_field(options)
        stream_names, arn_region = _stream_identity(values)
        has_key, has_secret = "access_key_id" in values, "secret_access_key" in values
        if has_key != has_secret:
            raise KinesisOptionError(
                "set both awsAccessKeyId and awsSecretKey, or neither "
                "(neither means the default AWS credential chain)"
            )
        try:
            starting = parse_starting_positions(
                values.get("starting_position", "LATEST"), values.get("starting_timestamp")
            )
        except StartingPositionError as error:
            raise KinesisOptionError(str(error)) from error
        endpoint_url = values.get("endpoint_url") or None
        return cls(
            stream_name=stream_names[0],
            stream_names=stream_names,
            region=(
                values.get("stream_region")
                or values.get("region")
                or arn_region
                or _endpoint_region(endpoint_url)
            ),
            endpoint_url=endpoint_url,
            access_key_id=values.get("access_key_id"),
            secret_access_key=values.get("secret_access_key"),
            session_token=values.get("session_token"),
            role_arn=values.get("role_arn"),
            role_session_name=values.get("role_session_name", "pyspark-kinesis"),
            role_external_id=values.get("role_external_id"),
            sts_endpoint_url=values.get("sts_endpoint_url") or None,
            starting_position=starting.default,
            shard_starting_positions=_per_shard_positions(starting.per_shard, stream_names),
            max_records_per_trigger=_positive_int(values, "max_records_per_trigger"),
            max_records_per_shard=_positive_int(values, "max_records_per_shard"),
            max_records_per_fetch=min(
                _positive_int(values, "max_records_per_fetch") or MAX_RECORDS_PER_FETCH,
                MAX_RECORDS_PER_FETCH,
            ),
            max_fetch_rate_mb=_positive_float(values, "max_fetch_rate_mb"),
            shards_per_task=_positive_int(values, "shards_per_task") or DEFAULT_SHARDS_PER_TASK,
            min_fetch_period_s=_min_fetch_period_s(values),
            max_fetch_duration_s=_positive_duration_s(values, "max_fetch_duration_s"),
            shard_listing_interval_s=_or_default(
                _duration_s(values, "shard_listing_interval_s"), DEFAULT_SHARD_LISTING_INTERVAL_S
            ),
            read_retry_deadline_s=(
                _positive_duration_s(values, "read_retry_deadline_s")
                or DEFAULT_READ_RETRY_DEADLINE_S
            ),
            fail_on_data_loss=_boolean(values, "fail_on_data_loss", default=True),
            metadata_path=_notes_path(values, "metadata_path"),
            s3_endpoint_url=values.get("s3_endpoint_url") or None,
            **_fan_out_fields(values),
        )

    @property
    def fan_out(self) -> bool:
        """Whether shards are read with SubscribeToShard (enhanced fan-out)."""
        return self.consumer_mode == FAN_OUT

    def starting_position_for(self, shard_id: str) -> Position:
        return self.shard_starting_positions.get(shard_id, self.starting_position)

    def require_one_stream(self, user: str) -> None:
        """Raises unless these are one stream's options: `user` reaches `stream_name` only."""
        if len(self.stream_names) != 1:
            raise KinesisOptionError(
                f"{user} serves one stream, not {', '.join(self.stream_names)}: "
                "give it KinesisOptions.for_stream(name)"
            )

    def for_stream(self, stream_name: str) -> KinesisOptions:
        """The options of one of the streams read: its per-shard positions by shard id."""
        if self.stream_names == (stream_name,):
            return self
        if stream_name not in self.stream_names:
            raise KinesisOptionError(f"{stream_name!r} is not one of the streams read")
        prefix = f"{stream_name}/"
        positions = {
            key.removeprefix(prefix): position
            for key, position in self.shard_starting_positions.items()
            if key.startswith(prefix)
        }
        return replace(
            self,
            stream_name=stream_name,
            stream_names=(stream_name,),
            shard_starting_positions=positions,
        )


def _option_names(field_name: str) -> str:
    return " / ".join(_ALIASES[field_name])


def _by_field(options: Mapping[str, str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for name, value in options.items():
        refusal = peer_options.refusal(name, value)
        if refusal is not None:
            raise KinesisOptionError(refusal)
        if name.lower() in peer_options.NOT_NEEDED:
            peer_options.say_not_needed(name)
            continue
        field_name = _FIELD_BY_NAME.get(name.lower())
        if field_name is None:
            raise KinesisOptionError(_unknown_option(name))
        if field_name in values and values[field_name] != value:
            shown = "<secret>" if field_name in _SECRET_FIELDS else repr(value)
            raise KinesisOptionError(
                f"option {name!r}={shown} conflicts with another spelling of the same option "
                f"({_option_names(field_name)}): give it once"
            )
        values[field_name] = value
    return values


def _unknown_option(name: str) -> str:
    known = [alias for aliases in _ALIASES.values() for alias in aliases]
    by_lower = {alias.lower(): alias for alias in known}
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=3, cutoff=0.75)
    hint = f"; did you mean {' or '.join(by_lower[match] for match in close)}?" if close else ""
    return f"unknown option {name!r}{hint} Accepted options: {', '.join(known)}"


def _endpoint_region(endpoint_url: str | None) -> str | None:
    match = _ENDPOINT_REGION.search(urlsplit(endpoint_url or "").hostname or "")
    return match["region"] if match else None


def _stream_identity(values: Mapping[str, str]) -> tuple[tuple[str, ...], str | None]:
    """The streams read (streamName and/or streamARN, each a list) and the ARNs' region."""
    names = _stream_list(values.get("stream_name"), "streamName")
    arns = _stream_list(values.get("stream_arn"), "streamARN")
    arn_streams = [_parse_stream_arn(arn) for arn in arns]
    arn_names = tuple(name for name, _ in arn_streams)
    arn_regions = sorted({region for _, region in arn_streams})
    if names and arn_names and names != arn_names:
        raise KinesisOptionError(
            f"streamName {values['stream_name']!r} and streamARN {values['stream_arn']!r} "
            "name different streams"
        )
    if len(arn_regions) > 1:
        raise KinesisOptionError(
            f"streamARN names streams in several regions ({', '.join(arn_regions)}): "
            "a query reads streams of one region"
        )
    arn_region = arn_regions[0] if arn_regions else None
    region = values.get("region")
    if region and arn_region and region != arn_region:
        raise KinesisOptionError(
            f"region {region!r} differs from streamARN's region {arn_region!r}: give one of them"
        )
    stream_names = names or arn_names
    if not stream_names:
        raise KinesisOptionError(
            f"missing the stream: set {_option_names('stream_name')} (or streamARN)"
        )
    return stream_names, arn_region


def _stream_list(text: str | None, option: str) -> tuple[str, ...]:
    """A comma-separated list of streams (or of stream ARNs), each named once."""
    if not text:
        return ()
    names = tuple(name.strip() for name in text.split(","))
    if "" in names:
        raise KinesisOptionError(f"{option} {text!r} holds an empty stream name")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise KinesisOptionError(f"{option} {text!r} names {repeated[0]!r} twice")
    return names


def _parse_stream_arn(arn: str) -> tuple[str, str]:
    match = _STREAM_ARN.match(arn)
    if match is None:
        raise KinesisOptionError(
            f"streamARN {arn!r} is not a Kinesis stream ARN "
            "(arn:aws:kinesis:<region>:<account>:stream/<name>)"
        )
    return match["name"], match["region"]


def _per_shard_positions(
    positions: Mapping[str, Position], stream_names: tuple[str, ...]
) -> dict[str, Position]:
    """Per-shard starting positions keyed by shard id (one stream) or `<stream>/<shard id>`.

    With several streams a shard id alone is ambiguous (every stream has a
    shardId-000000000000), so each key must name its stream.
    """
    keyed: dict[str, Position] = {}
    for key, position in positions.items():
        stream, _, shard_id = key.rpartition("/")
        if stream and stream not in stream_names:
            raise KinesisOptionError(
                f"startingPosition names shard {key!r}, but {stream!r} is not one of the "
                f"streams read ({', '.join(stream_names)})"
            )
        if len(stream_names) == 1:
            keyed[shard_id] = position
        elif not stream:
            raise KinesisOptionError(
                f"startingPosition names shard {key!r} without its stream; with several "
                f"streams, write '<stream>/{key}' (one of {', '.join(stream_names)})"
            )
        else:
            keyed[key] = position
    return keyed


def _fan_out_fields(values: Mapping[str, str]) -> dict[str, Any]:
    """consumerMode / kinesis.consumerType and the consumer's options; efo needs a name."""
    given = values.get("consumer_mode", POLLING)
    mode = _CONSUMER_MODES.get(given.strip().lower())
    if mode is None:
        raise KinesisOptionError(
            f"{_option_names('consumer_mode')} must be polling or efo (GetRecords or "
            f"SubscribeToShard in the AWS connector's words), not {given!r}"
        )
    name = (values.get("consumer_name") or "").strip() or None
    if mode == FAN_OUT and name is None:
        raise KinesisOptionError(
            f"enhanced fan-out needs a consumer name: set {_option_names('consumer_name')} "
            "to a name of each query's own (Databricks names the consumer after the query's "
            "id by default, which a Python data source cannot see); it is registered on every "
            "stream read if missing"
        )
    return {
        "consumer_mode": mode,
        "consumer_name": name,
        "register_consumer_timeout_s": _positive_duration_s(values, "register_consumer_timeout_s")
        or DEFAULT_REGISTER_CONSUMER_TIMEOUT_S,
        "require_consumer_deregistration": _boolean(
            values, "require_consumer_deregistration", default=False
        ),
        "fetch_buffer_bytes": _size_bytes(values, "fetch_buffer_bytes")
        or DEFAULT_FETCH_BUFFER_BYTES,
    }


def _size_bytes(values: Mapping[str, str], name: str) -> int | None:
    if name not in values:
        return None
    match = _SIZE.match(values[name].lower())
    size = 0
    if match is not None:
        size = int(float(match["value"]) * _BYTES_PER_UNIT[match["unit"] or "b"])
    if size < 1:
        raise KinesisOptionError(
            f"{_option_names(name)} must be a size such as '16mb', '512kb' or a number of "
            f"bytes, not {values[name]!r}"
        )
    return size


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
    seconds = duration_s(values[name], OPTION_UNITS)
    if seconds is None:
        raise KinesisOptionError(
            f"{_option_names(name)} must be a duration such as '200ms', '2s' or '1m', "
            f"not {values[name]!r}"
        )
    return seconds


def _or_default(value: float | None, default: float) -> float:
    return default if value is None else value


def _min_fetch_period_s(values: Mapping[str, str]) -> float:
    """minFetchPeriod, kinesis.getRecords.fetchIntervalMs, or qubole's idle time between reads."""
    given = [name for name in ("min_fetch_period_s", "fetch_interval_ms") if name in values]
    if values.get("add_idle_between_reads", "false").strip().lower() == "true":
        given.append("idle_between_reads_ms")
    else:
        _boolean(values, "add_idle_between_reads", default=False)  # validates the value
    if "idle_between_reads_ms" in values:
        _milliseconds(values, "idle_between_reads_ms")  # validated even when qubole ignores it
    if len(given) > 1:
        raise KinesisOptionError(
            "give the least time between two reads of a shard once: "
            + " or ".join(_option_names(name) for name in given)
        )
    if "min_fetch_period_s" in values:
        return _duration_s(values, "min_fetch_period_s") or 0.0
    if "fetch_interval_ms" in values:
        return _milliseconds(values, "fetch_interval_ms") / 1000
    if given:  # qubole's default idle time, when only addIdleTimeBetweenReads is set
        return (
            _milliseconds({"idle_between_reads_ms": "1000", **values}, "idle_between_reads_ms")
            / 1000
        )
    return DEFAULT_MIN_FETCH_PERIOD_S


def _milliseconds(values: Mapping[str, str], name: str) -> int:
    try:
        number = int(values[name])
    except ValueError:
        number = -1
    if number < 0:
        raise KinesisOptionError(
            f"{_option_names(name)} must be a whole number of milliseconds, not {values[name]!r}"
        )
    return number


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


_S3_SCHEMES = ("s3://", "s3a://")


def s3_location(path: str) -> tuple[str, str] | None:
    """(bucket, prefix) of an `s3://` or `s3a://` URL; None for any other path."""
    for scheme in _S3_SCHEMES:
        if path.startswith(scheme):
            bucket, _, prefix = path[len(scheme) :].partition("/")
            return bucket, prefix.strip("/")
    return None


def _notes_path(values: Mapping[str, str], name: str) -> str | None:
    """A directory every node sees, or an S3 prefix (`s3://bucket/prefix`)."""
    if name not in values:
        return None
    path = values[name].strip()
    if path.startswith("file://"):
        path = path[len("file://") :]
    location = s3_location(path)
    if location is not None and location[0]:
        return path
    if not path or "://" in path:
        raise KinesisOptionError(
            f"{_option_names(name)} must be a directory path that the driver and every "
            f"executor see (local, or a shared mount such as NFS or EFS) or an S3 prefix "
            f"(s3://bucket/prefix), not {values[name]!r}"
        )
    return path
