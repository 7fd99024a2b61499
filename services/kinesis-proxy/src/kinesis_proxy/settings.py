"""The proxy's configuration: every KINESIS_PROXY_* variable, declared once here.

`python -m kinesis_proxy` takes each as a flag too (`--empty-page-probability
0.1` for KINESIS_PROXY_EMPTY_PAGE_PROBABILITY); a flag wins over its variable.
The design decision: a behaviour left unset takes its mode's default, off, or
AWS's with KINESIS_PROXY_AWS=true (`Behaviours.aws()`), so the class's default
for every behaviour is "unset"; the Compose file's defaults are the
`stack_default`s below, held to it by tests/settings.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

from kinesis_connection import LOCALSTACK_URL, configuration_error
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from kinesis_proxy.behaviours import Behaviours

ENVIRONMENT_PREFIX = "KINESIS_PROXY_"
DEFAULT_LISTEN = "127.0.0.1:4567"
_NEVER = {"none", "never"}


class ProxySettings(BaseSettings):
    """What the proxy forwards to, where it listens, and its behaviours.

    Built by `parse_settings` from flags over the environment (not from the
    environment alone: a test passes its own mapping).
    """

    model_config = SettingsConfigDict(extra="forbid")

    kinesis_proxy_upstream: str | None = Field(
        None, pattern=r"^https?://\S+$", json_schema_extra={"stack_default": LOCALSTACK_URL}
    )
    """LocalStack's URL, which the proxy forwards every call to (required)."""
    kinesis_proxy_listen: str = Field(
        DEFAULT_LISTEN,
        pattern=r"^[^:\s]*:\d+$",
        json_schema_extra={"stack_default": "0.0.0.0:4567"},
    )
    """HOST:PORT the proxy serves on (in its container: every interface)."""
    kinesis_proxy_aws: bool = Field(False, json_schema_extra={"stack_default": "true"})
    """true starts from AWS's limits and iterator lifetime; each behaviour below overrides
    it. false starts with every behaviour off."""
    kinesis_proxy_read_limits: bool | None = None
    """Per shard 5 GetRecords/s and 2 MB/s read (empty: as KINESIS_PROXY_AWS says)."""
    kinesis_proxy_write_limits: bool | None = None
    """Per shard 1,000 records/s and 1 MiB/s written, refused per PutRecords entry (empty: as
    KINESIS_PROXY_AWS says)."""
    kinesis_proxy_control_plane_limits: bool | None = None
    """ListShards and DescribeStreamSummary limited to their rates (empty: as
    KINESIS_PROXY_AWS says)."""
    kinesis_proxy_empty_pages_first: int | None = Field(
        None, ge=0, json_schema_extra={"stack_default": 2}
    )
    """Per shard, this many first reads that would return records answer an empty page with
    MillisBehindLatest > 0."""
    kinesis_proxy_empty_page_probability: float | None = Field(
        None, ge=0, le=1, json_schema_extra={"stack_default": 0.1}
    )
    """Share of the later reads that would return records answered by an empty page."""
    kinesis_proxy_iterator_lifetime_s: float | None = Field(
        None, gt=0, json_schema_extra={"stack_default": 30}
    )
    """Seconds a shard iterator lives (AWS: 300; `never`: forever)."""
    kinesis_proxy_visibility_delay_s: float | None = Field(
        None, ge=0, json_schema_extra={"stack_default": "1.0"}
    )
    """A record shows up this long after its ApproximateArrivalTimestamp."""
    kinesis_proxy_kms_throttling_probability: float | None = Field(
        None, ge=0, le=1, json_schema_extra={"stack_default": 0.02}
    )
    """Share of GetRecords, PutRecord and PutRecords calls answered KMSThrottlingException."""
    kinesis_proxy_server_error_probability: float | None = Field(
        None, ge=0, le=1, json_schema_extra={"stack_default": 0.02}
    )
    """Share of data-plane calls answered 500 InternalFailure."""
    kinesis_proxy_unavailable_probability: float | None = Field(
        None, ge=0, le=1, json_schema_extra={"stack_default": 0.02}
    )
    """Share of data-plane calls answered 503 ServiceUnavailable."""
    kinesis_proxy_dropped_connection_probability: float | None = Field(
        None, ge=0, le=1, json_schema_extra={"stack_default": 0.02}
    )
    """Share of data-plane calls whose connection is closed without an answer."""
    kinesis_proxy_random_throttling_probability: float | None = Field(None, ge=0, le=1)
    """Share of reads refused at random, not by rate (not AWS-like: for retry tests alone)."""
    kinesis_proxy_faulty_operations: str | None = None
    """Comma-separated operations the 500, 503 and dropped-connection faults may hit (empty:
    GetRecords, GetShardIterator, ListShards, PutRecord, PutRecords)."""
    kinesis_proxy_seed: int | None = Field(None, json_schema_extra={"stack_default": 7})
    """Seed of the faults' random draws (empty: 7)."""
    kinesis_proxy_reads_per_s: int | None = Field(None, ge=1)
    """GetRecords per shard per second under the read limits (empty: AWS's 5)."""
    kinesis_proxy_read_bytes_per_s: int | None = Field(None, ge=1)
    """Bytes read per shard per second under the read limits (empty: AWS's 2 MB)."""
    kinesis_proxy_iterators_per_s: int | None = Field(None, ge=1)
    """GetShardIterator per shard per second under the read limits (empty: AWS's 5)."""
    kinesis_proxy_writes_per_s: int | None = Field(None, ge=1)
    """Records written per shard per second under the write limits (empty: AWS's 1,000)."""
    kinesis_proxy_write_bytes_per_s: int | None = Field(None, ge=1)
    """Bytes written per shard per second under the write limits (empty: AWS's 1 MiB)."""
    kinesis_proxy_list_shards_per_s: int | None = Field(
        None, ge=1, json_schema_extra={"stack_default": 5}
    )
    """ListShards per stream per second under the control-plane limits (AWS: 100; the
    stack's 5 lets a test's neighbour exhaust it)."""
    kinesis_proxy_describe_stream_summary_per_s: int | None = Field(
        None, ge=1, json_schema_extra={"stack_default": 5}
    )
    """DescribeStreamSummary per second under the control-plane limits (AWS: 20)."""
    kinesis_proxy_fan_out: bool | None = None
    """The proxy serves enhanced fan-out itself: consumers and SubscribeToShard pushed as
    records arrive (empty: as KINESIS_PROXY_AWS says; false: LocalStack's own)."""
    kinesis_proxy_consumer_creating_s: float | None = Field(None, ge=0)
    """Seconds a new consumer is CREATING before it is ACTIVE (empty: 2 with AWS's, else 0)."""
    kinesis_proxy_subscribe_in_use_s: float | None = Field(None, ge=0)
    """SubscribeToShard again for a consumer and shard within this many seconds is refused
    ResourceInUseException (AWS: 5)."""
    kinesis_proxy_subscription_lifetime_s: float | None = Field(None, gt=0)
    """Seconds a subscription lasts (AWS: 300; `never`: forever)."""
    kinesis_proxy_subscription_cut_after_records: int | None = Field(None, ge=0)
    """A subscription's connection is cut once it pushed this many records (a fault, not
    AWS's rule; empty: never)."""
    kinesis_proxy_fan_out_read_limits: bool | None = None
    """Each consumer gets at most KINESIS_PROXY_READ_BYTES_PER_S per shard pushed (empty: as
    KINESIS_PROXY_AWS says)."""
    kinesis_proxy_trimmed_records: int | None = Field(None, ge=0)
    """Per shard, this many first records are trimmed as past the stream's retention: reads
    start after them, and GetShardIterator or SubscribeToShard at one's sequence number
    answers InvalidArgumentException (empty: none)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # `parse_settings` hands over the environment it was given, flags on top.
        return (init_settings,)

    @field_validator(
        "kinesis_proxy_iterator_lifetime_s", "kinesis_proxy_subscription_lifetime_s", mode="before"
    )
    @classmethod
    def _never_expires(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() in _NEVER:
            return math.inf
        return value

    @property
    def upstream(self) -> str:
        return (self.kinesis_proxy_upstream or "").rstrip("/")

    @property
    def host(self) -> str:
        return self.kinesis_proxy_listen.rpartition(":")[0] or "127.0.0.1"

    @property
    def port(self) -> int:
        return int(self.kinesis_proxy_listen.rpartition(":")[2])

    @property
    def behaviours(self) -> Behaviours:
        """`Behaviours.aws()` or `Behaviours()`, with every behaviour set here on top."""
        overrides: dict[str, Any] = {}
        for name in BEHAVIOURS:
            value = getattr(self, f"kinesis_proxy_{name}")
            if value is None:
                continue
            if name in ("iterator_lifetime_s", "subscription_lifetime_s") and math.isinf(value):
                value = None
            elif name == "faulty_operations":
                value = frozenset(part.strip() for part in value.split(",") if part.strip())
            overrides[name] = value
        return Behaviours.aws(**overrides) if self.kinesis_proxy_aws else Behaviours(**overrides)


BEHAVIOURS = tuple(field.name for field in dataclasses.fields(Behaviours))


def parse_settings(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> ProxySettings:
    """Flags, else KINESIS_PROXY_* variables (empty ones count as unset); exits 2 on a bad one.

    `--aws` (KINESIS_PROXY_AWS=true) starts from `Behaviours.aws()`, every other
    behaviour from off; each behaviour is named as its `Behaviours` field,
    `--empty-page-probability 0.1` or KINESIS_PROXY_EMPTY_PAGE_PROBABILITY=0.1.
    """
    environ = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(prog="python -m kinesis_proxy", description=__doc__)
    parser.add_argument("--upstream", help="LocalStack's URL (KINESIS_PROXY_UPSTREAM)")
    parser.add_argument("--listen", help="HOST:PORT to serve on (KINESIS_PROXY_LISTEN)")
    parser.add_argument("--aws", action="store_const", const="true", help="AWS's limits")
    for name in BEHAVIOURS:
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, metavar="VALUE")
    flags = {
        f"kinesis_proxy_{name}": value
        for name, value in vars(parser.parse_args(argv)).items()
        if value is not None
    }
    given = {
        field: environ[field.upper()]
        for field in ProxySettings.model_fields
        if environ.get(field.upper(), "").strip()
    }
    try:
        settings = ProxySettings(**(given | flags))
    except ValidationError as error:
        parser.error(str(configuration_error(error, ProxySettings, {})))
    if not settings.upstream:
        parser.error("--upstream (or KINESIS_PROXY_UPSTREAM) is required")
    return settings
