"""The producer's configuration: every environment variable, declared and validated once.

Command-line options (`--count`, `--rate`, ...) override fields of the same
class, so a value from either source passes the same rules, and an invalid one
is reported as one line naming the variable and what it accepts (the stack's
one error format, `kinesis_connection.configuration_error`). AWS credentials
are deliberately not settings: boto3's default chain finds them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

from kinesis_connection import KinesisConnection, SettingsError, configuration_error
from pydantic import Field, ValidationError, field_validator

__all__ = [
    "MAX_BATCH_RECORDS",
    "ProducerSettings",
    "SettingsError",
    "ShardRenewalSettings",
    "load_renewal_settings",
    "load_settings",
]

# PutRecords takes at most 500 records per request (Kinesis API limit).
MAX_BATCH_RECORDS = 500


class ProducerSettings(KinesisConnection):
    """Environment variables of the producer: the stack's connection settings
    (`KinesisConnection`: stream, region, endpoint) and its own.

    Each `description` is what the variable accepts (errors quote it); the string
    under each field documents it (`make docs` copies it into `.env.example` and
    the table of docs/configuration.md).
    """

    kinesis_shard_count: int = Field(
        2, ge=1, description="a whole number of shards >= 1 (used only to create the stream)"
    )
    """Shards of the stream LocalStack's init hook creates (and the producer, with
    PRODUCER_CREATE_STREAM=true)."""
    producer_create_stream: bool = Field(
        False, description="true or false (create the stream if it is missing)"
    )
    """true lets the producer create a missing stream (never implicit on real AWS)."""
    producer_rate: float = Field(
        10.0, ge=0, description="records per second >= 0 (0 = as fast as possible)"
    )
    """Events per second; 0 sends as fast as Kinesis accepts."""
    producer_count: int = Field(0, ge=0, description="a whole number >= 0 (0 = run until stopped)")
    """How many events to send; 0 runs until stopped."""
    producer_seed: int | None = Field(
        None, description="a whole number for reproducible events, or unset for random ones"
    )
    """Seed for reproducible events (ids included); empty means random."""
    producer_batch_size: int = Field(
        MAX_BATCH_RECORDS,
        ge=1,
        le=MAX_BATCH_RECORDS,
        description=f"records per PutRecords call, 1 to {MAX_BATCH_RECORDS}",
    )
    """Records per PutRecords call, 1 to 500."""
    producer_max_retry_seconds: float = Field(
        120.0, gt=0, description="seconds > 0 to keep resending refused records"
    )
    """How long refused records are resent before they go to the unsent file and the
    producer exits 3."""
    producer_unsent_path: Path = Field(
        Path("unsent.jsonl"),
        json_schema_extra={"stack_default": "/data/unsent/unsent.jsonl"},
        description="the path of a JSON-lines file for records that could not be sent",
    )
    """JSON-lines file for records that could not be sent (replay with `producer send`);
    in the producer-unsent volume."""
    producer_log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="DEBUG, INFO, WARNING or ERROR"
    )
    """DEBUG, INFO, WARNING or ERROR."""

    @field_validator("producer_log_level", mode="before")
    @classmethod
    def _upper_case_level(cls, value: object) -> object:
        # `info` is as clear as `INFO`; refusing it would only annoy.
        return value.strip().upper() if isinstance(value, str) else value


class ShardRenewalSettings(ProducerSettings):
    """Environment variables of the shard renewer (`python -m producer.renewal`), on top of
    the Kinesis ones it shares with the producer."""

    shard_renewal_records: int = Field(
        5_000, ge=0, description="a whole number of records >= 0 (0 turns renewal off)"
    )
    """LocalStack only: an open shard holding this many records is renewed (split, then
    merged back: an empty shard over the same keys), as kinesis-mock's calls slow with the
    records a shard holds; 0 turns renewal off."""
    shard_renewal_check_seconds: float = Field(
        10.0, gt=0, description="seconds > 0 between two counts of the open shards' records"
    )
    """How often the renewer counts the records each open shard holds."""


Settings = TypeVar("Settings", bound=ProducerSettings)


def load_settings(
    overrides: dict[str, Any] | None = None, *, options: Mapping[str, str] | None = None
) -> ProducerSettings:
    """Reads the environment, with command-line `overrides` on top, or raises SettingsError.

    `options` maps a field to the command-line option it came from, so that an
    error names the option as well as the variable.
    """
    given = {name: value for name, value in (overrides or {}).items() if value is not None}
    return _validated(ProducerSettings, given, options or {})


def load_renewal_settings() -> ShardRenewalSettings:
    """The shard renewer's settings from the environment, or raises SettingsError."""
    return _validated(ShardRenewalSettings, {}, {})


def _validated(
    settings_class: type[Settings], given: dict[str, Any], options: Mapping[str, str]
) -> Settings:
    try:
        return settings_class(**given)
    except ValidationError as error:
        raise configuration_error(error, settings_class, options) from None
