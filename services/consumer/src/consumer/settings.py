"""The consumer's configuration: every environment variable, declared and validated once.

A bad value stops the service at start-up with one line per problem that
names the variable and says what to set, before the JVM is even started.
"""

from __future__ import annotations

import re
import sys
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from pyspark_kinesis.positions import parse_position

_UNIT_SECONDS = {
    **dict.fromkeys(("ms", "millisecond", "milliseconds"), 0.001),
    **dict.fromkeys(("s", "second", "seconds"), 1.0),
    **dict.fromkeys(("min", "minute", "minutes"), 60.0),
    **dict.fromkeys(("h", "hour", "hours"), 3600.0),
}
_SPARK_DURATION = re.compile(rf"^(?P<number>\d+)\s*(?P<unit>{'|'.join(_UNIT_SECONDS)})$")


class ConsumerSettings(BaseSettings):
    """Environment variables of the Spark consumer (see `.env.example`)."""

    # Compose passes unset optional variables as empty strings: treat them as unset.
    model_config = SettingsConfigDict(env_ignore_empty=True, extra="ignore")

    kinesis_stream_name: str = Field("events", min_length=1, max_length=128)
    aws_region: str = Field("us-east-1", pattern=r"^[a-z]{2}(-[a-z]+)+-\d+$")
    kinesis_endpoint_url: str | None = Field(None, pattern=r"^https?://\S+$")
    spark_master: str = Field(
        "local[*]", pattern=r"^(local(\[(\*|\d+)\])?|spark://\S+|yarn|k8s://\S+)$"
    )
    consumer_trigger: Literal["processingTime", "availableNow"] = "processingTime"
    consumer_trigger_interval: str = "2 seconds"
    consumer_starting_position: str = "TRIM_HORIZON"
    consumer_max_records_per_trigger: int | None = Field(None, ge=1)
    consumer_max_event_bytes: int = Field(64 * 1024, ge=1, le=1024 * 1024)
    consumer_output_path: str = "/data/output"
    consumer_checkpoint_path: str = "/data/checkpoints"
    consumer_dedup_window: str = "1 hour"
    consumer_console: bool = True
    consumer_shuffle_partitions: int = Field(4, ge=1)
    consumer_log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    consumer_stream_wait_seconds: float = Field(120.0, gt=0)

    @field_validator("consumer_trigger_interval", "consumer_dedup_window")
    @classmethod
    def _spark_duration(cls, value: str) -> str:
        if not _SPARK_DURATION.match(value.strip()):
            raise ValueError(
                "must be a duration such as '2 seconds', '500 milliseconds' or '1 minute'"
            )
        return value.strip()

    @field_validator("consumer_starting_position")
    @classmethod
    def _starting_position(cls, value: str) -> str:
        parse_position(value)
        return value

    @property
    def dedup_window_seconds(self) -> float:
        match = _SPARK_DURATION.match(self.consumer_dedup_window)
        assert match is not None  # validated above
        return int(match["number"]) * _UNIT_SECONDS[match["unit"]]

    # Strings, not Paths: on a cluster these are URIs such as s3://bucket/output.
    @property
    def events_path(self) -> str:
        return f"{self.consumer_output_path.rstrip('/')}/events"

    @property
    def dead_letters_path(self) -> str:
        return f"{self.consumer_output_path.rstrip('/')}/dead_letters"

    @property
    def counts_path(self) -> str:
        return f"{self.consumer_output_path.rstrip('/')}/message_counts"

    def source_options(self) -> dict[str, str]:
        """Options for `format("kinesis")`; credentials come from the default AWS chain."""
        options = {
            "streamName": self.kinesis_stream_name,
            "region": self.aws_region,
            "startingPosition": self.consumer_starting_position,
        }
        if self.kinesis_endpoint_url:
            options["endpointUrl"] = self.kinesis_endpoint_url
        if self.consumer_max_records_per_trigger:
            options["maxRecordsPerTrigger"] = str(self.consumer_max_records_per_trigger)
        if "://" not in self.consumer_checkpoint_path:
            # Beside the checkpoint, on the volume the cluster's workers share too: where
            # tasks note each batch's end, so the driver never reads a record twice.
            options["metadataPath"] = f"{self.consumer_checkpoint_path.rstrip('/')}/kinesis-ends"
        return options


def load_settings() -> ConsumerSettings:
    """The settings, or exit 2 with one line per invalid variable."""
    try:
        return ConsumerSettings()
    except ValidationError as error:
        for problem in error.errors():
            variable = str(problem["loc"][0]).upper() if problem["loc"] else "settings"
            given = problem.get("input")
            print(
                f"configuration error: {variable}={given!r}: {problem['msg']}. "
                f"Set {variable} in the environment or .env (see .env.example).",
                file=sys.stderr,
            )
        raise SystemExit(2) from None
