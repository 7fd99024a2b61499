"""The producer's configuration: every environment variable, declared and validated once.

The command line can override a few of them (`--count`, `--rate`, ...), but
the values still pass through this class, so the rules live in one place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

# PutRecords takes at most 500 records per request (Kinesis API limit).
MAX_BATCH_RECORDS = 500


class ProducerSettings(BaseSettings):
    """Environment variables of the producer (see `.env.example`)."""

    # Compose passes unset optional variables as empty strings: treat them as unset.
    model_config = SettingsConfigDict(env_ignore_empty=True, extra="ignore")

    kinesis_stream_name: str = Field("events", min_length=1, max_length=128)
    aws_region: str = Field("us-east-1", pattern=r"^[a-z]{2}(-[a-z]+)+-\d+$")
    kinesis_endpoint_url: str | None = Field(None, pattern=r"^https?://\S+$")
    kinesis_shard_count: int = Field(2, ge=1)
    producer_create_stream: bool = False
    producer_rate: float = Field(10.0, ge=0)
    producer_count: int = Field(0, ge=0)
    producer_seed: int | None = None
    producer_batch_size: int = Field(MAX_BATCH_RECORDS, ge=1, le=MAX_BATCH_RECORDS)
    producer_max_retry_seconds: float = Field(120.0, gt=0)
    producer_unsent_path: Path = Path("unsent.jsonl")
    producer_log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class SettingsError(ValueError):
    """One or more variables are invalid; `lines` has one actionable line each."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("; ".join(lines))
        self.lines = lines


def load_settings(**overrides: Any) -> ProducerSettings:
    """Reads the environment, with command-line overrides, or raises SettingsError."""
    try:
        return ProducerSettings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as error:
        raise SettingsError(
            [
                f"{str(problem['loc'][0]).upper()}={problem.get('input')!r}: {problem['msg']}; "
                "fix it in the environment or .env (see .env.example)"
                for problem in error.errors()
            ]
        ) from None
