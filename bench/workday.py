"""`python -m bench workday [calls|stack]`: does the stack stay fast for a working day?

Two parts, each opt-in (not in `make bench`); results go to bench/workday.json and
bench/workday.md (a part run alone keeps the other part's results):

- calls: single calls at the stream's tip (a PutRecords of 10 records, a GetRecords
  of each open shard) on a fresh LocalStack holding 0, 100,000 and 290,000 records
  (290,000: eight hours of the producer's default 10 events/s), filled with
  PutRecords of 500. With the stack's settings (an open shard renewed at
  SHARD_RENEWAL_RECORDS by the stack's own renewer, kinesis-mock saving every
  KINESIS_MOCK_PERSIST_INTERVAL) and with the settings before issue 30 (no renewal,
  saves every 5 s). A fill that cannot reach a level within FILL_BUDGET_S is
  reported as far as it got, except without renewal: there the rest of each level is
  copied into kinesis-mock's saved state (a no-renewal stream's fill slows with every
  record a shard holds, and 290,000 records would take hours) and a fresh LocalStack
  loads it. Then, holding the last level, LocalStack's CPU for WORKDAY_IDLE_MINUTES
  (11: a save interval and more) while the library's planner looks at the drained
  stream every 500 ms, as the consumer's driver does between batches.
- stack: the Compose stack as `docker compose up` starts it (own project name, free
  ports). Each service's CPU over a minute at the default rate; then ten times the
  default rate for WORKDAY_STACK_MINUTES (48), a marker in the tutorial's shape put
  from outside each minute and timed until the consumer prints it, and the events
  the sink took that minute; then each service's CPU at the default rate again and
  with the producer stopped (a stack left up should idle). Then the same at ten
  times the rate with the settings before issue 30, for WORKDAY_TODAY_MINUTES (15).
"""

from __future__ import annotations

import json
import os
import re
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker
from producer.events import EventFactory, to_record
from producer.renewal import open_shards, run_renewals
from producer.settings import ShardRenewalSettings
from pyspark.sql.streaming.datasource import ReadAllAvailable
from pyspark_kinesis.options import KinesisOptions
from pyspark_kinesis.stream_reader import KinesisStreamReader

from bench.coldstart import Stack, stamped_lines
from bench.emulator import client, create_stream, event_records
from settings_docs.stack import LocalStackSettings
from testkit.clients import REGION
from testkit.localstack import running_localstack

HERE = Path(__file__).resolve().parent
CALL_LEVELS = (0, 100_000, 290_000)
FILL_BUDGET_S = float(os.environ.get("WORKDAY_FILL_BUDGET_S", "600"))
# PutRecords calls of the fill in flight at once, so LocalStack never waits between two calls.
FILL_CALLS_AT_ONCE = 2
CALL_WINDOW_S = 20.0
DEFAULT_RATE = ShardRenewalSettings().producer_rate
STACK_MINUTES = int(os.environ.get("WORKDAY_STACK_MINUTES", "48"))
TODAY_MINUTES = int(os.environ.get("WORKDAY_TODAY_MINUTES", "15"))
CPU_WINDOW_S = float(os.environ.get("WORKDAY_CPU_WINDOW_S", "60"))
IDLE_MINUTES = float(os.environ.get("WORKDAY_IDLE_MINUTES", "11"))
CPU_SAMPLE_S = 10.0
TRIGGER_S = 0.5  # the stack's trigger
# A fresh LocalStack loading 290,000 saved records takes minutes before its first answer.
LOAD_DEADLINE_S = 600.0
# kinesis-mock numbers a shard's records from bit 80 of their sequence numbers up.
SEQUENCE_STEP = 1 << 80
MARKER_DEADLINE_S = 120.0
SERVICES = ("localstack", "producer", "consumer", "shard-renewer")
# The per-call table's configurations (`calls:<name>`), in the order its rows are written.
CALL_CONFIGURATIONS = ("chosen", "renewal_only", "before")
# The settings before issue 30: no renewal, kinesis-mock saving its whole state every 5 s.
BEFORE = {"SHARD_RENEWAL_RECORDS": "0", "KINESIS_MOCK_PERSIST_INTERVAL": "5s"}


def _load() -> float:
    return round(os.getloadavg()[0], 2)


# --- calls ------------------------------------------------------------------------------


def _tip_iterators(kinesis: Any, stream: str) -> dict[str, str]:
    """A LATEST iterator of each open shard."""
    return {
        shard["ShardId"]: kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="LATEST"
        )["ShardIterator"]
        for shard in open_shards(kinesis, stream)
    }


def _tip_calls(kinesis: Any, stream: str) -> dict[str, Any]:
    """Single calls at the tip for CALL_WINDOW_S: PutRecords of 10, GetRecords per open shard."""
    iterators = _tip_iterators(kinesis, stream)
    entries = [{"Data": r.data, "PartitionKey": r.partition_key} for r in event_records(10, 9)]
    puts: list[float] = []
    gets: list[float] = []
    load_before, ends = _load(), time.monotonic() + CALL_WINDOW_S
    while time.monotonic() < ends:
        started = time.perf_counter()
        kinesis.put_records(StreamName=stream, Records=entries)
        puts.append(time.perf_counter() - started)
        for shard, iterator in list(iterators.items()):
            started = time.perf_counter()
            answer = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
            gets.append(time.perf_counter() - started)
            iterators[shard] = answer.get("NextShardIterator")
        if None in iterators.values():  # a shard renewed meanwhile: read its successor
            iterators = _tip_iterators(kinesis, stream)
    return {
        "put_records_ms": _spread(puts),
        "get_records_ms": _spread(gets),
        "load_1min": [load_before, _load()],
    }


def _spread(seconds: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in seconds)
    return {
        "calls": len(ms),
        "p50": round(statistics.median(ms), 1),
        "p95": round(ms[int(0.95 * (len(ms) - 1))], 1),
        "max": round(ms[-1], 1),
    }


@contextmanager
def _renewing(url: str, stream: str, records: int) -> Iterator[None]:
    """The stack's renewer on `stream` (checked every second) while the block runs."""
    if not records:
        yield
        return
    settings = ShardRenewalSettings(
        kinesis_stream_name=stream,
        kinesis_endpoint_url=url,
        shard_renewal_records=records,
        shard_renewal_check_seconds=1,
    )
    stop = threading.Event()
    renewer = threading.Thread(target=run_renewals, args=(settings, client(url), stop))
    renewer.start()
    try:
        yield
    finally:
        stop.set()
        renewer.join()


def measure_calls(name: str, renewal_records: int, persist_interval: str) -> dict[str, Any]:
    """The per-call table of one configuration, and LocalStack idling at its last level."""
    env: dict[str, Any] = {
        "PERSISTENCE": "1",
        "KINESIS_PERSISTENCE": "1",
        "KINESIS_MOCK_PERSIST_INTERVAL": persist_interval,
        "KINESIS_SHARD_LIMIT": "100000",
    }
    levels: list[dict[str, Any]] = []
    idle: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as state:
        state_dir = Path(state)
        with running_localstack(state_dir=state_dir, **env) as url:
            stream = create_stream(url, 2)
            kinesis = client(url)
            put = _fill_levels(
                name, kinesis, url, stream, renewal_records=renewal_records, levels=levels
            )
            if put >= CALL_LEVELS[-1]:
                idle = idle_cpu(url, stream)
            shards = len(kinesis.list_shards(StreamName=stream)["Shards"])
        for level in CALL_LEVELS[len(levels) :] if not renewal_records else ():
            _grow_saved_state(state_dir, level)
            loading = time.monotonic()
            with running_localstack(
                state_dir=state_dir, startup_deadline_s=LOAD_DEADLINE_S, **env
            ) as url:
                loaded: dict[str, Any] = {"level": level, "held": level, "put": put}
                loaded["load_s"] = round(time.monotonic() - loading, 1)
                levels.append(loaded | _tip_calls(client(url), stream))
                print(json.dumps({name: levels[-1]}), flush=True)
                if level == CALL_LEVELS[-1]:
                    idle = idle_cpu(url, stream)
    return {
        "renewal_records": renewal_records,
        "persist_interval": persist_interval,
        "levels": levels,
        "shards_at_end": shards,
        "idle": idle,
    }


def _fill_levels(
    name: str, kinesis: Any, url: str, stream: str, *, renewal_records: int, levels: list[Any]
) -> int:
    """Fills the stream with PutRecords of 500, measuring the calls at each level reached
    (into `levels`) until FILL_BUDGET_S runs out; returns the records put. With renewal,
    the level it stopped short of is measured as far as it got."""
    batch = [{"Data": r.data, "PartitionKey": r.partition_key} for r in event_records(500, 3)]
    held, fill_started = 0, time.monotonic()
    with _renewing(url, stream, renewal_records), ThreadPoolExecutor(FILL_CALLS_AT_ONCE) as fill:
        for level in CALL_LEVELS:
            level_started, held_before = time.monotonic(), held
            while held < level and time.monotonic() - fill_started < FILL_BUDGET_S:
                answers = fill.map(
                    lambda _: kinesis.put_records(StreamName=stream, Records=batch),
                    range(FILL_CALLS_AT_ONCE),
                )
                held += sum(len(batch) - answer["FailedRecordCount"] for answer in answers)
            if held < level and not renewal_records:
                return held  # the rest is loaded
            fill_rate = (held - held_before) / max(time.monotonic() - level_started, 1e-9)
            row = {"level": level, "held": held, "fill_records_per_s": round(fill_rate)}
            levels.append(row | _tip_calls(kinesis, stream))
            print(json.dumps({name: levels[-1]}), flush=True)
            if held < level:
                break
    return held


def grown_state(state: dict[str, Any], records: int) -> dict[str, Any]:
    """kinesis-mock's saved state with its streams' shards grown to `records` in all, each
    shard's own records copied after its last one, numbered on from it."""
    for stream in state["streams"].values():
        shards = list(stream["shards"].values())
        per_shard, extra = divmod(records, len(shards))
        for index, shard_records in enumerate(shards):
            if not shard_records:
                raise ValueError("a shard to grow holds no record to copy")
            wanted = per_shard + (index < extra)
            last = shard_records[-1]
            shard_records += [
                shard_records[copy % len(shard_records)]
                | {"SequenceNumber": str(int(last["SequenceNumber"]) + (copy + 1) * SEQUENCE_STEP)}
                | {"ApproximateArrivalTimestamp": last["ApproximateArrivalTimestamp"]}
                for copy in range(wanted - len(shard_records))
            ]
    return state


def _grow_saved_state(state_dir: Path, records: int) -> None:
    (saved,) = (state_dir / "state" / "kinesis").glob("*.json")
    saved.write_text(json.dumps(grown_state(json.loads(saved.read_text()), records)))


def _container_of(url: str) -> str:
    """The id of the container publishing `url`'s port."""
    port = url.rsplit(":", 1)[1]
    (container,) = docker.from_env().containers.list(filters={"publish": port})
    return str(container.id)


def idle_cpu(url: str, stream: str) -> dict[str, Any]:
    """LocalStack's CPU for IDLE_MINUTES while the library's planner looks at the drained
    stream every TRIGGER_S from its tip, as the consumer's driver does between batches: the
    median and highest of samples of CPU_SAMPLE_S (longer when a look was held up: a sample
    ends between looks) and the mean over the whole window. A save shows as a run of high
    samples."""
    container = _container_of(url)
    with tempfile.TemporaryDirectory() as notes:
        options = KinesisOptions(
            stream_name=stream,
            region=REGION,
            endpoint_url=url,
            metadata_path=notes,
        )  # from the stream's tip (LATEST), as the consumer starts
        reader = KinesisStreamReader(options)
        tip = reader.latestOffset(reader.initialOffset(), ReadAllAvailable())
        load_before, samples = _load(), []
        started = sample_started = time.monotonic()
        cpu_started = cpu_before = _cpu_seconds(container)
        while time.monotonic() - started < IDLE_MINUTES * 60:
            trigger = time.monotonic()
            if reader.latestOffset(tip, ReadAllAvailable()) != tip:
                raise RuntimeError("records arrived on the idle stream")
            if (now := time.monotonic()) - sample_started >= CPU_SAMPLE_S:
                cpu = _cpu_seconds(container)
                samples.append((cpu - cpu_before) / (now - sample_started))
                sample_started, cpu_before = now, cpu
            time.sleep(max(0.0, trigger + TRIGGER_S - time.monotonic()))
        mean = (_cpu_seconds(container) - cpu_started) / (time.monotonic() - started)
        reader.stop()
    return {
        "minutes": IDLE_MINUTES,
        "cores_median": round(statistics.median(samples), 3),
        "cores_max": round(max(samples), 3),
        "cores_mean": round(mean, 3),
        "samples_over_0_3": sum(sample > 0.3 for sample in samples),
        "samples": len(samples),
        "load_1min": [load_before, _load()],
    }


# --- stack ------------------------------------------------------------------------------


def _cpu_seconds(container: str) -> float:
    """CPU time the container has used so far, from its cgroup (v1 cpuacct or v2 cpu.stat)."""
    v1 = Path(f"/sys/fs/cgroup/cpuacct/docker/{container}/cpuacct.usage")
    if v1.exists():
        return int(v1.read_text()) / 1e9
    for v2 in (
        Path(f"/sys/fs/cgroup/system.slice/docker-{container}.scope/cpu.stat"),
        Path(f"/sys/fs/cgroup/docker/{container}/cpu.stat"),
    ):
        if v2.exists():
            usage = next(line for line in v2.read_text().splitlines() if "usage_usec" in line)
            return int(usage.split()[1]) / 1e6
    raise RuntimeError(f"no cgroup CPU accounting for container {container}")


def _full_ids(stack: Stack) -> dict[str, str]:
    ids = {}
    for service in SERVICES:
        found = stack.compose("ps", "-q", "--no-trunc", service, check=False).stdout.strip()
        if found:
            ids[service] = found
    return ids


# The consumer container's processes, by what they do (their command line).
CONSUMER_PARTS = (
    ("python_streaming_source_runner", "the source's planning (Python)"),
    ("pyspark.daemon", "Python workers (the tasks)"),
    ("-m consumer", "the consumer's Python driver"),
    ("pyspark_kinesis.fan_out_hub", "the fan-out hub (CONSUMER_READ_MODE=fan-out)"),
    ("java", "the JVM (Spark's driver and executors)"),
)
_PROCESSES = (
    'for p in /proc/[0-9]*; do [ -r "$p/stat" ] && '
    'echo "${p#/proc/} $(cut -d" " -f14,15 "$p/stat") $(tr "\\0" " " < "$p/cmdline")"; done'
)


def _consumer_processes(stack: Stack) -> dict[str, tuple[str, float]]:
    """Each consumer process: what it does, and its CPU seconds so far (clock ticks / 100)."""
    listing = stack.compose("exec", "-T", "consumer", "sh", "-c", _PROCESSES, check=False).stdout
    processes = {}
    for line in listing.splitlines():
        pid, user, system, *command = line.split(" ")
        text = " ".join(command)
        part = next((label for key, label in CONSUMER_PARTS if key in text), "other")
        processes[pid] = (part, (int(user) + int(system)) / 100)
    return processes


def service_cpu(stack: Stack) -> dict[str, Any]:
    """Each running service's CPU over CPU_WINDOW_S, in cores (1.0 = one core busy), and
    the consumer's by part (processes that ended within the window are not counted)."""
    ids = _full_ids(stack)
    load_before, before = _load(), {s: _cpu_seconds(c) for s, c in ids.items()}
    parts_before, started = _consumer_processes(stack), datetime.now(UTC)
    time.sleep(CPU_WINDOW_S)  # the measuring window itself
    after = {s: _cpu_seconds(c) for s, c in ids.items()}
    batches = len(_batches_written(stack, started, datetime.now(UTC)))
    parts: dict[str, float] = {}
    for pid, (part, seconds) in _consumer_processes(stack).items():
        spent = seconds - parts_before.get(pid, (part, 0.0))[1]
        parts[part] = round(parts.get(part, 0.0) + spent / CPU_WINDOW_S, 3)
    cores = {s: round((after[s] - before[s]) / CPU_WINDOW_S, 3) for s in ids}
    # What a batch costs the consumer: Spark's fixed cost per micro-batch, paid at every trigger
    # that finds records, dwarfs the few records' own at the default rate.
    spent_ms = (after["consumer"] - before["consumer"]) * 1000
    return {
        "cores": cores,
        "consumer_parts": parts,
        "batches": batches,
        "consumer_ms_per_batch": round(spent_ms / batches) if batches else None,
        "load_1min": [load_before, _load()],
    }


def _wait_for_first_batch(stack: Stack) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        logs = stack.compose("logs", "--no-log-prefix", "consumer", check=False).stdout
        if re.search(r"batch \d+: [1-9]\d* events", logs):
            return
        time.sleep(1)
    raise RuntimeError("the stack's consumer wrote no batch within 300 s")


def _marker_latency(stack: Stack, kinesis: Any, stream: str, number: int) -> float | None:
    """Seconds from putting a marker (the tutorial's shape, its own message_type) to the
    consumer printing it in its running totals; None past MARKER_DEADLINE_S."""
    marker = f"marker-{number}-{uuid.uuid4().hex[:6]}"
    record = to_record(EventFactory().complete({"message_type": marker, "count": 1}))
    since = datetime.now(UTC)
    started = time.monotonic()
    kinesis.put_record(StreamName=stream, Data=record.data, PartitionKey=record.partition_key)
    while time.monotonic() - started < MARKER_DEADLINE_S:
        logs = stack.compose(
            "logs", "--no-log-prefix", "--since", since.isoformat(), "consumer", check=False
        ).stdout
        if marker in logs:
            return round(time.monotonic() - started, 2)
        time.sleep(0.25)
    return None


def _batches_written(stack: Stack, since: datetime, until: datetime) -> list[int]:
    """Each batch the consumer wrote between the two instants: its events (its log lines)."""
    events = []
    for moment, text in stamped_lines(stack):
        found = re.search(r"batch \d+: (\d+) events", text)
        if found and since <= moment < until:
            events.append(int(found[1]))
    return events


def _renewals(stack: Stack) -> list[str]:
    logs = stack.compose("logs", "--no-log-prefix", "shard-renewer", check=False).stdout
    return [line for line in logs.splitlines() if "renewed shard" in line]


def measure_stack(name: str, minutes: int, overrides: dict[str, str]) -> dict[str, Any]:
    """One stack: CPU at the default rate, `minutes` at ten times it with a marker each
    minute, CPU at the default rate again and with the producer stopped."""
    stack = Stack()
    stack.env.update(overrides)
    stack.env["PRODUCER_RATE"] = f"{DEFAULT_RATE:g}"
    result: dict[str, Any] = {"settings": overrides, "rate": DEFAULT_RATE * 10, "minutes": []}
    try:
        stack.compose("up", "-d", "--build")
        _wait_for_first_batch(stack)
        result["cpu_start"] = service_cpu(stack)
        stack.env["PRODUCER_RATE"] = f"{DEFAULT_RATE * 10:g}"
        stack.compose("up", "-d", "producer")
        url = f"http://127.0.0.1:{stack.env['LOCALSTACK_PORT']}"
        kinesis = client(url)
        stream = ShardRenewalSettings().kinesis_stream_name
        began = time.monotonic()
        for minute in range(1, minutes + 1):
            minute_started = datetime.now(UTC)
            latency = _marker_latency(stack, kinesis, stream, minute)
            time.sleep(max(0.0, began + minute * 60 - time.monotonic()))  # the minute's pace
            row = {
                "minute": minute,
                "marker_latency_s": latency,
                "sink_events_per_s": round(
                    sum(_batches_written(stack, minute_started, datetime.now(UTC)))
                    / (datetime.now(UTC) - minute_started).total_seconds(),
                    1,
                ),
                "renewals_so_far": len(_renewals(stack)),
                "load_1min": _load(),
            }
            result["minutes"].append(row)
            print(json.dumps({name: row}), flush=True)
        stack.env["PRODUCER_RATE"] = f"{DEFAULT_RATE:g}"
        stack.compose("up", "-d", "producer")
        result["cpu_after"] = service_cpu(stack)
        stack.compose("stop", "producer")
        result["cpu_idle"] = service_cpu(stack)
        result["renewal_lines"] = _renewals(stack)[:3]
        result["renewals"] = len(_renewals(stack))
    finally:
        stack.compose("down", "--volumes", "--remove-orphans", "--timeout", "60", check=False)
    return result | summarize(result["minutes"])


def summarize(minutes: list[dict[str, Any]]) -> dict[str, Any]:
    """First and last ten minutes' median marker latency (a marker not printed within
    MARKER_DEADLINE_S counts as that long, a lower bound), and the sink's slowest minute."""
    latencies = [
        MARKER_DEADLINE_S if m["marker_latency_s"] is None else m["marker_latency_s"]
        for m in minutes
    ]
    first_median = round(statistics.median(latencies[:10]), 2)
    last_median = round(statistics.median(latencies[-10:]), 2)
    return {
        "first_10_median_s": first_median,
        "last_10_median_s": last_median,
        "last_vs_first": round(last_median / first_median, 2),
        "markers_missed": sum(m["marker_latency_s"] is None for m in minutes),
        "sink_slowest_minute_events_per_s": min(m["sink_events_per_s"] for m in minutes),
        "sink_median_events_per_s": round(
            statistics.median(m["sink_events_per_s"] for m in minutes), 1
        ),
    }


def measure(parts: list[str]) -> dict[str, Any]:
    """The parts named (`calls`, `stack`), or one configuration of the calls
    (`calls:chosen`, `calls:renewal_only`, `calls:before`); what is not run keeps its
    earlier result, each configuration with the time it was measured."""
    path = HERE / "workday.json"
    results: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    localstack = LocalStackSettings()
    renewal = ShardRenewalSettings().shard_renewal_records
    call_settings = {
        "chosen": (renewal, localstack.kinesis_mock_persist_interval),
        # Renewal alone, kinesis-mock saving every 5 s as before: what the saves cost.
        "renewal_only": (renewal, BEFORE["KINESIS_MOCK_PERSIST_INTERVAL"]),
        "before": (0, BEFORE["KINESIS_MOCK_PERSIST_INTERVAL"]),
    }
    for name, (records, interval) in call_settings.items():
        if "calls" in parts or f"calls:{name}" in parts:
            started = datetime.now(UTC).isoformat(timespec="seconds")
            calls = results.setdefault("calls", {})
            calls[name] = measure_calls(name.replace("_", " "), records, interval) | {
                "measured_at": started
            }
            path.write_text(json.dumps(results, indent=2) + "\n")
    if "stack" in parts:
        results["stack"] = {
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "chosen": measure_stack("chosen", STACK_MINUTES, {}),
        }
        path.write_text(json.dumps(results, indent=2) + "\n")
        results["stack"]["before"] = measure_stack("before", TODAY_MINUTES, BEFORE)
        path.write_text(json.dumps(results, indent=2) + "\n")
    return results


def _calls_rows(name: str, calls: dict[str, Any]) -> list[str]:
    setup = (
        f"renewal at {calls['renewal_records']:,} records"
        if calls["renewal_records"]
        else "no renewal"
    )
    rows = []
    for level in calls["levels"]:
        if "load_s" in level:  # grown in the saved state beyond what the fill put
            held = f"{level['held']:,} ({level['put']:,} put, the rest copied in the saved state)"
            fill = f"loaded in {level['load_s']} s"
        else:
            stopped = "" if level["held"] >= level["level"] else " (fill stopped)"
            held, fill = f"{level['held']:,}{stopped}", f"{level['fill_records_per_s']:,}"
        put, get = level["put_records_ms"], level["get_records_ms"]
        rows.append(
            f"| {name}: {setup}, saves every {calls['persist_interval']} | {held} | "
            f"{fill} | {put['p50']} / {put['p95']} / {put['max']} | "
            f"{get['p50']} / {get['p95']} / {get['max']} | "
            f"{level['load_1min'][0]} to {level['load_1min'][1]} | "
            f"{calls.get('measured_at', '')} |"
        )
    return rows


def _stack_rows(name: str, run: dict[str, Any]) -> list[str]:
    summary = summarize(run["minutes"])
    verdict = "pass" if summary["last_vs_first"] <= 1.5 else "FAIL"
    loads = [m["load_1min"] for m in run["minutes"]]
    return [
        f"| {name}: {len(run['minutes'])} min at {run['rate']:g} events/s, marker latency, "
        f"median of the first / last 10 minutes ({summary['markers_missed']} markers not "
        f"printed within {MARKER_DEADLINE_S:.0f} s, counted as that) | "
        f"{summary['first_10_median_s']} s / {summary['last_10_median_s']} s | "
        f"{summary['last_vs_first']}x (≤ 1.5x: {verdict}) | sink median "
        f"{summary['sink_median_events_per_s']} events/s, slowest minute "
        f"{summary['sink_slowest_minute_events_per_s']}; {run.get('renewals', 0)} renewals | "
        f"{min(loads)} to {max(loads)} (median {statistics.median(loads)}) |",
        *(
            f"| {name}: CPU per service, cores ({label}) | "
            + ", ".join(f"{s} {c:.2f}" for s, c in run[key]["cores"].items())
            + " | consumer: "
            + ", ".join(f"{p} {c:.2f}" for p, c in run[key].get("consumer_parts", {}).items())
            + f" | {_batch_cost(run[key])} | {run[key]['load_1min'][0]} to "
            + f"{run[key]['load_1min'][1]} |"
            for key, label in (
                ("cpu_start", f"default {DEFAULT_RATE:g} events/s, at the start"),
                ("cpu_after", f"default {DEFAULT_RATE:g} events/s, after the run"),
                ("cpu_idle", "producer stopped, after the run"),
            )
            if key in run
        ),
    ]


def _batch_cost(cpu: dict[str, Any]) -> str:
    if cpu.get("consumer_ms_per_batch") is None:
        return "no batch written" if "batches" in cpu else ""
    return f"{cpu['batches']} batches, the consumer {cpu['consumer_ms_per_batch']} ms CPU a batch"


def write(results: dict[str, Any], folder: Path) -> str:
    """workday.md from the results (workday.json is written as each part ends)."""
    parts = []
    if "calls" in results:
        calls = results["calls"]
        idle_rows = [
            f"| {name.replace('_', ' ')} | {calls[name]['levels'][-1]['held']:,} | "
            f"{idle['minutes']:g} | {idle['cores_median']} | {idle['cores_max']} | "
            f"{idle['samples_over_0_3']} of {idle['samples']} | {idle['cores_mean']} | "
            f"{idle['load_1min'][0]} to {idle['load_1min'][1]} |"
            for name in CALL_CONFIGURATIONS
            if (idle := calls[name].get("idle"))
        ]
        when = calls.get("measured_at", "")  # results from before each configuration had its own
        parts += [
            "Single calls at the tip; ms p50 / p95 / max:",
            "",
            "| settings | records held | fill rate, rec/s | PutRecords of 10 | GetRecords "
            "| load (1 min) | measured |",
            "| --- | ---: | ---: | --- | --- | --- | --- |",
            *(
                row
                for name in CALL_CONFIGURATIONS
                for row in _calls_rows(name.replace("_", " "), {"measured_at": when} | calls[name])
            ),
            "",
        ]
        if idle_rows:
            parts += [
                "LocalStack idling at the last level, the library's planner looking at the "
                f"drained stream every {TRIGGER_S:g} s (the consumer between batches); cores "
                f"per sample ({CPU_SAMPLE_S:g} s, or until the next look returned when a look "
                "was held up):",
                "",
                "| settings | records held | minutes | median | highest | samples over 0.3 "
                "| mean over the window | load (1 min) |",
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
                *idle_rows,
                "",
            ]
    if "stack" in results:
        stack = results["stack"]
        parts += [
            f"The stack ({stack['measured_at']}):",
            "",
            "| run | measured | ratio | sink, renewals | load (1 min) |",
            "| --- | --- | --- | --- | --- |",
            *(
                row
                for name in ("chosen", "before")
                if name in stack
                for row in _stack_rows(name, stack[name])
            ),
            "",
        ]
    markdown = "\n".join(parts)
    (folder / "workday.md").write_text(markdown)
    return markdown
