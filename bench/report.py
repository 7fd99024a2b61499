"""The results as JSON, a Markdown table (measured, reference, ratio, target) and a plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

Row = tuple[str, str, str, str, str, str]
MIB = 1024 * 1024


def _verdict(passed: bool | None) -> str:
    return "n/a" if passed is None else ("pass" if passed else "FAIL")


def _ingest_rows(ingest: dict[str, Any]) -> list[Row]:
    rates = ingest["records_per_s"]
    count = f"{ingest['records']:,} records, fresh {ingest['shards']}-shard stream each"
    return [
        (
            f"1. Producer ingest ({count})",
            f"{rates['producer']:,.0f} rec/s",
            f"emulator ceiling {rates['emulator_ceiling']:,.0f} rec/s",
            f"{ingest['producer_vs_ceiling']:.2f}x",
            "≥ 0.90x",
            _verdict(ingest["producer_vs_ceiling"] >= 0.9),
        ),
        (
            "1. Producer vs the tutorial's put_record loop",
            f"{rates['producer']:,.0f} rec/s",
            f"tutorial loop {rates['tutorial_loop']:,.0f} rec/s",
            f"{ingest['producer_vs_tutorial']:.1f}x",
            "≥ 10x",
            _verdict(ingest["producer_vs_tutorial"] >= 10),
        ),
    ]


def _drain_rows(drain: dict[str, Any]) -> list[Row]:
    four = drain["scaling"]["4"]
    records = f"{drain['records']:,} records"
    rows: list[Row] = [
        (
            f"2. Spark drain, 4 shards, availableNow to noop ({records}, warm): its batches",
            f"{four['batches_records_per_s']:,.0f} rec/s",
            f"plain boto3 reader {four['plain_records_per_s']:,.0f} rec/s",
            f"{four['batches_vs_plain']:.2f}x",
            "≥ 0.70x",
            _verdict(four["batches_vs_plain"] >= 0.7),
        ),
        (
            "2. the same drain, wall clock from `start()` (query start-up included)",
            f"{four['spark_records_per_s']:,.0f} rec/s",
            f"plain boto3 reader {four['plain_records_per_s']:,.0f} rec/s",
            f"{four['spark_vs_plain']:.2f}x",
            "",
            f"start-up ≈ {four['spark']['seconds'] - four['spark']['batch_seconds']:.1f} s",
        ),
        (
            "2. Spark drain incl. the session's first-query cold start",
            f"{drain['spark_cold_records_per_s']:,.0f} rec/s",
            f"plain boto3 reader {four['plain_records_per_s']:,.0f} rec/s",
            f"{drain['spark_cold_records_per_s'] / four['plain_records_per_s']:.2f}x",
            "",
            f"cold start ≈ {drain['cold_start_s']:.1f} s",
        ),
    ]
    for shards in ("1", "2", "4"):
        figure = drain["scaling"][shards]
        rows.append(
            (
                f"5. Scaling: drain at {shards} shard(s) ({records})",
                f"Spark {figure['spark_records_per_s']:,.0f} rec/s",
                f"plain {figure['plain_records_per_s']:,.0f} rec/s",
                f"{figure['spark_vs_plain']:.2f}x",
                "",
                "",
            )
        )
    empty = drain["empty_batch"]
    rows.append(
        (
            f"6. Empty micro-batch on an idle 4-shard stream (median of {empty['triggers']})",
            f"{empty['trigger_ms_median']:.0f} ms "
            f"(latestOffset {empty['latest_offset_ms_median']:.0f} ms)",
            f"max {empty['trigger_ms_max']:.0f} ms",
            "",
            "< 200 ms",
            _verdict(empty["trigger_ms_median"] < 200),
        )
    )
    return rows


# Issue 13's targets: rate -> (p50 at most, p99 at most), seconds.
LATENCY_TARGETS = {200: (1.0, 2.0), 1000: (2.0, None)}


def _latency_target(run: dict[str, Any]) -> tuple[str, str]:
    p50_max, p99_max = LATENCY_TARGETS.get(run["rate"], (None, None))
    if p50_max is None or run["p50_s"] is None:
        return "", ""
    target = f"p50 ≤ {p50_max:.1f} s" + (f", p99 ≤ {p99_max:.1f} s" if p99_max else "")
    passed = run["p50_s"] <= p50_max and (p99_max is None or run["p99_s"] <= p99_max)
    return target, _verdict(passed)


def _phases(run: dict[str, Any]) -> str:
    """A batch's median phases in ms, as Spark names them (`durationMs`)."""
    phases = run.get("phase_ms_median", {})
    return ", ".join(f"{phase} {ms:.0f}" for phase, ms in phases.items() if ms is not None)


def _latency_rows(latency: list[dict[str, Any]]) -> list[Row]:
    rows: list[Row] = []
    for run in latency:
        trigger_s = run["trigger_s"]
        jobs = run["jobs_per_batch"]
        rows.append(
            (
                f"3. End-to-end latency at {run['rate']} rec/s "
                f"(achieved {run['achieved_rate']:,.0f}), {run['trigger']} trigger, "
                f"{run['seen']:,} of {run['sent']:,} events in the sink",
                f"p50 {run['p50_s']:.2f} s, p95 {run['p95_s']:.2f} s, p99 {run['p99_s']:.2f} s",
                f"trigger interval {trigger_s:g} s; median batch "
                f"{run['batch_ms_median'] / 1000:.2f} s ({_phases(run)})",
                f"p50 = {run['p50_s'] / trigger_s:.1f}x the trigger",
                *_latency_target(run),
            )
        )
        rows.append(
            (
                f"3. Spark jobs per batch at {run['rate']} rec/s",
                f"{jobs['per_batch']:.2f} jobs/batch",
                f"{jobs['jobs']} jobs in {jobs['batches']} batches (the query's job group)",
                "",
                "≤ 2",
                _verdict(jobs["per_batch"] <= 2),
            )
        )
    return rows


def _cold_rows(cold: dict[str, Any]) -> list[Row]:
    first = cold["first_record_s"]
    rows: list[Row] = [
        (
            "4. Cold start: `docker compose up` to the first event in the sink",
            f"{first:.1f} s" if first else "no event in time",
            f"`up -d` returned after {cold['up_returned_s']:.1f} s; consumer log: "
            + ", ".join(f"{k} {v:.0f} s" for k, v in cold.get("consumer_milestones_s", {}).items()),
            f"{first / 30:.2f}x the target" if first else "",
            "< 30 s",
            _verdict(first is not None and first < 30),
        )
    ]
    for service, size in cold["image_bytes"].items():
        peak = cold["memory"].get(service, {}).get("peak_bytes")
        rows.append(
            (
                f"4. {service}: image size, peak memory",
                f"{size / MIB:,.0f} MiB image",
                f"{peak / MIB:,.0f} MiB peak" if peak else "not measured",
                "",
                "",
                "",
            )
        )
    return rows


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def _connect_rows(connect: dict[str, Any]) -> list[Row]:
    resident, peak = connect["resident_bytes"], connect["peak_bytes"]
    memory = {
        service: f"{resident[service] / MIB:,.0f} MiB ({peak[service] / MIB:,.0f} MiB)"
        for service in resident
    }
    sides = {side: connect[side]["rounds"] for side in ("connect", "in_process")}
    first = {side: _median([r["first_row_s"] for r in rounds]) for side, rounds in sides.items()}
    every = {
        side: ", ".join(f"{r['first_row_s']:.2f}" for r in rounds) for side, rounds in sides.items()
    }
    return [
        (
            "11. Spark Connect server (connect profile): `up` to its first answer",
            f"{connect['connect_answered_s']:.1f} s",
            f"the consumer, started with it: `query started` at "
            f"{connect['consumer_query_started_s']:.1f} s",
            f"{connect['connect_answered_s'] / connect['consumer_query_started_s']:.2f}x",
            "",
            "",
        ),
        (
            "11. Spark Connect server: resident memory once up (peak)",
            memory["spark-connect"],
            f"the consumer {memory['consumer']}",
            f"{resident['spark-connect'] / resident['consumer']:.2f}x",
            "",
            "",
        ),
        (
            f"11. The tutorial's read through Connect, {connect['records']:,} records: "
            "`start()` to the first row (median of rounds)",
            f"{first['connect']:.2f} s (rounds {every['connect']})",
            f"in-process Spark on the host, same records: {first['in_process']:.2f} s "
            f"(rounds {every['in_process']})",
            f"{first['connect'] / first['in_process']:.2f}x",
            "",
            "",
        ),
    ]


def _sink_rows(sink: dict[str, Any]) -> list[Row]:
    rates = sink["records_per_s"]
    count = f"{sink['records']:,} rows, fresh {sink['shards']}-shard stream each"
    return [
        (
            f'7. Sink: writeStream.format("kinesis") ({count}, the batch\'s time)',
            f"{rates['sink']:,.0f} rec/s",
            f"emulator ceiling {rates['emulator_ceiling']:,.0f} rec/s; from `start()` "
            f"{rates['sink_from_start']:,.0f} rec/s ({sink['sink_from_start_vs_ceiling']:.2f}x)",
            f"{sink['sink_vs_ceiling']:.2f}x",
            "≥ 0.90x",
            _verdict(sink["sink_vs_ceiling"] >= 0.9),
        ),
        (
            "7. Sink vs one PutRecord per record (qubole-style), same records",
            f"{rates['sink']:,.0f} rec/s",
            f"per-record loop {rates['one_request_per_record']:,.0f} rec/s",
            f"{sink['sink_vs_per_record']:.1f}x",
            "≥ 20x",
            _verdict(sink["sink_vs_per_record"] >= 20),
        ),
        (
            "7. The same sink with aggregate=true (KPL aggregates, the peers' default) vs "
            "the per-record loop, rows",
            f"{rates['sink_aggregated']:,.0f} rows/s",
            f"per-record loop {rates['one_request_per_record']:,.0f} rec/s",
            f"{sink['sink_aggregated_vs_per_record']:.1f}x",
            "",
            "",
        ),
    ]


def _batch_read_rows(read: dict[str, Any]) -> list[Row]:
    rates = read["records_per_s"]
    return [
        (
            f'8. spark.read.format("kinesis"), {read["records"]:,} records on '
            f"{read['shards']} shards, from the action's start",
            f"{rates['spark_read']:,.0f} rec/s",
            f"plain boto3 reader {rates['plain']:,.0f} rec/s",
            f"{read['spark_vs_plain']:.2f}x",
            "≥ 0.80x",
            _verdict(read["spark_vs_plain"] >= 0.8),
        )
    ]


def _limited_drain_rows(drain: dict[str, Any]) -> list[Row]:
    limit = drain["limit_megabytes_per_s"]
    spark, one = drain["spark"], drain["one_shard_per_task"]
    return [
        (
            f"10. Drain under AWS's read limits (the proxy; bytes scaled 1/"
            f"{drain['limit_scale']}, maxFetchRate too), {drain['megabytes']:.0f} MB in "
            f"{drain['records']:,} records on {drain['shards']} shards, "
            f"{drain['task_slots']} task slots: Spark's batches",
            f"{drain['megabytes'] / spark['batch_seconds']:.2f} MB/s "
            f"({drain['spark_batches_vs_limit']:.2f}x the limit)",
            f"the limit {limit:.2f} MB/s; plain boto3 reader through the same proxy "
            f"{drain['megabytes'] / drain['plain_seconds']:.2f} MB/s "
            f"({drain['plain_vs_limit']:.2f}x); reads refused: Spark "
            f"{drain['spark_refused_reads']}, plain {drain['plain_refused_reads']}",
            f"{drain['spark_batches_vs_limit']:.2f}x",
            "≥ 0.90x, none refused",
            _verdict(drain["spark_batches_vs_limit"] >= 0.9 and not drain["spark_refused_reads"]),
        ),
        (
            "10. the same drain, one shard per task (`shardsPerTask=1`, as before), same run",
            f"{drain['megabytes'] / spark['batch_seconds']:.2f} MB/s "
            f"({drain['spark_batches_vs_limit']:.2f}x the limit)",
            f"one shard per task: {drain['megabytes'] / one['batch_seconds']:.2f} MB/s "
            f"({drain['one_shard_per_task_vs_limit']:.2f}x the limit)",
            f"{one['batch_seconds'] / spark['batch_seconds']:.2f}x",
            "",
            "",
        ),
        (
            "10. the same drain, wall clock from `start()` (query start-up included)",
            f"{drain['megabytes'] / spark['seconds']:.2f} MB/s",
            f"the limit {limit:.2f} MB/s",
            f"{drain['spark_vs_limit']:.2f}x",
            "",
            "",
        ),
    ]


def _many_shards_latency_rows(figure: dict[str, Any]) -> list[Row]:
    few, many = figure["runs"]["2"], figure["runs"]["16"]
    return [
        (
            f"12. End-to-end latency p50 at {many['rate']} rec/s on 16 shards "
            f"(achieved {many['achieved_rate']:,.0f}), {many['trigger']} trigger, "
            f"{many['seen']:,} of {many['sent']:,} events in the sink",
            f"p50 {many['p50_s']:.2f} s, p99 {many['p99_s']:.2f} s; median batch "
            f"{many['batch_ms_median'] / 1000:.2f} s ({_phases(many)})",
            f"2 shards, same run: p50 {few['p50_s']:.2f} s, p99 {few['p99_s']:.2f} s; median "
            f"batch {few['batch_ms_median'] / 1000:.2f} s ({_phases(few)})",
            f"{figure['p50_ratio']:.2f}x",
            "≤ 1.3x",
            _verdict(figure["p50_ratio"] <= 1.3),
        )
    ]


def _many_shards_handful_rows(figure: dict[str, Any]) -> list[Row]:
    few, many = figure["runs"]["4"], figure["runs"]["64"]
    return [
        (
            f"13. Median batch on 64 shards at {many['rate']} rec/s (a handful of records a "
            f"batch; {many['batches']} batches), {many['trigger']} trigger",
            f"{many['batch_ms_median']:.0f} ms ({_phases(many)})",
            f"4 shards, same records and run: {few['batch_ms_median']:.0f} ms ({_phases(few)})",
            f"{figure['batch_ratio']:.2f}x",
            "≤ 1.5x",
            _verdict(figure["batch_ratio"] <= 1.5),
        )
    ]


def _many_shards_planning_rows(figure: dict[str, Any]) -> list[Row]:
    quiet, looked = figure["no_look"], figure["every_shard_looked_at"]

    def parts(plan: dict[str, Any]) -> str:
        return (
            f"{plan['ms_median']:.0f} ms (max {plan['ms_max']:.0f}; ListShards "
            f"{plan['listing_ms_median']:.0f} ms of it; {plan['looks_per_round']:.0f} GetRecords)"
        )

    return [
        (
            f"14. The planner on {figure['shards']} shards (`latestOffset`, median of "
            f"{quiet['rounds']}), no shard needing a look, without the shard listing (once a "
            "listing interval, default 1 s)",
            f"{quiet['without_listing_ms_median']:.0f} ms; with it {parts(quiet)}",
            f"every shard looked at (idle stream): {parts(looked)}",
            f"{quiet['without_listing_ms_median'] / 100:.2f}x the target",
            "< 100 ms",
            _verdict(quiet["without_listing_ms_median"] < 100),
        )
    ]


def _edit_rows(edit: dict[str, Any]) -> list[Row]:
    seconds = edit["edit_to_query_started_s"]
    return [
        (
            "9. Edit to running: a consumer source edit under `docker compose watch`",
            f"{seconds:.1f} s",
            "edit to the restarted consumer's `query started` line; consumer log after the edit: "
            + ", ".join(f"{k} {v:.1f} s" for k, v in edit.get("consumer_phases_s", {}).items()),
            f"{seconds / 20:.2f}x the target",
            "< 20 s",
            _verdict(seconds < 20),
        )
    ]


def _figure_number(row: Row) -> int:
    """Rows in figure order (10 after 9); a figure that was not measured goes last."""
    number = row[0].split(".", 1)[0]
    return int(number) if number.isdigit() else 100


def table(results: dict[str, Any]) -> str:
    rows: list[Row] = []
    builders = (
        ("ingest", _ingest_rows),
        ("drain", _drain_rows),
        ("latency", _latency_rows),
        ("cold_start", _cold_rows),
        ("sink", _sink_rows),
        ("batch_read", _batch_read_rows),
        ("edit_to_running", _edit_rows),
        ("drain_under_limits", _limited_drain_rows),
        ("connect", _connect_rows),
        ("many_shards_latency", _many_shards_latency_rows),
        ("many_shards_handful", _many_shards_handful_rows),
        ("many_shards_planning", _many_shards_planning_rows),
    )
    for key, build in builders:
        figure = results.get(key)
        if isinstance(figure, dict) and "error" in figure:
            verdict = "skipped" if figure["error"].startswith("skipped") else "FAIL"
            rows.append((key, "not measured", figure["error"][:120], "", "", verdict))
        elif figure is not None:
            rows.extend(build(figure))
    rows.sort(key=_figure_number)
    lines = [
        "| figure | measured | reference | ratio | target | result |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    machine = results.get("machine", {})
    lines.append("")
    lines.append(
        f"Measured {results.get('measured_at', '?')} on {machine.get('nproc')} cores "
        f"({machine.get('cpu')}), {machine.get('memory_gib')} GiB; `make bench` took "
        f"{results.get('wall_s', 0):.0f} s."
    )
    loads = results.get("figures", {})
    if loads:
        shown = ", ".join(
            f"{name} {load['load_1min_before']:.1f}→{load['load_1min_after']:.1f}"
            for name, load in loads.items()
        )
        lines.append(f"1-minute load average before→after each figure (2 cores): {shown}.")
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], path: Path) -> None:
    figure, axes = plt.subplots(2, 2, figsize=(12, 8))
    ingest, drain = results.get("ingest"), results.get("drain")
    latency, cold = results.get("latency"), results.get("cold_start")
    if isinstance(ingest, dict) and "records_per_s" in ingest:
        rates = ingest["records_per_s"]
        axis = axes[0][0]
        axis.bar(list(rates), list(rates.values()), color=["tab:blue", "tab:gray", "tab:green"])
        axis.set_yscale("log")
        axis.set_title(f"1. Ingest, {ingest['records']:,} records (records/s, log)")
    if isinstance(drain, dict) and "scaling" in drain:
        axis = axes[0][1]
        shards = ["1", "2", "4"]
        spark = [drain["scaling"][s]["spark_records_per_s"] for s in shards]
        plain = [drain["scaling"][s]["plain_records_per_s"] for s in shards]
        positions = range(len(shards))
        axis.bar([p - 0.2 for p in positions], spark, 0.4, label="Spark (availableNow)")
        axis.bar([p + 0.2 for p in positions], plain, 0.4, label="plain boto3 reader")
        axis.set_xticks(list(positions), [f"{s} shard(s)" for s in shards])
        axis.set_title(f"2/5. Drain of {drain['records']:,} records (records/s)")
        axis.legend()
    if isinstance(latency, list):
        axis = axes[1][0]
        for offset, run in enumerate(latency):
            values = [run["p50_s"], run["p95_s"], run["p99_s"]]
            axis.bar(
                [p + offset * 0.4 - 0.2 for p in range(3)],
                values,
                0.4,
                label=f"{run['rate']} rec/s target",
            )
        axis.axhline(1, color="red", linestyle="--", label="p50 target at 200 rec/s (1 s)")
        axis.set_xticks(range(3), ["p50", "p95", "p99"])
        axis.set_title("3. End-to-end latency (s)")
        axis.legend()
    if isinstance(cold, dict) and "memory" in cold:
        axis = axes[1][1]
        services = list(cold["image_bytes"])
        image = [cold["image_bytes"][s] / MIB for s in services]
        peak = [(cold["memory"].get(s, {}).get("peak_bytes") or 0) / MIB for s in services]
        positions = range(len(services))
        axis.bar([p - 0.2 for p in positions], image, 0.4, label="image size")
        axis.bar([p + 0.2 for p in positions], peak, 0.4, label="peak memory")
        axis.set_xticks(list(positions), services)
        first = cold["first_record_s"]
        axis.set_title(f"4. Cold start {first:.0f} s to first event; MiB" if first else "4. MiB")
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write(results: dict[str, Any], folder: Path) -> str:
    (folder / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    markdown = table(results)
    (folder / "results.md").write_text(markdown)
    plot(results, folder / "results.png")
    return markdown
