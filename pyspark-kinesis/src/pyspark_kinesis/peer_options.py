"""The peers' documented options this source has no use for: accepted with a reason, or refused.

qubole's connector, the AWS connector (`spark-sql-kinesis-connector`, README and
`KinesisOptions.scala`) and Databricks' Kinesis source document options that tune
machinery this source does not have (prefetch queues, metadata retries, a shard
listing interval) or features it lacks (DynamoDB, Java credential providers).
Design decision: no documented name is ever "unknown": one that changes
nothing here is accepted and said once in the log with why; one whose value asks for
something this source cannot do is refused with what to use instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NotNeeded:
    """An option accepted and ignored.

    `values`: the values it may take (lower case; any if empty); `refused`: values that
    ask for what this source cannot do, each with why and what to use instead.
    """

    why: str
    values: tuple[str, ...] = ()
    refused: tuple[tuple[str, str], ...] = ()


_RETRIED = (
    "Kinesis calls are retried by botocore, and throttling again with jittered "
    "exponential backoff for up to five minutes; reads also wait out 500/503 answers and "
    "dropped connections until readRetryDeadline"
)
_FIXED_AT_PLANNING = (
    "a batch takes the records that had arrived when it was planned, so its tasks stop by "
    "themselves; a time budget would make a re-run batch return other records"
)
_SUBSCRIPTIONS_RENEWED = (
    "a fan-out subscription that expires or breaks is renewed from the last record taken, "
    "ResourceInUseException waited out with backoff, within the read's planned bounds"
)
_CONSUMER_BY_NAME = "the fan-out consumer is named by consumerName (kinesis.consumerName)"
_TASKS_BY_SHARDS_PER_TASK = (
    "a batch runs one task per shardsPerTask shards with records: set shardsPerTask to change "
    "how many tasks read"
)
_NOT_BUFFERED = (
    "a sink task sends a request once it holds maxRecordsPerRequest records or "
    "maxBytesPerRequest bytes, and the rest when its partition ends: no record waits for a time"
)
_NO_PREFETCHED_BLOCKS = (
    "tasks read during their batch and keep no prefetched blocks, so there are none to coalesce"
)
_NOTES_ARE_FILES = (
    "batch ends are noted under metadataPath, each written once (a file linked into place, or "
    "an S3 object written only if none is there)"
)
_NO_DYNAMODB = (
    "batch ends are noted in files or S3 objects, not DynamoDB: remove the option and set "
    "kinesis.metadataPath to a directory the driver and every executor see, or to an s3:// prefix"
)
_NO_JAVA_PROVIDER = (
    "a Java credential provider cannot run in Python: use kinesis.awsAccessKeyId/awsSecretKey, "
    "kinesis.stsRoleArn, or the default AWS chain (environment, profile, instance role)"
)

# Lower-cased option name -> what it does here.
NOT_NEEDED: dict[str, NotNeeded] = {
    # qubole
    "awsuseinstanceprofile": NotNeeded(
        "the default AWS credential chain, used when no keys or role are given, "
        "includes the instance profile",
        values=("true", "false"),
    ),
    "kinesis.executor.maxfetchtimeinms": NotNeeded(_FIXED_AT_PLANNING),
    "kinesis.client.numretries": NotNeeded(_RETRIED),
    "kinesis.client.retryintervalms": NotNeeded(_RETRIED),
    "kinesis.client.maxretryintervalms": NotNeeded(_RETRIED),
    "kinesis.client.avoidemptybatches": NotNeeded(
        "a trigger with nothing to read runs no batch", values=("true", "false")
    ),
    # the AWS connector
    "kinesis.subscribetoshard.timeoutsec": NotNeeded(_SUBSCRIPTIONS_RENEWED),
    "kinesis.subscribetoshard.maxretries": NotNeeded(_SUBSCRIPTIONS_RENEWED),
    "kinesis.maxfetchtimepershardsec": NotNeeded(_FIXED_AT_PLANNING),
    "kinesis.minbatchestoretain": NotNeeded(
        "each shard keeps its newest few batch-end notes, enough for any batch Spark re-runs"
    ),
    "kinesis.checknewrecordthreads": NotNeeded(
        "the driver looks at every shard in parallel, up to 32 at once"
    ),
    "kinesis.metadatacommittertype": NotNeeded(
        "batch ends are noted in files under kinesis.metadataPath (HDFS's role)",
        values=("hdfs",),
        refused=(("dynamodb", _NO_DYNAMODB),),
    ),
    "kinesis.metadatanumretries": NotNeeded(_NOTES_ARE_FILES),
    "kinesis.metadataretryintervalsms": NotNeeded(_NOTES_ARE_FILES),
    "kinesis.metadatamaxretryintervalms": NotNeeded(_NOTES_ARE_FILES),
    "kinesis.clientnumretries": NotNeeded(_RETRIED),
    "kinesis.clientretryintervalsms": NotNeeded(_RETRIED),
    "kinesis.clientmaxretryintervalms": NotNeeded(_RETRIED),
    # the AWS connector's internal options (in its KinesisOptions.scala, not its README)
    "kinesis.internal.dataqueuecapacity": NotNeeded("tasks read without a prefetch queue"),
    "kinesis.internal.maxdataqueueemptycount": NotNeeded("tasks read without a prefetch queue"),
    "kinesis.internal.dataqueuewaittimeoutsec": NotNeeded("tasks read without a prefetch queue"),
    "kinesis.internal.maintenancetaskintervalsec": NotNeeded(
        "no background maintenance task runs here"
    ),
    "kinesis.internal.avoidemptybatches": NotNeeded(
        "a trigger with nothing to read runs no batch", values=("true", "false")
    ),
    # Databricks
    "maxpartitions": NotNeeded(_TASKS_BY_SHARDS_PER_TASK),
    # Databricks' other fan-out consumer naming (consumerMode=efo reads as consumerName).
    "consumernameprefix": NotNeeded(_CONSUMER_BY_NAME),
    "consumerrefreshinterval": NotNeeded(_CONSUMER_BY_NAME),
    "registeredconsumerid": NotNeeded(_CONSUMER_BY_NAME),
    "registeredconsumeridtype": NotNeeded(_CONSUMER_BY_NAME, values=("name", "arn")),
    "maxshardsperdescribe": NotNeeded(
        "shards are listed with ListShards, every page of it: the page size changes how many "
        "calls list them, not which shards are read"
    ),
    "coalescethresholdblocksize": NotNeeded(_NO_PREFETCHED_BLOCKS),
    "coalescebinsize": NotNeeded(_NO_PREFETCHED_BLOCKS),
    # the AWS connector's sink (README, "Kinesis Sink Configuration")
    "kinesis.sink.flushwaittimems": NotNeeded(_NOT_BUFFERED),
    "kinesis.sink.recordmaxbufferedtimems": NotNeeded(_NOT_BUFFERED),
    "kinesis.sink.recordttl": NotNeeded(
        "the sink never drops a record: entries Kinesis refuses are resent until "
        "writeRetryDeadline, then the task fails saying how many were not written"
    ),
    # qubole's sink (README, "Kinesis Sink Configuration"; the second name is spelt so there)
    "kinesis.executor.recordmaxbufferedtime": NotNeeded(_NOT_BUFFERED),
    "kniesis.executor.flushwaittimemillis": NotNeeded(_NOT_BUFFERED),
}

# Refused rather than ignored: a proxy left out would send the requests past it.
_PROXY_FROM_ENVIRONMENT = (
    "the Kinesis client takes its proxy from botocore's environment variables, not from "
    "options: remove the option and set HTTPS_PROXY (http://user:password@host:port) on the "
    "driver and, with spark.executorEnv.HTTPS_PROXY, on the executors"
)

# Lower-cased option name -> why it is refused and what to use instead.
REFUSED: dict[str, str] = {
    # the AWS connector's sink proxy (in its KinesisOptions.scala, not its README)
    "kinesis.sink.proxyaddress": _PROXY_FROM_ENVIRONMENT,
    "kinesis.sink.proxyport": _PROXY_FROM_ENVIRONMENT,
    "kinesis.sink.proxyusername": _PROXY_FROM_ENVIRONMENT,
    "kinesis.sink.proxypassword": _PROXY_FROM_ENVIRONMENT,
    "kinesis.credentialproviderclass": _NO_JAVA_PROVIDER,
    "kinesis.credentialproviderparam": _NO_JAVA_PROVIDER,
    "kinesis.dynamodb.tablename": _NO_DYNAMODB,
    "servicecredential": (
        "Databricks service credentials exist only on Databricks: use roleArn (with "
        "roleExternalId), or awsAccessKey/awsSecretKey, or the default AWS chain"
    ),
}

_said: set[str] = set()


def refusal(name: str, value: str) -> str | None:
    """Why the option `name`=`value` is refused, or None if it is accepted."""
    key = name.lower()
    if key in REFUSED:
        return f"option {name!r} is not supported: {REFUSED[key]}"
    entry = NOT_NEEDED.get(key)
    if entry is None:
        return None
    given = value.strip().lower()
    for refused_value, why in entry.refused:
        if given == refused_value:
            return f"option {name!r}={value!r} is not supported: {why}"
    if entry.values and given not in entry.values:
        return f"option {name!r} must be one of {', '.join(entry.values)}, not {value!r}"
    return None


def say_not_needed(name: str) -> None:
    """Logs, once per process and option, that `name` is accepted and changes nothing."""
    key = name.lower()
    if key in _said:
        return
    _said.add(key)
    log.warning("option %r is accepted and not needed: %s", name, NOT_NEEDED[key].why)
