"""The consumer's configuration: every environment variable, declared and validated once.

A bad value stops the service at start-up with one line naming each variable
and what it accepts (the stack's one error format, shared with the producer),
before the JVM is even started.
"""

from __future__ import annotations

import sys
from typing import Literal
from urllib.parse import urlparse

from kinesis_connection import KinesisConnection, configuration_error
from pydantic import Field, ValidationError, field_validator
from pyspark_kinesis.durations import SPARK_UNITS, duration_s
from pyspark_kinesis.options import s3_location
from pyspark_kinesis.positions import parse_position

# The enhanced fan-out consumer the service reads as (CONSUMER_READ_MODE=fan-out).
FAN_OUT_CONSUMER_NAME = "kinesis-stack-consumer"


class ConsumerSettings(KinesisConnection):
    """Environment variables of the Spark consumer: the stack's connection settings
    (`KinesisConnection`: stream, region, endpoint) and its own.

    The string under each field documents it: `make docs` copies it into
    `.env.example` and the table of docs/configuration.md.
    """

    spark_master: str = Field(
        "local[*]", pattern=r"^(local(\[(\*|\d+)\])?|spark://\S+|yarn|k8s://\S+)$"
    )
    """Spark master: local[*] in the container, or spark://spark-master:7077 with the
    cluster profile."""
    consumer_trigger: Literal["processingTime", "availableNow"] = "processingTime"
    """processingTime (micro-batches every CONSUMER_TRIGGER_INTERVAL) or availableNow
    (drain, then exit)."""
    consumer_trigger_interval: str = "500 milliseconds"
    """Interval between micro-batches, e.g. "2 seconds", "500 milliseconds" (each shard's
    driver look and task read then stay inside AWS's 5 GetRecords/s)."""
    consumer_starting_position: str = "TRIM_HORIZON"
    """Where a new query starts: TRIM_HORIZON, LATEST, `AT_TIMESTAMP:<epoch s>`, or
    per-shard JSON."""
    consumer_max_records_per_trigger: int | None = Field(None, ge=1)
    """User records per micro-batch at most, counted after KPL de-aggregation (a Kinesis
    record holding an aggregate counts as the records in it); empty means no limit."""
    consumer_max_event_bytes: int = Field(64 * 1024, ge=1, le=1024 * 1024)
    """Larger payloads go to the dead letters."""
    consumer_output_path: str = "/data/output"
    """Parquet sink (events/, dead_letters/, one folder per hour) inside the consumer-data
    volume."""
    consumer_checkpoint_path: str = "/data/checkpoints"
    """Spark checkpoints inside the consumer-data volume: a restart resumes from here."""
    consumer_dedup_window: str = "1 hour"
    """An event resent within this time of the batch that wrote its first copy is dropped as
    a duplicate."""
    consumer_console: bool = True
    """true prints each batch and the running per-type totals, as the tutorial's console
    sink did."""
    consumer_shuffle_partitions: int = Field(1, ge=1)
    """Partitions of the deduplication state: files per batch and table, and tasks writing
    them (fixed once a checkpoint exists; more only for rates one task cannot write)."""
    consumer_log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """DEBUG, INFO, WARNING or ERROR (libraries log at WARNING whatever it says)."""
    consumer_read_mode: Literal["polling", "fan-out"] = "polling"
    """polling (GetRecords: readers of a shard share its 2 MB/s) or fan-out (enhanced
    fan-out: a consumer named kinesis-stack-consumer, registered if missing, with 2 MB/s
    per shard of its own)."""
    consumer_stream_wait_seconds: float = Field(300.0, gt=0)
    """How long the consumer waits at start-up for LocalStack and the stream to be ACTIVE
    before it stops with one line saying why."""

    @field_validator("consumer_trigger_interval", "consumer_dedup_window")
    @classmethod
    def _spark_duration(cls, value: str) -> str:
        if duration_s(value.strip(), SPARK_UNITS, unit_required=True, whole=True) is None:
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
        return _seconds(self.consumer_dedup_window)

    @property
    def trigger_interval_seconds(self) -> float:
        return _seconds(self.consumer_trigger_interval)

    # Strings, not Paths: on a cluster these are URIs such as s3://bucket/checkpoints.
    @property
    def query_checkpoint_path(self) -> str:
        return f"{self.consumer_checkpoint_path.rstrip('/')}/events"

    @property
    def checkpoint_on_local_disk(self) -> bool:
        """True for a path or file: URI (a volume, a shared mount), false for s3a://, hdfs://."""
        return urlparse(self.consumer_checkpoint_path).scheme in ("", "file")

    def source_options(self) -> dict[str, str]:
        """Options for `format("kinesis")`; credentials come from the default AWS chain."""
        options = {
            "streamName": self.kinesis_stream_name,
            "region": self.aws_region,
            "startingPosition": self.consumer_starting_position,
        }
        if self.kinesis_endpoint_url:
            options["endpointUrl"] = self.kinesis_endpoint_url
        if self.consumer_read_mode == "fan-out":
            options |= {"consumerMode": "efo", "consumerName": FAN_OUT_CONSUMER_NAME}
        if self.consumer_max_records_per_trigger:
            options["maxRecordsPerTrigger"] = str(self.consumer_max_records_per_trigger)
        checkpoint = self.consumer_checkpoint_path
        if "://" not in checkpoint or s3_location(checkpoint):
            # Beside the checkpoint, where the cluster's workers reach too (a shared volume,
            # or S3): where tasks note each batch's end, so the driver never reads a record
            # twice. Other schemes (hdfs://) have no note store: the driver re-reads batches.
            options["metadataPath"] = f"{checkpoint.rstrip('/')}/kinesis-ends"
        return options


def _seconds(duration: str) -> float:
    seconds = duration_s(duration, SPARK_UNITS, unit_required=True, whole=True)
    assert seconds is not None  # validated by _spark_duration
    return seconds


def load_settings() -> ConsumerSettings:
    """The settings, or exit 2 with one line naming each invalid variable."""
    try:
        return ConsumerSettings()
    except ValidationError as error:
        problems = configuration_error(error, ConsumerSettings, {})
        print(f"configuration error: {problems}", file=sys.stderr)
        raise SystemExit(2) from None
